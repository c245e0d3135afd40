"""Typed config: defaults, overrides, and one clear error per mistake."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from seqattn.config import Config, config_from_dict, iter_keys, load_config
from seqattn.errors import UserError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_data_only_config_is_valid_and_defaults_fill_the_rest(tmp_path):
    config = load_config(write(tmp_path, "data:\n  path: some/corpus\n"))
    assert config.data.path == "some/corpus"
    assert config.model == Config().model
    assert config.train.batch_tokens == Config().train.batch_tokens


def test_set_overrides_scalars_nested_mappings_and_later_wins(tmp_path):
    path = write(tmp_path, "data:\n  path: json\n")
    config = load_config(path, ["model.rnn.hidden_size=64", "model.rnn.hidden_size=128",
                                "data.data_files.test=corpus/test.jsonl", "train.lr=3e-4",
                                "data.name=de-en", "model.rnn.bidirectional=false"])
    assert config.model.rnn.hidden_size == 128
    assert config.data.data_files == {"test": "corpus/test.jsonl"}
    assert config.train.lr == pytest.approx(3e-4) and isinstance(config.train.lr, float)
    assert config.data.name == "de-en" and config.model.rnn.bidirectional is False


def test_int_is_accepted_where_a_float_is_expected():
    config = config_from_dict({"train": {"lr": 1, "max_minutes": 20}})
    assert isinstance(config.train.lr, float) and isinstance(config.train.max_minutes, float)


@pytest.mark.parametrize("values, fragments", [
    ({"model": {"hiden_size": 5}}, ["unknown config key 'model.hiden_size'", "model.rnn.hidden_size"]),
    ({"model": {"rnn": {"hiden_size": 5}}}, ["unknown config key 'model.rnn.hiden_size'"]),
    ({"trian": {}}, ["unknown config key 'trian'", "'train'"]),
    ({"model": {"rnn": {"hidden_size": "big"}}}, ["'model.rnn.hidden_size' must be an integer", "'big'"]),
    ({"model": {"rnn": {"hidden_size": True}}}, ["'model.rnn.hidden_size' must be an integer"]),
    ({"model": {"kind": "transformerx"}}, ["'model.kind' must be", "'seq2seq'"]),
    ({"model": {"rnn": {"hidden_size": 0}}}, ["'model.rnn.hidden_size' must be greater than 0"]),
    ({"train": {"batch_tokens": -5}}, ["'train.batch_tokens' must be greater than 0"]),
    ({"model": {"dropout": 1.5}}, ["'model.dropout' must be at most 1"]),
    ({"train": {"label_smoothing": -0.1}}, ["'train.label_smoothing' must be 0 or more"]),
    ({"train": {"batch_tokens": 50}}, ["train.batch_tokens (50)", "data.max_length"]),
    ({"model": {"rnn": {"hidden_size": 33}}}, ["must be even"]),
    ({"model": {"kind": "transformer", "embedding_size": 30}}, ["must divide by", "heads"]),
    ({"model": {"kind": "transformer", "transformer": {"norm": "middle"}}},
     ["'model.transformer.norm' must be 'pre' or 'post'"]),
    ({"model": {"hidden_size": 32, "rnn": {"hidden_size": 64}}}, ["both model.hidden_size", "rnn"]),
    ({"model": {"share_embeddings": True}, "tokenizer": {"joint": False}}, ["joint"]),
    ({"model": 3}, ["'model' must be a mapping"]),
])
def test_config_errors_name_the_key(values, fragments):
    with pytest.raises(UserError) as info:
        config_from_dict(values, "c.yaml")
    message = info.value.message()
    assert message.startswith("error: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "data:\n  path: x\nmodel:\n  kind: [unclosed\n")
    with pytest.raises(UserError) as info:
        load_config(path)
    assert f"{path}, line" in info.value.message()


def test_empty_and_missing_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="empty"):
        load_config(write(tmp_path, "# nothing\n"))
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_bad_set_syntax_is_a_user_error(tmp_path):
    path = write(tmp_path, "data: {}\n")
    with pytest.raises(UserError, match="KEY=VALUE"):
        load_config(path, ["model.rnn.hidden_size"])
    with pytest.raises(UserError, match="unknown config key 'model.nope'"):
        load_config(path, ["model.nope=1"])


def test_every_key_is_listed_with_its_default():
    keys = {key: default for key, _, default in iter_keys()}
    assert keys["model.kind"] == "bahdanau"
    assert keys["train.batch_tokens"] == Config().train.batch_tokens
    assert "search.beam_size" in keys and "data.data_files" in keys


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").rglob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    """The configs under configs/ are valid: no unknown key, no wrong type, no deprecated name."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = load_config(path, ["data.path=somewhere"])
    assert config.data.path == "somewhere"


ROUND1_MODEL = {"kind": "luong", "cell": "gru", "hidden_size": 64, "num_layers": 2,
                "bidirectional": False, "attention_score": "dot", "input_feeding": False,
                "attention_size": 0, "context_every_step": False, "embedding_size": 32}


def test_round1_flat_model_keys_load_into_their_sections_with_one_warning():
    with pytest.warns(FutureWarning) as caught:
        old = config_from_dict({"model": ROUND1_MODEL}, "old.yaml")
    assert len(caught) == 1 and "old.yaml" in str(caught[0].message)
    assert "\n" not in str(caught[0].message) and "model.rnn.cell" in str(caught[0].message)
    new = config_from_dict({"model": {
        "kind": "luong", "embedding_size": 32,
        "rnn": {"cell": "gru", "hidden_size": 64, "num_layers": 2, "bidirectional": False},
        "attention": {"score": "dot", "input_feeding": False}}})
    assert old == new


def test_round1_key_in_set_is_read_as_the_new_one(tmp_path):
    path = write(tmp_path, "model:\n  rnn:\n    hidden_size: 32\n")
    with pytest.warns(FutureWarning, match="model.rnn.hidden_size"):
        config = load_config(path, ["model.hidden_size=128"])  # later wins, old name or new
    assert config.model.rnn.hidden_size == 128


def test_sections_keep_kind_specific_keys_apart():
    """A bidirectional RNN's even-width rule does not bind the transformer."""
    config = config_from_dict({"model": {"kind": "transformer", "rnn": {"hidden_size": 33}}})
    assert config.model.transformer.heads == Config().model.transformer.heads
    with pytest.raises(UserError, match="even"):
        config_from_dict({"model": {"kind": "bahdanau", "rnn": {"hidden_size": 33}}})


def test_shortlist_per_source_is_bounded(tiny_config):
    from seqattn.config import load_config

    with pytest.raises(UserError, match="search.shortlist_per_source"):
        load_config(tiny_config(search={"shortlist_per_source": 101}))
    with pytest.raises(UserError, match="search.precision"):
        load_config(tiny_config(search={"precision": "int4"}))
