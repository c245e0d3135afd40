"""The decoding queue of `seqattn serve` (seqattn/decode_queue.py): batching, failing alone,
cancelled requests, closing."""

from __future__ import annotations

import threading
import time

import pytest

from seqattn.decode_queue import DecodeQueue


class Recorder:
    """A fake translator that blocks its first call until released, and records each batch."""

    def __init__(self) -> None:
        self.release, self.calls = threading.Event(), []

    def translate(self, sentences, beam=None, nbest=1, attention=True):
        if not self.calls:
            self.release.wait(10)
        self.calls.append((list(sentences), beam))
        if "boom" in sentences:
            raise ValueError("boom")
        return [f"{s}/{beam}" for s in sentences]


def test_waiting_requests_with_the_same_settings_share_one_batch():
    fake = Recorder()
    queue = DecodeQueue(fake, max_batch_sentences=4)
    first = queue.submit(["a"], 1, 1, True)
    time.sleep(0.05)  # let the worker take `first` and block inside translate
    same = [queue.submit([f"s{k}"], 1, 1, True) for k in range(4)]
    other = queue.submit(["o"], 5, 1, True)
    fake.release.set()
    assert first.result(10) == ["a/1"] and other.result(10) == ["o/5"]
    assert [f.result(10) for f in same] == [["s0/1"], ["s1/1"], ["s2/1"], ["s3/1"]]
    assert [call[0] for call in fake.calls] == [["a"], ["s0", "s1", "s2", "s3"], ["o"]]
    queue.close()


def test_a_failing_request_fails_alone():
    fake = Recorder()
    queue = DecodeQueue(fake)
    first = queue.submit(["a"], 1, 1, True)
    time.sleep(0.05)
    good, bad = queue.submit(["g"], 1, 1, True), queue.submit(["boom"], 1, 1, True)
    fake.release.set()
    assert first.result(10) == ["a/1"] and good.result(10) == ["g/1"]
    with pytest.raises(ValueError):
        bad.result(10)
    queue.close()


def test_a_cancelled_request_is_not_decoded_and_batches_respect_their_limit():
    fake = Recorder()
    queue = DecodeQueue(fake, max_batch_sentences=3)
    first = queue.submit(["a"], 1, 1, True)
    time.sleep(0.05)
    gone = queue.submit(["gone"], 1, 1, True)
    assert gone.cancel()  # its client went away while it waited
    kept = [queue.submit(["x", "y"], 1, 1, True), queue.submit(["z", "w"], 1, 1, True)]
    fake.release.set()
    assert first.result(10) == ["a/1"]
    assert [f.result(10) for f in kept] == [["x/1", "y/1"], ["z/1", "w/1"]]
    assert all("gone" not in call[0] for call in fake.calls)
    assert max(queue.batches) <= 3  # 2 + 2 sentences do not fit one batch of 3
    queue.close()


def test_close_answers_what_was_submitted_before_it():
    fake = Recorder()
    fake.release.set()
    queue = DecodeQueue(fake)
    futures = [queue.submit([f"s{k}"], 2, 1, False) for k in range(5)]
    queue.close()
    assert [f.result(0) for f in futures] == [[f"s{k}/2"] for k in range(5)]
