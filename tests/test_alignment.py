"""Attention views and Pharaoh alignments (seqattn/alignment.py): hand-made arrays first, then a
tiny trained Transformer through the API and `seqattn translate`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_config_dict, toy_pairs, write_jsonl
from typer.testing import CliRunner

from seqattn.alignment import (
    as_layers,
    check_choice,
    describe_view,
    parse_head,
    parse_pharaoh,
    pharaoh,
    select_view,
)
from seqattn.cli import app
from seqattn.errors import UserError

runner = CliRunner()


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def softmax_rows(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    scores = np.random.default_rng(seed).normal(size=shape) * 3
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True)


def test_views_of_layers_and_heads():
    layers = softmax_rows((3, 4, 5, 6))  # [L, H, T, S]
    np.testing.assert_allclose(select_view(layers), layers[2].mean(axis=0))
    np.testing.assert_allclose(select_view(layers, 1, 3), layers[0, 2])
    np.testing.assert_allclose(select_view(layers, 2, "all"), layers[1].mean(axis=0))
    np.testing.assert_allclose(select_view(layers).sum(axis=1), 1.0)  # still a distribution
    assert describe_view(layers, None, "mean", "transformer") == "layer 3/3, mean of 4 heads"
    assert describe_view(layers, 1, 2, "transformer") == "layer 1/3, head 2/4"
    assert describe_view(layers[:1, :1], None, "mean", "luong") == "luong attention"


def test_search_attention_becomes_layers_heads_target_source():
    steps = softmax_rows((5, 3, 4, 6))  # search's [T, L, H, S]
    layers = as_layers(steps)
    assert layers.shape == (3, 4, 5, 6)
    np.testing.assert_array_equal(layers[1, 2, 4], steps[4, 1, 2])
    rnn = softmax_rows((5, 6))  # [T, S]
    assert as_layers(rnn).shape == (1, 1, 5, 6)
    np.testing.assert_array_equal(select_view(as_layers(rnn), kind="bahdanau"), rnn)


@pytest.mark.parametrize("layer, head, fragment", [
    (4, "mean", "layer 4 does not exist"), (0, "mean", "layer 0 does not exist"),
    (None, 5, "head 5 does not exist"), (3, 0, "head 0 does not exist")])
def test_choices_outside_the_model_are_one_line_errors(layer, head, fragment):
    with pytest.raises(UserError) as error:
        check_choice(layer, head, (3, 4), "transformer")
    assert fragment in error.value.message() and "\n" not in error.value.message()


def test_an_rnn_has_one_layer_with_one_head():
    check_choice(1, 1, (1, 1), "bahdanau")
    check_choice(None, "all", (1, 1), "bahdanau")
    for layer, head in ((2, "mean"), (None, 2)):
        with pytest.raises(UserError, match="one attention layer with one head"):
            check_choice(layer, head, (1, 1), "bahdanau")
    with pytest.raises(UserError, match="has no attention"):
        check_choice(1, "mean", None, "seq2seq")
    check_choice(None, "mean", None, "seq2seq")  # the defaults ask for nothing


def test_parse_head():
    assert parse_head("mean") == "mean" and parse_head("ALL") == "all" and parse_head("2") == 2
    for bad in ("0", "-1", "first", "1.5", ""):
        with pytest.raises(UserError, match="--attention-head takes"):
            parse_head(bad)


def test_pharaoh_takes_each_target_rows_argmax_without_eos():
    view = np.array([[0.7, 0.2, 0.1],    # target 0 -> source 0
                     [0.1, 0.3, 0.6],    # target 1 weighs EOS most: its best word is source 1
                     [0.1, 0.8, 0.1],    # target 2 -> source 1
                     [0.0, 0.1, 0.9]])   # the EOS row: left out
    assert pharaoh(view, src_len=2, tgt_len=3) == "0-0 1-1 1-2"
    assert parse_pharaoh("0-0 1-1 1-2") == [(0, 0), (1, 1), (1, 2)]
    assert pharaoh(view, src_len=0, tgt_len=3) == "" and pharaoh(view, 2, 0) == ""
    crossing = np.eye(3)[::-1]  # target j looks at source 2 - j
    assert pharaoh(crossing, 3, 3) == "0-2 1-1 2-0"  # sorted by source, then target


# --- a tiny trained Transformer: 2 decoder layers with 2 heads each ---

LAYERS, HEADS = 2, 2


@pytest.fixture(scope="module")
def transformer_run(tmp_path_factory) -> Path:
    from seqattn.config import config_from_dict
    from seqattn.train import train

    root = tmp_path_factory.mktemp("transformer")
    folder = root / "toy"
    write_jsonl(folder / "train.jsonl", toy_pairs(600, seed=1))
    write_jsonl(folder / "validation.jsonl", toy_pairs(40, seed=2))
    write_jsonl(folder / "test.jsonl", toy_pairs(40, seed=3))
    config = config_from_dict(tiny_config_dict(folder, model={
        "kind": "transformer", "embedding_size": 16, "transformer": {
            "encoder_layers": 1, "decoder_layers": LAYERS, "heads": HEADS, "ff_size": 32}},
        train={"max_steps": 40}))
    train(config, root / "run", say=lambda *_: None)
    return root / "run"


def test_api_attention_is_the_mean_of_the_last_layer(transformer_run):
    import seqattn

    translator = seqattn.load(transformer_run)
    result = translator.translate(["ka lo mi ne"], beam=2)[0]
    T, S = len(result.tgt_pieces), len(result.src_pieces)
    assert result.attention.shape == (T, S)
    assert result.attention_layers.shape == (LAYERS, HEADS, T, S)
    np.testing.assert_allclose(result.attention.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(result.attention, result.attention_layers[-1].mean(axis=0))
    assert result.attention_label == f"layer {LAYERS}/{LAYERS}, mean of {HEADS} heads"
    one = translator.translate(["ka lo mi ne"], beam=2, attention_layer=1, attention_head="2")[0]
    np.testing.assert_allclose(one.attention, one.attention_layers[0, 1])
    assert one.attention_label == f"layer 1/{LAYERS}, head 2/{HEADS}"
    with pytest.raises(UserError, match="attention_layer"):
        translator.translate(["ka"], attention_layer=LAYERS + 1)


def test_translate_align_gives_one_line_per_input_with_valid_pairs(transformer_run):
    lines = ["ka lo mi", "", "ne pu ri so"]
    result = invoke("translate", transformer_run, "-", "--beam", "2", "--align",
                    input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    out = result.stdout.split("\n")
    assert len(out) == len(lines) + 1 and out[-1] == ""
    import seqattn

    expected = seqattn.load(transformer_run).translate(lines, beam=2)
    for line, want in zip(out, expected):
        text, _, alignment = line.partition(" ||| ")
        assert text == want.text and alignment == want.alignment
        pairs = parse_pharaoh(alignment)
        source_pieces = len(want.src_pieces) - 1  # without EOS
        target_pieces = len(want.tgt_pieces) - want.tgt_pieces[-1:].count("</s>")
        assert all(0 <= i < source_pieces for i, _ in pairs)
        assert sorted(j for _, j in pairs) == list(range(target_pieces))  # each piece once
    assert out[1] == " ||| "  # a blank line: no translation, no pairs


@pytest.mark.parametrize("options, title", [
    ((), "layer 2/2, mean of 2 heads"), (("--attention-head", "2"), "layer 2/2, head 2/2"),
    (("--attention-layer", "1", "--attention-head", "all"), "layer 1/2, mean of 2 heads")])
def test_translate_attention_keeps_every_layer_and_head(transformer_run, tmp_path, options, title):
    folder = tmp_path / "att"
    result = invoke("translate", transformer_run, "-", "--beam", "1", "--attention", folder,
                    *options, input="ka lo mi\n")
    assert result.exit_code == 0, result.output
    data = json.loads((folder / "00001.json").read_text())
    T, S = len(data["tgt_pieces"]), len(data["src_pieces"])
    layers = np.array(data["attention_layers"])
    assert layers.shape == (LAYERS, HEADS, T, S)
    assert data["attention_label"] == title
    view = np.array(data["attention"])
    np.testing.assert_allclose(view.sum(axis=1), 1.0, atol=1e-3)
    assert (folder / "00001.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("options, fragment", [
    (("--attention-layer", "3"), "layer 3 does not exist"),
    (("--attention-layer", "0"), "--attention-layer counts from 1"),
    (("--attention-head", "9"), "head 9 does not exist"),
    (("--attention-head", "some"), "--attention-head takes"),
    (("--align", "--nbest", "2"), "--align writes one line per input line")])
def test_bad_layer_or_head_is_one_line_and_exit_2(transformer_run, tmp_path, options, fragment,
                                                  monkeypatch):
    def no_model(*_args, **_kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr("seqattn.api.Translator.__init__", no_model)
    result = invoke("translate", transformer_run, "-", "--attention", tmp_path / "att", *options,
                    input="ka lo\n")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and fragment in result.output
    assert result.output.strip().count("\n") == 0
    assert not (tmp_path / "att").exists()  # refused before any work


def test_a_choice_without_attention_or_align_is_refused(transformer_run):
    result = invoke("translate", transformer_run, "-", "--attention-layer", "1", input="ka\n")
    assert result.exit_code == 2 and "add --attention DIR or --align" in result.output


def test_int8_and_shortlist_keep_the_attention(transformer_run):
    import seqattn

    for setting in ("search.precision=int8", "search.shortlist=20"):
        translator = seqattn.load(transformer_run, overrides=[setting])
        result = translator.translate(["ka lo mi"], beam=2)[0]
        assert result.attention_layers.shape[:2] == (LAYERS, HEADS)
        np.testing.assert_allclose(result.attention.sum(axis=1), 1.0, atol=1e-3)
        target_pieces = len(result.tgt_pieces) - result.tgt_pieces[-1:].count("</s>")
        assert len(parse_pharaoh(result.alignment)) == target_pieces
