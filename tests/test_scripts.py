"""The shell scripts parse and explain themselves; report.py and bench.py turn files into tables."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
COMMANDS = ["train.sh", "compare_attention.sh", "quickstart.sh", "bench_peers.sh", "gpu_check.sh",
            "bench_ddp.sh"]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def bash(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], capture_output=True, text=True, cwd=ROOT, **kwargs)


@pytest.mark.parametrize("script", COMMANDS)
def test_help_exits_0_and_prints_usage(script):
    for flag in ("-h", "--help"):
        result = bash(str(SCRIPTS / script), flag)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: scripts/{script}")
    assert os.access(SCRIPTS / script, os.X_OK)


@pytest.mark.parametrize("script", [*COMMANDS, "common.sh"])
def test_bash_syntax(script):
    result = bash("-n", str(SCRIPTS / script))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", COMMANDS)
def test_unknown_option_is_a_user_error(script):
    result = bash(str(SCRIPTS / script), "--no-such-option")
    assert result.returncode == 2
    assert "error:" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--model", "gru"], "--model must be rnn-attn or transformer"),
    (["--model", "transformer", "--only", "joeynmt"], "no JoeyNMT run"),
])
def test_bench_peers_refuses_a_bad_model_choice_before_writing(tmp_path, args, message):
    work = tmp_path / "work"
    result = bash(str(SCRIPTS / "bench_peers.sh"), "--work", str(work), *args)
    assert result.returncode == 2 and message in result.stderr
    assert not work.exists()


def test_train_sh_without_config_is_a_user_error():
    result = bash(str(SCRIPTS / "train.sh"))
    assert result.returncode == 2 and "usage:" in result.stderr


# ---------------------------------------------------------------------------------------------
# report.py on fabricated runs


def fake_run(folder: Path, kind: str, bleu: float, parameters: int) -> Path:
    (folder / "eval").mkdir(parents=True)
    buckets = [{"bucket": "1-10", "sentences": 600, "bleu": bleu + 2},
               {"bucket": "11-20", "sentences": 350, "bleu": bleu},
               {"bucket": ">20", "sentences": 50, "bleu": bleu - 5}]
    for beam, bonus in ((1, 0.0), (5, 1.0)):
        report = {"split": "test", "dataset": "multi30k", "pair": "de-en", "model": kind,
                  "parameters": parameters, "beam": beam, "bleu": bleu + bonus,
                  "chrf": 50.0 + bonus, "sentences": 1000, "seconds": 3.0,
                  "sacrebleu signatures": {"bleu": "nrefs:1|case:mixed|tok:13a"},
                  "bleu_by_source_length": [dict(b, bleu=b["bleu"] + bonus) for b in buckets]}
        (folder / "eval" / f"test.beam{beam}.json").write_text(json.dumps(report))
    events = [{"event": "train", "step": 50, "epoch": 0, "elapsed": 30.0, "loss": 5.0,
               "lr": 0.001, "tgt_tokens": 50_000, "tokens_per_second": 1000.0},
              {"event": "train", "step": 100, "epoch": 0, "elapsed": 60.0, "loss": 4.0,
               "lr": 0.001, "tgt_tokens": 100_000, "tokens_per_second": 3000.0},
              {"event": "train", "step": 150, "epoch": 0, "elapsed": 90.0, "loss": 3.0,
               "lr": 0.001, "tgt_tokens": 150_000, "tokens_per_second": 2000.0},
              {"event": "valid", "step": 150, "epoch": 0, "elapsed": 120.0, "loss": 3.0,
               "ppl": 20.0, "bleu": bleu, "chrf": 50.0}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return folder


def test_report_writes_table_csv_and_png(tmp_path):
    runs = [fake_run(tmp_path / kind, kind, bleu, params) for kind, bleu, params in
            (("seq2seq", 20.0, 1_000_000), ("bahdanau", 30.0, 2_000_000), ("luong", 31.0, 2_100_000))]
    out = tmp_path / "compare"
    assert load("report").main([*map(str, runs), "--out", str(out)]) == 0

    table = (out / "results.md").read_text()
    assert "| model | parameters | minutes | target tokens/s | BLEU greedy | chrF greedy | " in table
    # bahdanau: 2M parameters, 2 minutes, median 2000 tok/s, BLEU 30 greedy / 31 beam 5.
    assert "| bahdanau | 2,000,000 | 2.0 | 2,000 | 30.00 | 50.00 | 31.00 | 51.00 |" in table
    assert table.count("\n| ") == 5  # header, rule, three models

    with (out / "bleu_by_length.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 2 * 3  # models x beams x buckets
    assert {"model": "luong", "beam": "5", "bucket": ">20", "sentences": "50", "bleu": "27.0"} in rows
    assert (out / "bleu_by_length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_without_eval_files_says_what_to_run(tmp_path):
    (tmp_path / "run").mkdir()
    result = subprocess.run([sys.executable, str(SCRIPTS / "report.py"), str(tmp_path / "run"),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode != 0 and "beam1.json" in result.stderr


# ---------------------------------------------------------------------------------------------
# bench.py: data conversion and the parsing of the peers' logs


def test_bench_to_text_normalises_and_maps_val_to_validation(tmp_path):
    bench = load("bench")
    data = tmp_path / "m30k"
    data.mkdir()
    for name in ("train", "val", "test"):
        rows = [{"de": f"Ein  {name}\tSatz ", "en": f" A {name}  sentence"}, {"de": "Zwei", "en": "Two"}]
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = bench.to_text(data, tmp_path / "text")
    assert counts == {"train": 2, "validation": 2, "test": 2}
    assert (tmp_path / "text" / "validation.de").read_text() == "Ein val Satz\nZwei\n"
    assert (tmp_path / "text" / "test.en").read_text() == "A test sentence\nTwo\n"


ONMT_LOG = """[INFO] * number of parameters: 12907520
[INFO] Step 25/1000000; acc: 10.0; ppl: 900.0; xent: 6.8; lr: 0.00100; 2500/2300 tok/s;     20 sec;
[INFO] Step 50/1000000; acc: 12.0; ppl: 500.0; xent: 6.2; lr: 0.00100; 2600/2400 tok/s;     40 sec;
[INFO] Step 100/1000000; acc: 20.0; ppl: 200.0; xent: 5.3; lr: 0.00100; 2700/2500 tok/s;     80 sec;
"""

JOEY_LOG = """INFO - Total params: 13000000
INFO - Epoch   1, Step:       50, Batch Loss:     5.1, Batch Acc: 0.1, Tokens per Sec:      600, Lr: 0.001000
INFO - Epoch   1, Step:      100, Batch Loss:     4.6, Batch Acc: 0.2, Tokens per Sec:      640, Lr: 0.001000
"""

TIME_V = """\tCommand being timed: "python -m joeynmt train cfg.yaml"
\tElapsed (wall clock) time (h:mm:ss or m:ss): 12:03.50
\tMaximum resident set size (kbytes): 2097152
"""


def test_bench_onmt_steps_from_the_probe_rate():
    bench = load("bench")
    # 75 steps in 60 s between the first and last report: 1.25 steps/s for 720 - 15 s.
    assert bench.onmt_steps(ONMT_LOG, 720) == int(1.25 * 705)
    with pytest.raises(SystemExit):
        bench.onmt_steps(ONMT_LOG.splitlines()[1], 720)


def test_bench_parses_time_v_and_the_peers_logs(tmp_path):
    bench = load("bench")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "joeynmt.train.time").write_text(TIME_V)
    (tmp_path / "logs" / "joeynmt.train.out").write_text(JOEY_LOG)
    (tmp_path / "logs" / "opennmt.train.out").write_text(ONMT_LOG)
    assert bench.parse_time_v(tmp_path / "logs" / "joeynmt.train.time") == {
        "wall_s": 723.5, "peak_rss_gib": 2.0}
    assert bench.training_stats(tmp_path, "joeynmt") == {
        "steps": 100, "tokens_per_second": 620.0, "parameters": 13_000_000}
    assert bench.training_stats(tmp_path, "opennmt") == {
        "steps": 100, "tokens_per_second": 2400.0, "parameters": 12_907_520}


def test_bench_table_scores_outputs_and_joins_stray_pieces(tmp_path):
    bench = load("bench")
    for folder in ("data", "hyp", "logs"):
        (tmp_path / folder).mkdir()
    refs = "A man rides a bike.\nTwo dogs play in the snow.\n"
    (tmp_path / "data" / "test.en").write_text(refs)
    (tmp_path / "hyp" / "opennmt.beam1.en").write_text(refs)
    (tmp_path / "hyp" / "opennmt.beam5.en").write_text(
        "\u2581A \u2581man \u2581ri des \u2581a \u2581bi ke .\n\u2581Two \u2581dog s \u2581play \u2581in "
        "\u2581the \u2581snow .\n")
    (tmp_path / "hyp" / "joeynmt.beam1.en").write_text("only one line\n")
    (tmp_path / "logs" / "opennmt.train.out").write_text(ONMT_LOG)
    results = bench.collect(tmp_path)
    assert set(results) == {"opennmt", "joeynmt"}  # seqattn left nothing: not in the table
    assert results["opennmt"]["beam1"]["bleu"] == pytest.approx(100.0)
    # Pieces joined back into words: "▁ri des" -> "rides"; 13a splits "bike." itself.
    assert results["opennmt"]["beam5"]["bleu"] == pytest.approx(100.0)
    assert "error" in results["joeynmt"]["beam1"]
    text = bench.table(results)
    assert text.splitlines()[0] == "| | joeynmt | opennmt |"
    assert "| BLEU greedy | – | 100.00 |" in text
    assert "- joeynmt beam 1: 1 lines for 2 references" in text


# ---------------------------------------------------------------------------------------------
# train.sh end to end on the toy corpus


def test_train_sh_trains_and_keeps_greedy_and_beam_5(tiny_config, tmp_path):
    config = tiny_config(train={"max_steps": 10, "valid_every": 10})
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(ROOT))
    run_dir = tmp_path / "run"
    result = subprocess.run(["bash", str(SCRIPTS / "train.sh"), str(config), "--run-dir", str(run_dir),
                             "--set", "train.log_every=5"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for beam in (1, 5):
        report = json.loads((run_dir / "eval" / f"test.beam{beam}.json").read_text())
        assert report["beam"] == beam and report["sentences"] == 40
        hyps = (run_dir / "eval" / f"test.beam{beam}.hyp.txt").read_text().split("\n")
        assert len(hyps) == 41  # 40 lines and the final newline


def test_train_sh_average_keeps_averages_and_scores_the_mean(tiny_config, tmp_path):
    config = tiny_config(train={"max_steps": 12, "valid_every": 100, "save_every": 3})
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(ROOT))
    run_dir = tmp_path / "run"
    result = subprocess.run(["bash", str(SCRIPTS / "train.sh"), str(config), "--run-dir",
                             str(run_dir), "--average", "3"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    kept = sorted(p.name for p in (run_dir / "checkpoints").glob("step*.pt"))
    assert kept == ["step0000006.pt", "step0000009.pt", "step0000012.pt"]
    for beam in (1, 5):
        plain = json.loads((run_dir / "eval" / f"test.beam{beam}.json").read_text())
        mean = json.loads((run_dir / "eval" / f"test.avg3.beam{beam}.json").read_text())
        assert plain["checkpoint"].endswith("best.pt")
        assert mean["checkpoint"].endswith("averaged3.pt") and mean["beam"] == beam


@pytest.mark.parametrize("value", ["1", "x"])
def test_train_sh_average_needs_two_or_more(tiny_config, tmp_path, value):
    result = bash(str(SCRIPTS / "train.sh"), str(tiny_config()), "--average", value)
    assert result.returncode == 2 and "--average needs a number of at least 2" in result.stderr
