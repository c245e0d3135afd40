"""The `translate` command's module (seqattn/translate.py): reading input lines, output lines,
the checks of the view options."""

from __future__ import annotations

import numpy as np
import pytest

from seqattn.api import Translation
from seqattn.errors import UserError
from seqattn.translate import check_view_options, decode_lines, format_results, read_input


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


def translation(text, score, nbest=(), attention=None, src=(), tgt=()):
    return Translation(source="src", text=text, score=score, nbest=list(nbest), attention=attention,
                       src_pieces=list(src), tgt_pieces=list(tgt))


def test_format_results_one_line_per_input_or_one_per_hypothesis():
    results = [translation("a b", -1.5, nbest=[(-1.5, "a b"), (-2.25, "a c")]),
               translation("", 0.0)]  # a blank line: no hypotheses
    assert format_results(results, nbest=1) == ["a b", ""]
    assert format_results(results, nbest=2) == ["0\t-1.5000\ta b", "0\t-2.2500\ta c", "1\t0.0000\t"]


def test_format_results_with_align_appends_pharaoh_pairs():
    attention = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])  # [T, S]
    result = translation("y x", -1.0, attention=attention, src=["x", "y", "</s>"],
                         tgt=["y", "x", "</s>"])
    [line] = format_results([result], nbest=1, align=True)
    text, pairs = line.split(" ||| ")
    assert text == "y x" and set(pairs.split()) == {"1-0", "0-1"}  # source i - target j, no </s>
    assert format_results([translation("", 0.0)], nbest=1, align=True) == [" ||| "]


def test_view_options_that_need_no_model():
    assert check_view_options(False, None, 1, None, "mean") == "mean"
    assert check_view_options(True, None, 1, 2, "3") == 3
    with pytest.raises(UserError, match="--attention-layer chooses what"):
        check_view_options(False, None, 1, 2, "mean")
    with pytest.raises(UserError, match="counts from 1"):
        check_view_options(True, None, 1, 0, "mean")
    with pytest.raises(UserError, match="--align writes one line per input line"):
        check_view_options(True, None, 3, None, "mean")


def test_read_input_reads_a_file_by_its_lines(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"ka lo\r\nmi\n\nze")
    assert read_input(str(path), "strict") == ["ka lo", "mi", "", "ze"]
