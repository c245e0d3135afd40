"""The CLI battery: every bad input through `python -m seqattn` in a subprocess.

Each case asserts the exit code, that stderr's error is exactly one line starting with 'error:'
(and, unless the command had already started printing progress, the only line), that there is no
traceback, and that nothing was written where a refused command must not write. The cases run in
a small thread pool (they are subprocesses) once per module; each is reported as its own test.
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config_dict, toy_pairs, write_jsonl
from reliability_support import (
    assert_one_line_error,
    copy_run,
    edit_run_config,
    rewrite_checkpoint,
    run_cli,
    stderr_lines,
    truncate,
    write_hostile_checkpoints,
)


@dataclass
class Case:
    id: str
    args: list[str]  # "{ws}" is the workspace folder
    contains: str
    code: int = 2
    stdin: bytes = b""
    progress_ok: bool = False  # the command may print progress lines before the error
    absent: list[str] = field(default_factory=list)  # paths that must not exist afterwards


GOOD = "{ws}/runs/good"
MARK = "{ws}/PWNED"
CASES = [
    # -- configs and arguments (train) ------------------------------------------------------
    Case("train-empty-config", ["train", "{ws}/empty.yaml", "--run-dir", "{ws}/out/a"],
         "config file is empty", absent=["{ws}/out/a"]),
    Case("train-syntax-error", ["train", "{ws}/syntax.yaml", "--run-dir", "{ws}/out/b"],
         "YAML syntax error", absent=["{ws}/out/b"]),
    Case("train-missing-config", ["train", "{ws}/nope.yaml"], "config file not found"),
    Case("train-config-is-dir", ["train", "{ws}/toy"], "config path is a folder"),
    Case("train-negative-size", ["train", "{ws}/tiny.yaml", "--set", "model.rnn.hidden_size=-32",
                                 "--run-dir", "{ws}/out/c"], "'model.rnn.hidden_size' must be greater than 0",
         absent=["{ws}/out/c"]),
    Case("train-zero-size", ["train", "{ws}/tiny.yaml", "--set", "train.batch_tokens=0"],
         "'train.batch_tokens' must be greater than 0"),
    Case("train-unknown-kind", ["train", "{ws}/tiny.yaml", "--set", "model.kind=transformerx"],
         "'model.kind' must be"),
    Case("train-unknown-key", ["train", "{ws}/tiny.yaml", "--set", "model.hiden_size=8"],
         "did you mean 'model.rnn.hidden_size'"),
    Case("train-batch-tokens-too-small", ["train", "{ws}/tiny.yaml", "--set", "train.batch_tokens=10"],
         "smaller than the longest allowed sentence"),
    Case("train-nan-lr", ["train", "{ws}/tiny.yaml", "--set", "train.lr=.nan"], "finite"),
    Case("train-bad-set", ["train", "{ws}/tiny.yaml", "--set", "model.rnn.hidden_size"], "KEY=VALUE"),
    Case("train-yaml-python-tag", ["train", "{ws}/pytag.yaml", "--run-dir", "{ws}/out/d"],
         "YAML tag refused", absent=[MARK, "{ws}/out/d"]),
    Case("train-empty-after-filtering", ["train", "{ws}/tiny.yaml", "--set", "data.max_length=1",
                                         "--run-dir", "{ws}/out/e"],
         "no training pairs left after filtering", progress_ok=True, absent=["{ws}/out/e"]),
    Case("train-empty-corpus", ["train", "{ws}/tiny.yaml", "--set", "data.path={ws}/emptycorpus",
                                "--run-dir", "{ws}/out/f"], "no sentence pairs", absent=["{ws}/out/f"]),
    Case("train-run-dir-is-file", ["train", "{ws}/tiny.yaml", "--run-dir", "{ws}/afile"],
         "run dir is a file"),
    Case("train-existing-run", ["train", "{ws}/tiny.yaml", "--run-dir", GOOD], "already holds a run"),
    Case("train-bad-option", ["train", "{ws}/tiny.yaml", "--bogus"], "No such option: --bogus"),
    Case("train-missing-argument", ["train"], "Missing argument"),
    Case("unknown-command", ["trian", "{ws}/tiny.yaml"], "No such command"),
    Case("train-diverges", ["train", "{ws}/tiny.yaml", "--set", "train.lr=1.0e+38",
                            "--run-dir", "{ws}/out/g"], "training diverged", code=1, progress_ok=True),
    # -- train --resume on damaged runs ----------------------------------------------------------
    Case("resume-no-checkpoints", ["train", "{ws}/run.yaml", "--run-dir", "{ws}/runs/nockpt",
                                   "--resume"], "nothing to resume"),
    Case("resume-truncated-last", ["train", "{ws}/run.yaml", "--run-dir", "{ws}/runs/trunc",
                                   "--resume"], "checkpoint is corrupt or truncated", progress_ok=True),
    Case("resume-missing-tokenizer", ["train", "{ws}/run.yaml", "--run-dir", "{ws}/runs/notok",
                                      "--resume"], "tokenizer missing",
         absent=["{ws}/runs/notok/tokenizer"]),
    Case("resume-other-model-config", ["train", "{ws}/run.yaml", "--run-dir", "{ws}/runs/resume",
                                       "--resume", "--set", "model.hidden_size=64"],
         "model config differs", progress_ok=True),
    # -- evaluate ---------------------------------------------------------------------------------
    Case("evaluate-no-run-dir", ["evaluate", "{ws}/runs/nowhere"], "run dir not found"),
    Case("evaluate-no-checkpoints", ["evaluate", "{ws}/runs/nockpt"], "run dir has no checkpoints"),
    Case("evaluate-truncated", ["evaluate", "{ws}/runs/trunc"], "checkpoint is corrupt or truncated",
         absent=["{ws}/runs/trunc/eval"]),
    Case("evaluate-other-vocab", ["evaluate", "{ws}/runs/vocab"], "vocabulary does not match"),
    Case("evaluate-other-model-config", ["evaluate", "{ws}/runs/modelcfg"], "model config differs"),
    Case("evaluate-missing-tokenizer", ["evaluate", "{ws}/runs/notok"], "tokenizer missing"),
    Case("evaluate-hostile-pickle", ["evaluate", "{ws}/runs/evilzip"], "checkpoint refused",
         absent=[MARK, "{ws}/runs/evilzip/eval"]),
    Case("evaluate-output-is-dir", ["evaluate", GOOD, "--output", "{ws}/toy"], "output path is a folder",
         absent=[GOOD + "/eval"]),
    # -- translate --------------------------------------------------------------------------------
    Case("translate-invalid-utf8", ["translate", GOOD], "invalid UTF-8 in input line 2",
         stdin=b"ka lo\nmi \xff ne\nze\n"),
    Case("translate-nul", ["translate", GOOD, "{ws}/nul.txt"], "NUL byte in input line 3"),
    Case("translate-bad-errors-mode", ["translate", GOOD, "--errors", "ignore"], "unknown --errors",
         stdin=b"ka\n"),
    Case("translate-input-missing", ["translate", GOOD, "{ws}/nope.txt"], "input file not found"),
    Case("translate-input-is-dir", ["translate", GOOD, "{ws}/toy"], "input is not a file"),
    Case("translate-output-below-file", ["translate", GOOD, "--output", "{ws}/afile/out.txt"],
         "output folder does not exist", stdin=b"ka\n"),
    Case("translate-output-is-dir", ["translate", GOOD, "--output", "{ws}/toy"],
         "output path is a folder", stdin=b"ka\n"),
    Case("translate-nbest-above-beam", ["translate", GOOD, "--beam", "2", "--nbest", "3"],
         "--nbest 3 is larger than the beam 2", stdin=b"ka\n"),
    Case("translate-beam-zero", ["translate", GOOD, "--beam", "0"], "Invalid value for '--beam'",
         stdin=b"ka\n"),
    Case("translate-hostile-zip", ["translate", "{ws}/runs/evilzip"], "checkpoint refused",
         stdin=b"ka\n", absent=[MARK]),
    Case("translate-hostile-pickle2", ["translate", "{ws}/runs/evilpickle"], "checkpoint refused",
         stdin=b"ka\n", absent=[MARK]),
    Case("translate-hostile-config", ["translate", "{ws}/runs/evilconfig"], "YAML tag refused",
         stdin=b"ka\n", absent=[MARK]),
    Case("translate-wrong-shapes", ["translate", "{ws}/runs/shapes"], "checkpoint weights do not fit",
         stdin=b"ka\n"),
]


# Not bad-input cases, but CLI runs checked below; they run in the same pool.
EXTRA = [
    Case("debug", ["--debug", "train", "{ws}/empty.yaml"], "config file is empty"),
    Case("errors-replace", ["translate", GOOD, "--errors", "replace", "--beam", "1"], "",
         code=0, stdin=b"ka lo\nmi \xff ne\n\x00\n\nze\r\n"),
]


def build_workspace(ws: Path, trained_run: Path) -> None:
    toy = ws / "toy"
    write_jsonl(toy / "train.jsonl", toy_pairs(200, seed=1))
    write_jsonl(toy / "validation.jsonl", toy_pairs(20, seed=2))
    write_jsonl(toy / "test.jsonl", toy_pairs(20, seed=3))
    write_jsonl(ws / "emptycorpus" / "train.jsonl", [{"src": "", "tgt": ""}])
    write_jsonl(ws / "emptycorpus" / "validation.jsonl", [{"src": "a", "tgt": "b"}])
    (ws / "tiny.yaml").write_text(yaml.safe_dump(tiny_config_dict(toy)))
    (ws / "empty.yaml").write_text("")
    (ws / "syntax.yaml").write_text("data: [unclosed\n")
    (ws / "pytag.yaml").write_text(
        f"data: !!python/object/apply:builtins.exec [\"open('{ws}/PWNED', 'w').close()\"]\n")
    (ws / "afile").write_text("a file, not a folder\n")
    (ws / "nul.txt").write_bytes(b"ka\nlo\nmi\x00ne\n")
    shutil.copy(trained_run / "config.yaml", ws / "run.yaml")

    runs = ws / "runs"
    for name in ["good", "nockpt", "trunc", "notok", "resume", "vocab", "modelcfg", "evilzip",
                 "evilpickle", "evilconfig", "shapes"]:
        copy_run(trained_run, runs / name)
    shutil.rmtree(runs / "nockpt" / "checkpoints")
    truncate(runs / "trunc" / "checkpoints" / "best.pt")
    truncate(runs / "trunc" / "checkpoints" / "last.pt")
    shutil.rmtree(runs / "notok" / "tokenizer")
    rewrite_checkpoint(runs / "vocab" / "checkpoints" / "best.pt",
                       lambda s: s["vocab"].update(tokenizer="0123456789abcdef"))
    edit_run_config(runs / "modelcfg", "model", rnn={"hidden_size": 64})
    hostile = write_hostile_checkpoints(ws / "hostile", ws / "PWNED")
    for name in ("best.pt", "last.pt"):
        shutil.copy(hostile["torch-zip"], runs / "evilzip" / "checkpoints" / name)
        shutil.copy(hostile["pickle-2"], runs / "evilpickle" / "checkpoints" / name)
    (runs / "evilconfig" / "config.yaml").write_text((ws / "pytag.yaml").read_text())
    rewrite_checkpoint(runs / "shapes" / "checkpoints" / "best.pt",
                       lambda s: s.update(model={k: v[:1] for k, v in s["model"].items()}))


@pytest.fixture(scope="module")
def battery(trained_run, tmp_path_factory):
    ws = tmp_path_factory.mktemp("battery")
    build_workspace(ws, trained_run)

    def run(case: Case) -> subprocess.CompletedProcess:
        args = [a.replace("{ws}", str(ws)) for a in case.args]
        return run_cli(*args, cwd=ws, stdin=case.stdin, timeout=180)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip([c.id for c in CASES + EXTRA], pool.map(run, CASES + EXTRA), strict=True))
    return ws, results


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(battery, case):
    ws, results = battery
    proc = results[case.id]
    assert_one_line_error(proc, case.code, case.contains, case.progress_ok)
    for path in case.absent:
        assert not Path(path.replace("{ws}", str(ws))).exists(), path


def test_refused_resume_left_the_run_as_it_was(battery):
    ws, _ = battery
    assert yaml.safe_load((ws / "runs" / "resume" / "config.yaml").read_text())["model"][
        "rnn"]["hidden_size"] == 32


def test_debug_shows_the_traceback(battery):
    proc = battery[1]["debug"]
    assert proc.returncode == 2 and "Traceback" in proc.stderr.decode()
    assert stderr_lines(proc)[-1].startswith("error: config file is empty (")


def test_errors_replace_keeps_every_line(battery):
    proc = battery[1]["errors-replace"]
    assert proc.returncode == 0, proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()
    out = proc.stdout.decode("utf-8").split("\n")
    assert out[-1] == "" and len(out) - 1 == 5  # five lines in, five out
    assert out[3] == ""  # the empty line stays empty, in its place
