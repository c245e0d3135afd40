"""Helpers shared by tests/test_serve.py and tests/test_page.py: a second tiny run (no attention),
a translator posing as a many-layer model, and a real uvicorn server on a free localhost port."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import tiny_config_dict, toy_pairs, write_jsonl

from seqattn.decode_queue import DecodeQueue
from seqattn.serve import LoadedRun, close_runs, open_socket  # noqa: F401 - close_runs for the tests


def seq2seq_run_dir(tmp_path_factory) -> Path:
    """A tiny trained run of the model without attention, for the side-by-side.

    Trained once per test session: the test modules that use it share the folder.
    """
    from seqattn.config import config_from_dict
    from seqattn.train import train

    root = tmp_path_factory.getbasetemp() / "seq2seq_run"
    run_dir = root / "plain"
    if (run_dir / "checkpoints" / "best.pt").exists():
        return run_dir
    folder = root / "toy"
    write_jsonl(folder / "train.jsonl", toy_pairs(600, seed=1))
    write_jsonl(folder / "validation.jsonl", toy_pairs(40, seed=2))
    write_jsonl(folder / "test.jsonl", toy_pairs(40, seed=3))
    config = config_from_dict(tiny_config_dict(folder, model={"kind": "seq2seq"},
                                               train={"max_steps": 10}))
    train(config, run_dir, say=lambda *_: None)
    return run_dir


@dataclass
class Layered:
    """A Translation with Transformer-style attention_layers: [layers, heads, tgt, src]."""

    source: str
    text: str
    score: float
    src_pieces: list
    tgt_pieces: list
    attention: np.ndarray | None
    nbest: list
    attention_layers: np.ndarray | None


class LayeredTranslator:
    """A real translator whose results also carry 2 layers x 3 heads of (made-up) attention."""

    layers, heads = 2, 3

    def __init__(self, translator) -> None:
        self.inner = translator
        self.config, self.run_dir, self.model = translator.config, translator.run_dir, translator.model

    def translate(self, sentences, beam=None, nbest=1, batch_size=None, attention=True):
        results = self.inner.translate(sentences, beam=beam, nbest=nbest, attention=attention)
        return [Layered(r.source, r.text, r.score, r.src_pieces, r.tgt_pieces, r.attention, r.nbest,
                        self._layers(r.attention)) for r in results]

    def _layers(self, attention):
        if attention is None:
            return None
        # Each head a different, still row-normalised, sharpening of the real attention.
        heads = [attention ** (k + 1) / (attention ** (k + 1)).sum(-1, keepdims=True)
                 for k in range(self.layers * self.heads)]
        return np.stack(heads).reshape(self.layers, self.heads, *attention.shape)  # [L, H, T, S]


def make_runs(named: dict[str, object]) -> list[LoadedRun]:
    return [LoadedRun(name, t, DecodeQueue(t, 64, name)) for name, t in named.items()]


@contextmanager
def running_server(app, timeout: float = 20.0):
    """uvicorn on 127.0.0.1 and a free port, in a thread; yields the base URL."""
    import uvicorn

    sock = open_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
