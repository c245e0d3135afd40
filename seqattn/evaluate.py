"""`seqattn evaluate`: translate a split, score it with sacreBLEU, write eval/<split>.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from seqattn.api import Translator
from seqattn.data import EncodedSplit, load_corpus
from seqattn.files import atomic_write_text, check_writable_file
from seqattn.loss import corpus_loss
from seqattn.metrics import bleu_by_length, corpus_scores
from seqattn.rundir import RunDir
from seqattn.search import perplexity


def reference_loss(translator: Translator, src: list[str], tgt: list[str]) -> tuple[float, int]:
    """Cross-entropy of the references (pairs with an empty side left out), for perplexity."""
    tok = translator.tokenizer
    keep = [i for i, (s, t) in enumerate(zip(src, tgt)) if s.strip() and t.strip()]
    data = EncodedSplit([np.asarray(s, np.int32) for s in tok.encode_src([src[i] for i in keep])],
                        [np.asarray(t, np.int32) for t in tok.encode_tgt([tgt[i] for i in keep])],
                        [], [])
    if not data.src:
        return 0.0, 0
    return corpus_loss(translator.model, data, translator.config.search.batch_size,
                       translator.device)


def evaluate(run_dir: Path, split: str | None = None, beam: int | None = None,
             overrides: list[str] | None = None, output: Path | None = None,
             checkpoint: str | None = None, progress=None) -> dict:
    """Score one split; writes RUN_DIR/eval/<split>.json and the hypotheses."""
    run = RunDir(run_dir)
    if output is not None:
        output = Path(output)
        if output.parent.resolve() == run.eval.resolve() and run.root.is_dir():
            output.parent.mkdir(exist_ok=True)  # the run's own eval/ folder is ours to create
        check_writable_file(output, "--output")
    translator = Translator(run.root, checkpoint=checkpoint, overrides=overrides)
    config = translator.config
    split = split or config.data.test_split
    beam = beam or config.search.beam_size
    corpus = load_corpus(config.data, split)
    if progress is not None:
        progress.reset(total=len(corpus.src))
    started = time.perf_counter()
    results = translator.translate(corpus.src, beam=beam, attention=False, progress=progress)
    seconds = time.perf_counter() - started
    hypotheses = [r.text for r in results]
    scores = corpus_scores(hypotheses, corpus.tgt)
    loss, tokens = reference_loss(translator, corpus.src, corpus.tgt)
    report = {
        "split": split,
        "dataset": config.data.path,
        "pair": f"{config.data.src_lang}-{config.data.tgt_lang}",
        "checkpoint": str(translator.checkpoint),
        "model": config.model.kind,
        "parameters": translator.num_parameters,
        "beam": beam,
        "decoder": {"shortlist": config.search.shortlist,
                    "shortlist_per_source": config.search.shortlist_per_source,
                    "precision": config.search.precision},
        "bleu": scores["bleu"],
        "chrf": scores["chrf"],
        "ppl": round(perplexity(loss, tokens), 3),
        "sentences": len(hypotheses),
        "seconds": round(seconds, 2),
        "sentences_per_second": round(len(hypotheses) / seconds, 2) if seconds > 0 else None,
        "sacrebleu signatures": scores["signatures"],
        "bleu_by_source_length": bleu_by_length(hypotheses, corpus.tgt,
                                                [len(s.split()) for s in corpus.src]),
    }
    hyp_path = Path(output) if output is not None else run.eval_hypotheses(split)
    atomic_write_text(hyp_path, "".join(h + "\n" for h in hypotheses))
    atomic_write_text(run.eval_report(split), json.dumps(report, indent=2) + "\n")
    report["hypotheses_file"] = str(hyp_path)
    report["report_file"] = str(run.eval_report(split))
    return report
