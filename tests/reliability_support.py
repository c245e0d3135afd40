"""Helpers shared by the tests/test_reliability_*.py modules (subprocess CLI runs, polling)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

# The tiny models here gain nothing from more threads, and on a small shared machine torch's
# intra-op threads spin against other work: the in-process runs went from ~0.5 s to ~15 s each.
# (This applies to the whole pytest process once a reliability module is collected.)
torch.set_num_threads(1)


def cli_env() -> dict[str, str]:
    """The environment for `python -m seqattn`: this checkout first, no debug, quiet threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("SEQATTN_DEBUG", None)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    return env


def cli_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "seqattn", *map(str, args)]


def run_cli(*args: str, cwd: Path, stdin: bytes | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cli_args(*args), cwd=cwd, input=stdin if stdin is not None else b"",
                          capture_output=True, timeout=timeout, env=cli_env())


def start_cli(*args: str, cwd: Path, log: Path) -> subprocess.Popen:
    """A background CLI run (own process group), stdout+stderr to `log`."""
    handle = log.open("wb")
    try:
        return subprocess.Popen(cli_args(*args), cwd=cwd, stdin=subprocess.DEVNULL, stdout=handle,
                                stderr=subprocess.STDOUT, env=cli_env(), start_new_session=True)
    finally:
        handle.close()


def user_error(call, *args, **kwargs) -> str:
    """Call; it must raise a UserError whose message is one `error: ...` line. Returns it."""
    import pytest

    from seqattn.errors import UserError

    with pytest.raises(UserError) as error:
        call(*args, **kwargs)
    message = error.value.message()
    assert message.startswith("error: ") and "\n" not in message
    return message


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.strip()]


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int = 2,
                          contains: str | None = None, progress_ok: bool = False) -> str:
    """Exit `code`; stderr's error is one `error: ...` line and there is no traceback.

    With progress_ok, lines of progress before the error are allowed (training's log), but the
    error is still exactly one line, and the last one.
    """
    text = proc.stderr.decode("utf-8", "replace")
    detail = f"exit {proc.returncode}, stderr:\n{text}"
    assert proc.returncode == code, detail
    assert "Traceback" not in text, detail
    lines = stderr_lines(proc)
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, detail
    if progress_ok:
        assert lines[-1] == errors[0], detail
    else:
        assert lines == errors, detail
    if contains is not None:
        assert contains in errors[0], detail
    return errors[0]


def train_steps(metrics: Path) -> list[int]:
    """Steps of the `train` events in metrics.jsonl (tolerating a half-written last line)."""
    if not metrics.exists():
        return []
    steps = []
    for line in metrics.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "train":
            steps.append(record["step"])
    return steps


def wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None,
             what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def copy_run(run_dir: Path, dest: Path) -> Path:
    """A private copy of a (session-shared) trained run that a test may damage.

    Outputs other tests may have added to the shared run (eval/) are left out: the copy is a run
    as training left it.
    """
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("eval"))
    return dest


# -- damaging runs -------------------------------------------------------------------------------


def truncate(path: Path, keep: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])


def rewrite_checkpoint(path: Path, mutate) -> None:
    """Load a checkpoint as data, let `mutate(state)` change it, save it back (still data)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    mutate(state)
    torch.save(state, path)


def edit_run_config(run_dir: Path, section: str, **values) -> None:
    import yaml

    path = run_dir / "config.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config[section].update(values)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


class Payload:
    """Unpickling this runs code: it creates `marker`. A safe loader must refuse it unrun."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def write_hostile_checkpoints(folder: Path, marker: Path) -> dict[str, Path]:
    """Checkpoint-looking files whose loading with plain pickle would create `marker`."""
    import pickle

    import torch

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["torch-zip"] = folder / "zip.pt"
    torch.save({"format": "seqattn-checkpoint-1", "model": Payload(marker)}, files["torch-zip"])
    files["torch-zip-nested"] = folder / "nested.pt"
    torch.save({"model": {}, "config": {"data": [Payload(marker)]}}, files["torch-zip-nested"])
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        files[f"pickle-{protocol}"] = folder / f"pickle{protocol}.pt"
        files[f"pickle-{protocol}"].write_bytes(pickle.dumps({"model": Payload(marker)}, protocol))
    return files
