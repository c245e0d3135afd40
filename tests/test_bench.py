"""`seqattn bench` on a tiny model: every figure is there and sane (speeds are not asserted)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from seqattn.cli import app


def test_bench_reports_training_decoding_flops_and_memory(tiny_config, tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, [
        "bench", str(tiny_config("b")), "--run-dir", str(tmp_path / "run"), "--batch-tokens",
        "200,400", "--precision", "fp32", "--beams", "1,3", "--steps", "2", "--warmup", "1",
        "--sentences", "10", "--by-length", "--output-lengths", "2,4", "--output", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["peak_gflops"]["fp32"] > 0
    assert [r["batch_tokens"] for r in report["training"]] == [200, 400]
    for row in report["training"]:
        assert row["tgt_tokens_per_second"] > 0 and 0 < row["fraction_of_peak"] < 1.5
    assert [r["beam"] for r in report["decoding"]] == [1, 3]
    assert all(r["sentences"] == 10 for r in report["decoding"])
    assert report["peak_rss_mib"] > 0
    growth = report["decoding_growth"]
    assert [r["output_tokens"] for r in growth] == [2, 4]
    assert all(r["cached_seconds"] > 0 and r["prefix_rerun_seconds"] > 0 for r in growth)
    short, long = report["training_by_length"]
    assert (short["lengths"], long["lengths"]) == ("short", "long")
    assert short["batch_tokens"] == 200 and short["tgt_tokens_per_second"] > 0
    assert short["mean_pieces"] <= short["median_pieces"] < long["mean_pieces"]


def test_length_halves_split_at_the_median():
    from seqattn.bench import length_halves, sentence_lengths
    from seqattn.data import EncodedSplit

    src = [[5] * n for n in (2, 3, 4, 9, 10, 11)]
    data = EncodedSplit(src, [[5] * n for n in (2, 3, 4, 9, 10, 11)], [], [])
    median, halves = length_halves(sentence_lengths(data), [[0, 1], [2], [4, 5], [3, 4], [2, 5]])
    assert median == 9  # a batch across the median ([3, 4]: 9 and 10 pieces) is in neither half
    assert halves == {"short": [[0, 1], [2]], "long": [[4, 5]]}


def test_bench_rejects_bad_lists(tiny_config, tmp_path):
    result = CliRunner().invoke(app, ["bench", str(tiny_config("b")), "--beams", "x"])
    assert result.exit_code == 2 and "--beams needs positive integers" in result.output


def test_bench_times_the_fast_decoder_next_to_the_exact_one(tiny_config, tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, [
        "bench", str(tiny_config("b")), "--run-dir", str(tmp_path / "run"), "--precision", "fp32",
        "--batch-tokens", "200", "--beams", "1,3", "--steps", "1", "--warmup", "1",
        "--sentences", "8", "--set", "search.shortlist=5", "--set", "search.precision=int8",
        "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["decoding"]
    assert [(r["decoder"], r["beam"]) for r in rows] == [
        ("exact", 1), ("exact", 3), ("shortlist 5/20+int8", 1), ("shortlist 5/20+int8", 3)]
    assert all(r["sentences_per_second"] > 0 for r in rows)


def test_by_length_refuses_an_empty_half(tiny_config, tmp_path, toy_corpus):
    from tests.conftest import toy_pairs, write_jsonl

    # every pair the same length: the "long" half (above the median) holds no batch
    rows = toy_pairs(200, seed=4, min_len=3, max_len=3)
    for split in ("train", "validation", "test"):
        write_jsonl(toy_corpus / f"{split}.jsonl", rows)
    result = CliRunner().invoke(app, [
        "bench", str(tiny_config("b")), "--run-dir", str(tmp_path / "run"), "--precision", "fp32",
        "--batch-tokens", "200", "--beams", "1", "--steps", "1", "--warmup", "1",
        "--sentences", "4", "--by-length"])
    assert result.exit_code == 2, result.output
    assert "no training batch lies wholly in the long half" in result.output
