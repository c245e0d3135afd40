"""The `translate` command's module (seqattn/translate.py): reading input lines, output lines."""

from __future__ import annotations

import pytest

from seqattn.errors import UserError
from seqattn.translate import decode_lines, read_input


@pytest.mark.parametrize("data, expected", [
    (b"", []),
    (b"\n", [""]),
    (b"a", ["a"]),
    (b"a\n", ["a"]),
    (b"a\n\n", ["a", ""]),
    (b"a\r\nb\r\n", ["a", "b"]),  # CRLF files
    (b"a\rb\n", ["a\rb"]),  # a lone CR is not a line break
    ("a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\n".encode(), ["a\u2028b\u2029c\x85d\x0be\x0cf\x1cg"]),
    (b"\xef\xbb\xbfbom\n", ["\ufeffbom"]),
])
def test_only_newline_splits_lines(data, expected):
    assert decode_lines(data, "stdin") == expected
    assert decode_lines(data, "stdin", errors="replace") == expected


def test_unknown_errors_mode():
    with pytest.raises(UserError, match="--errors"):
        decode_lines(b"a\n", "stdin", errors="ignore")


def test_input_file_problems(tmp_path):
    with pytest.raises(UserError, match="input file not found"):
        read_input(str(tmp_path / "missing.txt"), "strict")
    with pytest.raises(UserError, match="input is not a file"):
        read_input(str(tmp_path), "strict")
