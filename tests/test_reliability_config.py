"""Bad configs and arguments: a one-line UserError naming the key or file, and nothing written."""

from __future__ import annotations

import pytest
import yaml
from conftest import tiny_config_dict
from reliability_support import user_error

from seqattn.config import config_from_dict, load_config
from seqattn.evaluate import evaluate
from seqattn.train import train
from seqattn.translate import run_translate


@pytest.mark.parametrize("text, expected", [
    ("", "config file is empty"),
    ("   \n\n", "config file is empty"),
    ("# only a comment\n", "config file is empty"),
    ("- data\n- model\n", "config must be a mapping"),
    ("just a string\n", "config must be a mapping"),
    ("data: [unclosed\n", "YAML syntax error"),
    ("data:\n  path: x\n path: y\n", "YAML syntax error"),
    ("data: 3\n", "'data' must be a mapping"),
    (b"data:\n  path: caf\xe9\n", "cannot read config"),  # Latin-1, not UTF-8
])
def test_bad_config_files(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    message = user_error(load_config, path)
    assert expected in message and str(path) in message


def test_config_path_problems(tmp_path):
    assert "not found" in user_error(load_config, tmp_path / "missing.yaml")
    assert "folder" in user_error(load_config, tmp_path)


@pytest.mark.parametrize("section, key, value, expected", [
    ("model", "rnn.hidden_size", -8, "greater than 0"),
    ("model", "rnn.hidden_size", 0, "greater than 0"),
    ("model", "embedding_size", 0, "greater than 0"),
    ("model", "rnn.num_layers", -1, "greater than 0"),
    ("tokenizer", "vocab_size", 0, "greater than 0"),
    ("train", "batch_tokens", 0, "greater than 0"),
    ("train", "batch_tokens", -400, "greater than 0"),
    ("train", "max_steps", 0, "greater than 0"),
    ("train", "lr", 0, "greater than 0"),
    ("train", "save_every", 0, "greater than 0"),
    ("train", "max_bad_steps", 0, "greater than 0"),
    ("search", "beam_size", 0, "greater than 0"),
    ("model", "dropout", -0.1, "0 or more"),
    ("model", "dropout", 1.5, "at most 1"),
    ("model", "kind", "transformerx", "must be"),
    ("model", "rnn.cell", "rnn", "must be"),
    ("model", "rnn.hidden_size", "big", "must be an integer"),
    ("model", "rnn.hidden_size", 32.5, "must be an integer"),
    ("model", "rnn.bidirectional", "yes", "must be true/false"),
    ("train", "lr", float("nan"), "finite"),
    ("train", "lr", float("inf"), "finite"),
    ("train", "lr", 10**400, "too large"),
    ("train", "max_steps", 10**30, "too large"),
    ("model", "hiden_size", 32, "did you mean 'model.rnn.hidden_size'"),
    ("train", "batch_tokens", 20, "smaller than the longest allowed sentence"),
    ("model", "rnn.hidden_size", 33, "must be even"),
])
def test_bad_values_name_the_key(toy_corpus, section, key, value, expected):
    *path, last = key.split(".")  # rnn.hidden_size: the key inside its section
    nested = {last: value}
    for part in reversed(path):
        nested = {part: nested}
    values = tiny_config_dict(toy_corpus, **{section: nested})
    message = user_error(config_from_dict, values, "my.yaml")
    assert expected in message and "(my.yaml)" in message
    if "did you mean" not in expected and "longest" not in expected and "even" not in expected:
        assert f"{section}.{key}" in message


@pytest.mark.parametrize("override, expected", [
    ("model.rnn.hidden_size", "needs KEY=VALUE"),
    ("=3", "empty key"),
    ("model..kind=luong", "empty key"),
    ("model=3", "'model' must be a mapping"),
    ("nosuch.key=1", "unknown config key 'nosuch'"),
    ("model.kind.deeper=1", "'model.kind' must be"),
])
def test_bad_set_overrides(tmp_path, toy_corpus, override, expected):
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict(toy_corpus)))
    assert expected in user_error(load_config, path, [override])


def test_empty_corpus_after_filtering_writes_nothing(tmp_path, toy_corpus):
    config = config_from_dict(tiny_config_dict(toy_corpus, data={"max_length": 1},
                                               train={"batch_tokens": 400}))
    run_dir = tmp_path / "run"
    message = user_error(train, config, run_dir, say=lambda *_: None)
    assert "no training pairs left after filtering" in message and "data.max_length" in message
    assert not run_dir.exists()


def test_empty_training_split(tmp_path, toy_corpus):
    (toy_corpus / "train.jsonl").write_text('{"src": "", "tgt": "x"}\n{"src": " ", "tgt": ""}\n')
    config = config_from_dict(tiny_config_dict(toy_corpus))
    run_dir = tmp_path / "run"
    assert "no sentence pairs" in user_error(train, config, run_dir, say=lambda *_: None)
    assert not run_dir.exists()


def test_run_dir_that_is_a_file_or_below_one(tmp_path, toy_corpus):
    config = config_from_dict(tiny_config_dict(toy_corpus))
    afile = tmp_path / "runs.txt"
    afile.write_text("not a folder\n")
    assert "run dir is a file" in user_error(train, config, afile, say=lambda *_: None)
    assert "a parent is a file" in user_error(train, config, afile / "run", say=lambda *_: None)
    assert afile.read_text() == "not a folder\n"


def test_existing_run_needs_resume_or_overwrite(trained_run, tmp_path):
    from reliability_support import copy_run

    run = copy_run(trained_run, tmp_path / "run")
    config = config_from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    assert "already holds a run" in user_error(train, config, run, say=lambda *_: None)
    assert "exclude each other" in user_error(train, config, run, resume=True, overwrite=True,
                                             say=lambda *_: None)


@pytest.mark.parametrize("where", ["folder", "below-a-file", "missing-parent"])
def test_unwritable_output_fails_before_any_work(trained_run, tmp_path, where, monkeypatch):
    import seqattn.api

    target = {"folder": tmp_path,
              "below-a-file": tmp_path / "afile" / "out.txt",
              "missing-parent": tmp_path / "no" / "such" / "out.txt"}[where]
    (tmp_path / "afile").write_text("x")
    loaded = []
    monkeypatch.setattr(seqattn.api.Translator, "__init__",
                        lambda *a, **k: loaded.append(1) or None)
    user_error(run_translate, trained_run, "-", None, 1, None, target, None, "strict", None)
    user_error(evaluate, trained_run, output=target)
    assert not loaded  # refused before loading a model or reading a dataset
    assert not (trained_run / "eval").exists()
