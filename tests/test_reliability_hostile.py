"""Hostile files: a checkpoint is data (torch.load weights_only=True), a config is data
(yaml.safe_load). A pickle that would run code on load is refused and never runs; so is a YAML
python tag."""

from __future__ import annotations

import pickle
import re

import pytest
from reliability_support import REPO, Payload, copy_run, write_hostile_checkpoints

from seqattn.api import Translator
from seqattn.checkpoint import load_checkpoint
from seqattn.config import load_config
from seqattn.errors import UserError


def test_the_payload_is_live(tmp_path):
    """Control: plain pickle does run it, so the refusals below mean something."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("kind", ["torch-zip", "torch-zip-nested", "pickle-2", "pickle-5"])
def test_code_running_checkpoint_is_refused_unrun(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = write_hostile_checkpoints(tmp_path / "files", marker)[kind]
    with pytest.raises(UserError) as error:
        load_checkpoint(path)
    message = error.value.message()
    assert "refused" in message and str(path) in message and "\n" not in message
    assert "weights_only" not in message and "safe_globals" not in message  # no unsafe advice
    assert not marker.exists()


def test_translator_refuses_hostile_best_checkpoint(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    marker = tmp_path / "pwned"
    hostile = write_hostile_checkpoints(tmp_path / "files", marker)["torch-zip"]
    (run / "checkpoints" / "best.pt").write_bytes(hostile.read_bytes())
    with pytest.raises(UserError, match="refused"):
        Translator(run)
    assert not marker.exists()


PY_TAGS = [
    "data: !!python/object/apply:builtins.exec [\"open({m!r}, 'w').close()\"]\n",
    "data: !!python/object/apply:os.system [\"touch {m}\"]\n",
    "data:\n  path: !!python/object/new:builtins.exec [\"open({m!r}, 'w').close()\"]\n",
    "data:\n  path: !!python/name:os.system\n",
    "train: !!python/object:seqattn.config.TrainConfig {{lr: 1.0}}\n",
]


@pytest.mark.parametrize("text", PY_TAGS, ids=["apply-exec", "apply-system", "new", "name", "object"])
def test_yaml_python_tags_are_refused_unrun(tmp_path, text):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(text.format(m=str(marker)))
    with pytest.raises(UserError) as error:
        load_config(path)
    assert str(path) in error.value.message() and "python" in error.value.message()
    assert not marker.exists()


def test_python_tag_in_set_is_a_plain_string(tmp_path):
    marker = tmp_path / "pwned"
    config = load_config(None, [f"data.path=!!python/object/apply:os.system [\"touch {marker}\"]"])
    assert isinstance(config.data.path, str) and not marker.exists()


def test_python_tag_in_a_runs_config_yaml(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    marker = tmp_path / "pwned"
    (run / "config.yaml").write_text(PY_TAGS[0].format(m=str(marker)))
    with pytest.raises(UserError):
        Translator(run)
    assert not marker.exists()


def test_source_only_loads_data():
    """Every torch.load passes weights_only=True; YAML is only read with safe_load."""
    for path in sorted((REPO / "seqattn").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for match in re.finditer(r"torch\.load\(", source):
            call = balanced_call(source, match.end())
            assert "weights_only=True" in call, f"{path.name}: torch.load({call}"
        assert not re.search(r"yaml\.(load|unsafe_load|full_load)\(", source), path.name
        assert not re.search(r"\bpickle\.loads?\(", source), path.name


def balanced_call(source: str, start: int) -> str:
    """The argument text of a call whose '(' ends just before `start`."""
    depth = 1
    for index in range(start, len(source)):
        depth += {"(": 1, ")": -1}.get(source[index], 0)
        if depth == 0:
            return source[start:index]
    return source[start:]
