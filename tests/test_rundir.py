"""The run directory's layout and its rules (seqattn/rundir.py)."""

from __future__ import annotations

import pytest

from seqattn.errors import UserError
from seqattn.rundir import RunDir


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_layout_paths(tmp_path):
    run = RunDir(tmp_path)
    assert run.config == tmp_path / "config.yaml" and run.tokenizer == tmp_path / "tokenizer"
    assert run.last == tmp_path / "checkpoints" / "last.pt"
    assert run.best == tmp_path / "checkpoints" / "best.pt"
    assert run.step_checkpoint(42) == tmp_path / "checkpoints" / "step0000042.pt"
    assert run.valid_hypotheses(7) == tmp_path / "valid" / "step0000007.hyp.txt"
    assert run.eval_report("test") == tmp_path / "eval" / "test.json"
    assert run.eval_hypotheses("test") == tmp_path / "eval" / "test.hyp.txt"
    assert run.metrics == tmp_path / "metrics.jsonl" and run.shortlist == tmp_path / "shortlist.pt"
    assert str(run) == str(tmp_path)


def test_step_checkpoints_are_oldest_first_and_pruned_to_the_newest(tmp_path):
    run = RunDir(tmp_path)
    for step in (1000, 20, 300):
        touch(run.step_checkpoint(step))
    touch(run.checkpoint("step_final.pt"))  # not a step checkpoint
    touch(run.last)
    assert [p.name for p in run.step_checkpoints()] == ["step0000020.pt", "step0000300.pt",
                                                        "step0001000.pt"]
    run.prune_step_checkpoints(2)
    assert [p.name for p in run.step_checkpoints()] == ["step0000300.pt", "step0001000.pt"]
    assert run.last.exists() and run.checkpoint("step_final.pt").exists()
    assert run.is_training_checkpoint(run.step_checkpoint(300)) and run.is_training_checkpoint(run.best)
    assert not run.is_training_checkpoint(run.checkpoint("averaged.pt"))


def test_pick_checkpoint_prefers_best_then_last_then_what_is_named(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(UserError, match="no checkpoints"):
        run.pick_checkpoint(None)
    touch(run.last)
    assert run.pick_checkpoint(None) == run.last
    touch(run.best)
    assert run.pick_checkpoint(None) == run.best
    assert run.pick_checkpoint("averaged.pt") == run.checkpoint("averaged.pt")  # a name in checkpoints/
    elsewhere = touch(tmp_path / "elsewhere.pt")
    assert run.pick_checkpoint(str(elsewhere)) == elsewhere


def test_training_rules_resume_and_overwrite(tmp_path):
    run = RunDir(tmp_path / "run")
    run.check_for_training(resume=False, overwrite=False)  # a fresh dir
    touch(run.tokenizer / "tokenizer.json")  # prepare's outputs are not a run
    run.check_for_training(resume=False, overwrite=False)
    with pytest.raises(UserError, match="nothing to resume"):
        run.check_for_training(resume=True, overwrite=False)
    touch(run.metrics)
    with pytest.raises(UserError, match="already holds a run.*--resume .* or --overwrite"):
        run.check_for_training(resume=False, overwrite=False)
    run.check_for_training(resume=False, overwrite=True)
    touch(run.last)
    run.check_for_training(resume=True, overwrite=False)
    with pytest.raises(UserError, match="exclude each other"):
        run.check_for_training(resume=True, overwrite=True)


def test_clear_for_overwrite_keeps_the_tokenizer_and_the_cache(tmp_path):
    run = RunDir(tmp_path / "run")
    run.clear_for_overwrite()  # nothing there yet: nothing to do
    for path in (run.tokenizer / "src.model", run.cache / "train.pt", run.last, run.metrics,
                 run.config, run.eval_report("test"), run.valid_hypotheses(5)):
        touch(path)
    run.clear_for_overwrite()
    assert sorted(p.name for p in run.root.iterdir()) == ["cache", "tokenizer"]
    assert (run.tokenizer / "src.model").exists() and (run.cache / "train.pt").exists()
    assert not run.has_run()


def test_require_names_what_is_missing(tmp_path):
    with pytest.raises(UserError, match="run dir not found"):
        RunDir(tmp_path / "nowhere").require()
    with pytest.raises(UserError, match="no config.yaml"):
        RunDir(tmp_path).require()
    touch(RunDir(tmp_path).config)
    RunDir(tmp_path).require()
