"""Property-based: random Unicode lines through decode_lines + Translator give one output per input
line, in order; random bytes never crash decoding; random config values give a Config or a
one-line UserError, never another exception."""

from __future__ import annotations

import dataclasses
import math

import pytest
import reliability_support  # noqa: F401  (one torch thread for the tiny models)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from seqattn.config import Config, config_from_dict, iter_keys
from seqattn.errors import UserError
from seqattn.translate import decode_lines

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any code point but surrogates (not encodable); '\n' is the line separator, kept out of lines.
LINE = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n"), max_size=24)


@pytest.fixture(scope="module")
def translator(trained_run):
    from seqattn.api import Translator

    return Translator(trained_run)


@SETTINGS
@given(lines=st.lists(LINE, max_size=6))
def test_translate_gives_one_line_per_input_line_in_order(translator, lines):
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    decoded = decode_lines(data, "stdin", errors="replace")  # NUL bytes become U+FFFD
    assert decoded == [line.removesuffix("\r").replace("\x00", "\ufffd") for line in lines]
    results = translator.translate(decoded, beam=2)
    assert len(results) == len(decoded)
    assert [r.source for r in results] == decoded
    for source, result in zip(decoded, results, strict=True):
        assert "\n" not in result.text and "\r" not in result.text
        if not source.strip():
            assert result.text == ""
    output = "".join(r.text + "\n" for r in results)
    assert output.count("\n") == len(decoded)


@SETTINGS
@given(data=st.binary(max_size=200))
def test_random_bytes_decode_or_name_the_line(data):
    expected = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    assert len(decode_lines(data, "stdin", errors="replace")) == expected
    try:
        lines = decode_lines(data, "stdin")
    except UserError as error:
        message = error.message()
        assert "\n" not in message
        number = int(message.split("input line ")[1].split()[0])
        assert 1 <= number <= expected
    else:
        assert len(lines) == expected


# -- random configs -----------------------------------------------------------------------------

KEYS = [key for key, _, _ in iter_keys()]
SECTIONS = [f.name for f in dataclasses.fields(Config)]
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-3, max_value=600),
    st.sampled_from([math.nan, math.inf, -math.inf, 10**400, -(10**400), 2**63, 0, -1, 0.0, 1e-3]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["seq2seq", "bahdanau", "luong", "transformer", "pre", "learned", "lstm", "gru",
                     "bpe", "unigram", "auto", "cpu", "adam", "plateau", "bleu", "dot", "train", "json", ""]),
)
VALUE = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


@st.composite
def config_dicts(draw):
    """Mostly real keys with random values, sometimes random keys or shapes."""
    values: dict = {}
    for dotted in draw(st.lists(st.sampled_from(KEYS), max_size=8)):
        set_path(values, dotted, draw(VALUE))
    if draw(st.booleans()):
        values[draw(st.one_of(st.sampled_from(SECTIONS), st.text(max_size=8)))] = draw(VALUE)
    return values


def set_path(values: dict, dotted: str, value) -> None:
    """values['model']['rnn']['cell'] = value for 'model.rnn.cell' (sections created as needed)."""
    *path, last = dotted.split(".")
    node = values
    for part in path:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def one_key(dotted: str, value) -> dict:
    values: dict = {}
    set_path(values, dotted, value)
    return values


# One key at a time: nothing else in the dict can fail first and hide a value that slips through.
@SETTINGS
@given(dotted=st.sampled_from(KEYS), value=VALUE)
@example(dotted="train.lr", value=math.nan)
@example(dotted="model.dropout", value=math.nan)
@example(dotted="train.lr", value=10**400)
@example(dotted="train.max_minutes", value=math.inf)
def test_one_random_value_gives_config_or_user_error(dotted, value):
    test_config_from_dict_gives_config_or_user_error.hypothesis.inner_test(one_key(dotted, value))


@SETTINGS
@given(values=config_dicts())
def test_config_from_dict_gives_config_or_user_error(values):
    try:
        config = config_from_dict(values, "random.yaml")
    except UserError as error:
        message = error.message()
        assert message.startswith("error: ") and "\n" not in message and "(random.yaml)" in message
        return
    assert isinstance(config, Config)
    for dotted, _, _ in iter_keys():  # whatever was accepted is usable: finite numbers
        value = config
        for part in dotted.split("."):
            value = getattr(value, part)
        if isinstance(value, float):
            assert math.isfinite(value), dotted
