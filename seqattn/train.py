"""`seqattn train`: the Trainer's loop and the `train()` orchestration.

The loop reads top-down: `Trainer.run` -> `_train_epochs` -> `_step_on` per batch (one
`training_step.train_step`) -> `_validate_and_keep_best` every `valid_every` steps -> `save`
every `save_every` steps. Everything a resume needs (weights, optimizer, schedule, RNG, step,
epoch, position in the epoch, early-stopping state) is in last.pt.
"""

from __future__ import annotations

import math
import random
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from seqattn.checkpoint import (
    check_compatible,
    load_checkpoint,
    load_weights,
    make_payload,
    restore_training_state,
    save_checkpoint,
)
from seqattn.config import Config, save_config
from seqattn.data import Batch, EncodedSplit
from seqattn.device import resolve_device, resolve_precision
from seqattn.errors import Interrupted, RunFailed, UserError
from seqattn.files import atomic_write_text
from seqattn.metrics_log import MetricsLog
from seqattn.models import EncoderDecoder, build_model
from seqattn.optim import Schedule, make_optimizer
from seqattn.prepare import Prepared, describe, prepare
from seqattn.rundir import RunDir
from seqattn.tokenizer import Tokenizer
from seqattn.training_step import OptimizerOverflow, train_step
from seqattn.validation import HIGHER_IS_BETTER, improves, validate


@dataclass
class LogWindow:
    """Steps since the last train log line: their loss and target tokens, and when it began."""

    tokens: int = 0
    loss: float = 0.0
    steps: int = 0
    start: float = field(default_factory=time.perf_counter)

    def add(self, tokens: int, loss: float) -> None:
        self.tokens, self.loss, self.steps = self.tokens + tokens, self.loss + loss, self.steps + 1

    def reset(self) -> None:
        self.tokens, self.loss, self.steps, self.start = 0, 0.0, 0, time.perf_counter()


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already trained
    elapsed: float = 0.0  # training seconds, summed over resumes
    tgt_tokens: int = 0
    best_value: float | None = None
    best_step: int = 0
    bad_validations: int = 0
    skipped_steps: int = 0


class Trainer:
    def __init__(self, config: Config, run: RunDir, prepared: Prepared, device: torch.device,
                 say=print) -> None:
        self.config, self.rundir, self.device, self.say = config, run, device, say
        self.tokenizer: Tokenizer = prepared.tokenizer
        self.train_data = prepared.train  # an EncodedSplit, or a StreamingCorpus (data.streaming)
        self.valid_data: EncodedSplit | None = prepared.valid
        cfg = config.train
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.model: EncoderDecoder = build_model(
            config.model, self.tokenizer.src_vocab_size, self.tokenizer.tgt_vocab_size).to(device)
        self.optimizer = make_optimizer(self.model, cfg, device)
        self.schedule = Schedule(cfg)
        self.precision = resolve_precision(cfg.precision, device)
        self.progress = Progress()
        self.stop_signal: str | None = None
        self.bad_in_row = 0  # consecutive skipped batches
        self.metrics = MetricsLog(run.metrics)
        self.window = LogWindow()
        self.last_valid_step = -1
        self.total_steps: int | None = None  # set by run(): the step limit that binds first
        self.resume_command = f"seqattn train CONFIG --run-dir {run} --resume"

    # -- checkpoints ---------------------------------------------------------------------------

    def payload(self, full: bool) -> dict:
        """A checkpoint of now; `full` adds what an exact resume needs."""
        training = None
        if full:
            rng = {"torch": torch.get_rng_state()}
            if self.device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state()
            training = {"optimizer": self.optimizer.state_dict(),
                        "schedule": self.schedule.state_dict(), "rng": rng}
        return make_payload(self.config, self.tokenizer, self.model, dict(vars(self.progress)),
                            training)

    def save(self, name: str) -> None:
        keep = self.config.train.keep_last
        if name == "last.pt" and keep > 0 and self.progress.step > 0:
            save_checkpoint(self.payload(full=False), self.rundir.step_checkpoint(self.progress.step))
            self.rundir.prune_step_checkpoints(keep)
        save_checkpoint(self.payload(full=name == "last.pt"), self.rundir.checkpoint(name))

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        check_compatible(state, self.config, self.tokenizer, path)
        load_weights(self.model, state, path)
        self.progress = restore_training_state(state, self.optimizer, self.schedule, Progress, path)
        self.metrics.forget_after(self.progress.step)
        for stale in path.parent.glob(".*.tmp"):  # left by a kill during a save
            stale.unlink(missing_ok=True)

    # -- the loop -------------------------------------------------------------------------------

    def log_event(self, event: str, **fields) -> None:
        self.metrics.write({"event": event, "step": self.progress.step, "epoch": self.progress.epoch,
                            "elapsed": round(self.progress.elapsed, 3), **fields})

    def _train_step(self, batch) -> float | None:
        """One update; returns the per-token loss, or None when the batch was skipped (NaN/inf)."""
        lr = self.schedule.lr(self.progress.step + 1, self._done())
        try:
            return train_step(self.model, self.optimizer, batch, self.config.train,
                              self.precision, self.device, lr)
        except OptimizerOverflow:
            raise RunFailed(f"training diverged: the optimizer step overflowed at step "
                            f"{self.progress.step + 1} (train.lr={self.config.train.lr}); the last "
                            f"good checkpoint is kept in {self.rundir.checkpoints}. Lower "
                            f"train.lr") from None

    def _should_stop(self) -> str | None:
        cfg, p = self.config.train, self.progress
        if cfg.max_steps is not None and p.step >= cfg.max_steps:
            return f"reached train.max_steps={cfg.max_steps}"
        if cfg.max_epochs is not None and p.epoch >= cfg.max_epochs:
            return f"reached train.max_epochs={cfg.max_epochs}"
        if cfg.max_minutes is not None and p.elapsed >= cfg.max_minutes * 60:
            return f"reached train.max_minutes={cfg.max_minutes}"
        if cfg.patience is not None and p.bad_validations >= cfg.patience:
            return f"no improvement in {cfg.patience} validations (train.patience)"
        return None

    def _done(self) -> float:
        """The share of the run behind us, against the first limit that will stop it."""
        cfg, p = self.config.train, self.progress
        shares = [0.0]
        if self.total_steps:
            shares.append(p.step / self.total_steps)
        if cfg.max_minutes is not None:
            shares.append(p.elapsed / (cfg.max_minutes * 60))
        return max(shares)

    def _total_steps(self, per_epoch: int | None) -> int | None:
        cfg = self.config.train
        limits = []
        if cfg.max_steps is not None:
            limits.append(cfg.max_steps)
        if cfg.max_epochs is not None and per_epoch is not None:  # None: a stream
            limits.append(cfg.max_epochs * per_epoch)
        return min(limits) if limits else None

    def run(self) -> dict:
        cfg, p = self.config.train, self.progress
        per_epoch = self.train_data.batches_per_epoch(cfg.batch_tokens, cfg.seed)
        self.total_steps = self._total_steps(per_epoch)
        bar = tqdm(total=self.total_steps, initial=p.step, unit="step",
                   dynamic_ncols=True, file=sys.stderr, disable=None)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            stop = self._train_epochs(bar)
            if self.stop_signal:
                self.save("last.pt")
                raise Interrupted(f"interrupted by {self.stop_signal} at step {p.step}; "
                                  f"checkpoint saved. Resume with: {self.resume_command}")
            if self.last_valid_step != p.step and self.valid_data is not None and p.step > 0:
                self._validate_and_keep_best(bar)
            self.save("last.pt")
        finally:
            bar.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.say(f"stopped: {stop}; best {cfg.best_metric} {p.best_value} at step {p.best_step}")
        return {"stop": stop, "step": p.step, "best": p.best_value, "best_step": p.best_step}

    def _train_epochs(self, bar) -> str:
        """Epochs of batches from the saved position until a limit or a signal says stop."""
        cfg, p = self.config.train, self.progress
        stop = self._should_stop()
        while stop is None:
            batches = self.train_data.epoch_batches(cfg.batch_tokens, cfg.seed, p.epoch,
                                                    p.batch_in_epoch)
            for index, batch in self._timed(batches):
                self._step_on(batch, bar)
                p.batch_in_epoch = index + 1
                stop = self._should_stop() or self.stop_signal
                if stop:
                    return stop
            p.epoch += 1
            p.batch_in_epoch = 0
            stop = self._should_stop() or self.stop_signal
        return stop

    def _timed(self, batches: Iterator[tuple[int, Batch]]) -> Iterator[tuple[int, Batch]]:
        """The batches, the time spent making each (a stream reads and tokenises here) counted
        as training time."""
        while True:
            started = time.perf_counter()
            item = next(batches, None)
            self.progress.elapsed += time.perf_counter() - started
            if item is None:
                return
            yield item

    def _step_on(self, batch: Batch, bar) -> None:
        """Train on one batch, then log, validate and save on their schedules."""
        cfg, p, window = self.config.train, self.progress, self.window
        started = time.perf_counter()
        batch = batch.to(self.device)
        loss = self._train_step(batch)
        p.elapsed += time.perf_counter() - started
        if loss is None:
            self._bad_step()
            return
        p.step += 1
        self.bad_in_row = 0
        p.tgt_tokens += batch.num_tgt_tokens
        window.add(batch.num_tgt_tokens, loss)
        bar.update(1)
        if p.step % cfg.log_every == 0:
            self._log_train(bar, window.loss / window.steps,
                            window.tokens / (time.perf_counter() - window.start))
            window.reset()
        if p.step % cfg.valid_every == 0:
            self._validate_and_keep_best(bar)
            self.last_valid_step = p.step
            window.start = time.perf_counter()  # validation time is not training throughput
        if p.step % cfg.save_every == 0:
            self.save("last.pt")

    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.stop_signal is not None:  # a second signal: stop now, last.pt stays as it was
            raise KeyboardInterrupt
        self.stop_signal = name

    def _bad_step(self) -> None:
        self.bad_in_row += 1
        self.progress.skipped_steps += 1
        self.log_event("skipped", reason="non-finite loss or gradient",
                       in_a_row=self.bad_in_row)
        if self.bad_in_row >= self.config.train.max_bad_steps:
            raise RunFailed(f"training diverged: loss or gradient was NaN/inf for "
                            f"{self.bad_in_row} batches in a row (train.max_bad_steps); the last "
                            f"good checkpoint is kept in {self.rundir.checkpoints}. Lower "
                            f"train.lr or raise train.clip_norm's effect (a smaller value)")

    def _log_train(self, bar, loss: float, tokens_per_second: float) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        self.log_event("train", loss=round(loss, 4), lr=lr, tgt_tokens=self.progress.tgt_tokens,
                       tokens_per_second=round(tokens_per_second, 1))
        bar.set_postfix(loss=f"{loss:.3f}", ppl=f"{math.exp(min(loss, 50)):.1f}",
                        tok_s=f"{tokens_per_second:.0f}", lr=f"{lr:.2e}", refresh=False)
        if bar.disable:
            self.say(f"step {self.progress.step} epoch {self.progress.epoch} loss {loss:.3f} "
                     f"{tokens_per_second:.0f} tok/s lr {lr:.2e}")

    def _validate_and_keep_best(self, bar) -> None:
        started = time.perf_counter()
        result = validate(self.model, self.valid_data, self.tokenizer, self.config, self.device)
        self.progress.elapsed += time.perf_counter() - started
        p, cfg = self.progress, self.config.train
        atomic_write_text(self.rundir.valid_hypotheses(p.step), "\n".join(result.pop("hypotheses")) + "\n")
        samples = result.pop("samples")
        self.log_event("valid", **result)
        value = result[cfg.best_metric]
        improved = improves(value, p.best_value, cfg.best_metric)
        if improved:
            p.best_value, p.best_step, p.bad_validations = value, p.step, 0
            self.save("best.pt")
        else:
            p.bad_validations += 1
        self.schedule.after_validation(value, HIGHER_IS_BETTER[cfg.best_metric])
        write = tqdm.write if not bar.disable else self.say
        write(f"valid step {p.step}: loss {result['loss']:.3f} ppl {result['ppl']:.2f} "
              f"BLEU {result['bleu']:.2f} chrF {result['chrf']:.2f}"
              f"{' (best)' if improved else ''} [{result['seconds']:.0f}s]")
        for src, hyp, ref in samples:
            write(f"  src: {src}\n  hyp: {hyp}\n  ref: {ref}")


def train(config: Config, run_dir: Path, resume: bool = False, overwrite: bool = False,
          say=print, resume_command: str | None = None) -> dict:
    """Prepare, build, (resume,) train; returns a summary.

    `resume_command` is what an interrupted run tells the user to type to continue.
    """
    run = RunDir(run_dir)
    run.check_for_training(resume, overwrite)
    if overwrite:
        run.clear_for_overwrite()
    device = resolve_device(config.train.device)
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    prepared = _prepare_or_clean_up(config, run, resume, say)
    run.root.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, run, prepared, device, say)
    if resume_command:
        trainer.resume_command = resume_command
    if resume:
        trainer.restore(run.last)
        say(f"resuming at step {trainer.progress.step} (epoch {trainer.progress.epoch})")
    # Only now: a --resume refused above must not replace the run's config with the wrong one.
    save_config(config, run.config)
    say(f"model {describe_model(config)}, {trainer.model.num_parameters():,} parameters; "
        f"device {device}, precision {trainer.precision}")
    return trainer.run()


def _prepare_or_clean_up(config: Config, run: RunDir, resume: bool, say) -> Prepared:
    created = not run.root.exists()
    try:
        prepared = prepare(config, run.root, with_valid=True, allow_retrain=not resume, say=say)
    except UserError:
        if created:  # e.g. nothing left after filtering: leave no half-made run dir behind
            import shutil

            shutil.rmtree(run.root, ignore_errors=True)
        raise
    say(describe(prepared.stats))
    return prepared


def describe_model(config: Config) -> str:
    m = config.model
    if m.kind == "transformer":
        t = m.transformer
        return (f"transformer ({t.encoder_layers}+{t.decoder_layers} layers, d {m.embedding_size}, "
                f"{t.heads} heads, ff {t.ff_size}, {t.norm}-norm)")
    return f"{m.kind} ({m.rnn.cell})"
