"""One decoding thread per model: concurrent requests queue up and share decoding batches.

A Translator is not safe to call from two threads at once (it keeps state such as its one-time
warning, and two decodes would fight over the same cores). So each loaded run gets one thread
that owns its Translator. Requests that wait while a batch decodes are merged into the next
batch when they ask for the same search settings; search results do not depend on the batch's
other sentences, so merging changes speed, not translations.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field


@dataclass
class DecodeJob:
    sentences: list[str]
    beam: int
    nbest: int
    attention: bool
    future: Future = field(default_factory=Future)

    @property
    def settings(self) -> tuple[int, int, bool]:
        return self.beam, self.nbest, self.attention


_STOP = object()


class DecodeQueue:
    """Runs `translator.translate` on one thread; `submit` returns a Future of the Translations."""

    def __init__(self, translator, max_batch_sentences: int = 64, name: str = "decode") -> None:
        self.translator = translator
        self.max_batch_sentences = max_batch_sentences
        self.batches: list[int] = []  # sentences per translate call (for tests and curiosity)
        self._inbox: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=f"seqattn-{name}", daemon=True)
        self._thread.start()

    def submit(self, sentences: list[str], beam: int, nbest: int, attention: bool) -> Future:
        job = DecodeJob(list(sentences), beam, nbest, attention)
        self._inbox.put(job)
        return job.future

    def close(self, timeout: float | None = 10.0) -> None:
        self._inbox.put(_STOP)
        self._thread.join(timeout)

    def _loop(self) -> None:
        waiting: deque[DecodeJob] = deque()
        stopping = False
        while not (stopping and not waiting):
            if not waiting and not stopping:
                item = self._inbox.get()  # idle: block until work arrives
                if item is _STOP:
                    stopping = True
                    continue
                waiting.append(item)
            stopping = self._collect(waiting) or stopping
            if waiting:
                self._run(self._next_batch(waiting))

    def _collect(self, waiting: deque[DecodeJob]) -> bool:
        """Move what has arrived meanwhile into `waiting`, without blocking; True on stop."""
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            waiting.append(item)

    def _next_batch(self, waiting: deque[DecodeJob]) -> list[DecodeJob]:
        """The oldest job, plus younger ones with the same settings while they fit."""
        first = waiting.popleft()
        batch, size, keep = [first], len(first.sentences), deque()
        while waiting:
            job = waiting.popleft()
            if job.settings == first.settings and size + len(job.sentences) <= self.max_batch_sentences:
                batch.append(job)
                size += len(job.sentences)
            else:
                keep.append(job)
        waiting.extend(keep)
        return batch

    def _run(self, batch: list[DecodeJob]) -> None:
        # A request whose client went away was cancelled: decode only the others.
        live = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if live:
            self._decode(live)

    def _decode(self, jobs: list[DecodeJob]) -> None:
        first = jobs[0]
        sentences = [s for job in jobs for s in job.sentences]
        try:
            self.batches.append(len(sentences))
            results = self.translator.translate(sentences, beam=first.beam, nbest=first.nbest,
                                                attention=first.attention)
        except Exception as exc:  # every waiting request must get an answer, even this one
            if len(jobs) > 1:  # one request's input should fail that request alone
                for job in jobs:
                    self._decode([job])
                return
            first.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            job.future.set_result(results[start:start + len(job.sentences)])
            start += len(job.sentences)
