"""Bad text for `translate`: invalid UTF-8 and NUL bytes are an error naming the line, or with
--errors replace a replaced line; odd line breaks never split or shift a line."""

from __future__ import annotations

import pytest
import reliability_support  # noqa: F401  (one torch thread for the tiny models)

from seqattn.errors import UserError
from seqattn.translate import decode_lines


def strict_error(data: bytes) -> str:
    with pytest.raises(UserError) as error:
        decode_lines(data, "input.txt")
    message = error.value.message()
    assert "\n" not in message and "(input.txt)" in message and "--errors replace" in message
    return message


@pytest.mark.parametrize("bad, line", [
    (b"ok\n\xff\xfe bad\nok\n", 2),  # not UTF-8 at all
    (b"ok\nok\nlatin-1 caf\xe9\n", 3),  # a Latin-1 file
    (b"\xc3\n", 1),  # a truncated sequence
    (b"a\nb\nc\n\xed\xa0\x80\n", 4),  # an encoded surrogate
    (b"a\n\xc0\xaf\n", 2),  # an overlong encoding
    (b"a\nb\xf4\x90\x80\x80", 2),  # beyond U+10FFFF, no final newline
])
def test_invalid_utf8_names_the_line(bad, line):
    assert f"invalid UTF-8 in input line {line} " in strict_error(bad)


@pytest.mark.parametrize("data, line", [(b"\x00\n", 1), (b"a\nb\x00c\n", 2), (b"a\nb\nc\x00", 3)])
def test_nul_byte_names_the_line(data, line):
    assert f"NUL byte in input line {line} " in strict_error(data)


def test_replace_keeps_every_line_in_place():
    data = b"one\n\xff two\nthree\x00\n\n caf\xe9 \r\nsix"
    lines = decode_lines(data, "stdin", errors="replace")
    assert lines == ["one", "\ufffd two", "three\ufffd", "", " caf\ufffd ", "six"]


def test_translator_keeps_line_count_and_order_on_odd_lines(trained_run):
    from seqattn.api import Translator

    translator = Translator(trained_run)
    data = (b"ka lo\n\xff\n\x00\n\n   \n" + "mi\u2028ne\n".encode() + b"\x01\x02\n"
            + b"ka " * 200 + b"\nze\n")
    lines = decode_lines(data, "stdin", errors="replace")
    assert len(lines) == 9
    with pytest.warns(UserWarning, match="input line 8 has .* truncated"):
        results = translator.translate(lines, beam=2)
    assert [r.source for r in results] == lines
    assert all("\n" not in r.text and "\r" not in r.text for r in results)
    assert results[3].text == "" and results[4].text == ""  # blank in, blank out
