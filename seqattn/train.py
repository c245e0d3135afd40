"""`seqattn train`: the Trainer's loop and the `train()` orchestration.

The loop reads top-down: `Trainer.run` -> `_train_epochs` -> `_step_on` per batch (one
`training_step.train_step`) -> `_validate_and_keep_best` every `valid_every` steps -> `save`
every `save_every` steps. Everything a resume needs (weights, optimizer, schedule, RNG, step,
epoch, position in the epoch, early-stopping state) is in last.pt.

Under torchrun each rank runs this same loop on its share of every update
(seqattn/distributed.py); the ranks agree after each update on the clock and on signals, and on
rank 0's validation verdict, so they take every decision together; rank 0 alone writes.
"""

from __future__ import annotations

import itertools
import math
import random
import re
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
from seqattn.data import Batch, EncodedSplit, make_batch, train_batches
from seqattn.device import resolve_device, resolve_precision
from seqattn.distributed import (
    SINGLE,
    World,
    barrier,
    from_all,
    from_main,
    is_lost_peer,
    join_world,
    launched_by_torchrun,
    leave_world,
    max_over_ranks,
    min_over_ranks,
    update_groups,
    updates_per_epoch,
    wrap,
)
from seqattn.distributed import describe as describe_world
from seqattn.errors import Interrupted, RunFailed, UserError
from seqattn.files import atomic_write_text
from seqattn.metrics_log import MetricsLog
from seqattn.models import EncoderDecoder, build_model
from seqattn.optim import Schedule, make_optimizer
from seqattn.prepare import Prepared, describe, prepare
from seqattn.rundir import RunDir
from seqattn.tokenizer import Tokenizer
from seqattn.training_step import BatchLoss, OptimizerOverflow, Update, train_step
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
    batch_in_epoch: int = 0  # batches of `epoch` already trained, all ranks together
    elapsed: float = 0.0  # training seconds, summed over resumes
    tgt_tokens: int = 0
    best_value: float | None = None
    best_step: int = 0
    bad_validations: int = 0
    skipped_steps: int = 0


class Trainer:
    def __init__(self, config: Config, run: RunDir, prepared: Prepared, device: torch.device,
                 say=print, world: World = SINGLE) -> None:
        self.config, self.rundir, self.device, self.say, self.world = config, run, device, say, world
        self.tokenizer: Tokenizer = prepared.tokenizer
        self.train_data = prepared.train  # an EncodedSplit, or a StreamingCorpus (data.streaming)
        self.valid_data: EncodedSplit | None = prepared.valid
        cfg = config.train
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.model: EncoderDecoder = build_model(
            config.model, self.tokenizer.src_vocab_size, self.tokenizer.tgt_vocab_size).to(device)
        if world.rank > 0:  # the same weights everywhere, but each rank its own dropout stream
            torch.manual_seed(cfg.seed + 1_000_003 * world.rank)
        # What an update runs forward and backward: the model, or DDP over its loss.
        self.learner = wrap(BatchLoss(self.model, cfg), device) if world.distributed else self.model
        self.optimizer = make_optimizer(self.model, cfg, device)
        self.schedule = Schedule(cfg)
        self.precision = resolve_precision(cfg.precision, device)
        self.progress = Progress()
        self.stop_signal: str | None = None  # caught by this rank's handler
        self.agreed_signal: str | None = None  # caught by any rank, as of the last agreement
        self.bad_in_row = 0  # consecutive skipped batches
        self.metrics = MetricsLog(run.metrics)
        self.window = LogWindow()
        self.last_valid_step = -1
        self.total_steps: int | None = None  # set by run(): the step limit that binds first
        self.resume_command = f"seqattn train CONFIG --run-dir {run} --resume"

    # -- checkpoints ---------------------------------------------------------------------------

    def _rng_state(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state()
        return rng

    def payload(self, full: bool, ranks_rng: list[dict] | None = None) -> dict:
        """A checkpoint of now; `full` adds what an exact resume needs: the optimizer, the
        schedule, the random state (rank 0's; with `ranks_rng`, every rank's in `world`)."""
        training = None
        if full:
            training = {"optimizer": self.optimizer.state_dict(),
                        "schedule": self.schedule.state_dict(), "rng": self._rng_state(),
                        "world": {"size": self.world.size, "rng": ranks_rng or []}}
        return make_payload(self.config, self.tokenizer, self.model, dict(vars(self.progress)),
                            training)

    def save(self, name: str) -> None:
        """Rank 0 writes; saving last.pt is a collective (it gathers every rank's random state),
        so every rank calls it at the same step."""
        ranks_rng = from_all(self._rng_state()) if name == "last.pt" and self.world.distributed \
            else None
        if not self.world.is_main:
            return
        keep = self.config.train.keep_last
        if name == "last.pt" and keep > 0 and self.progress.step > 0:
            save_checkpoint(self.payload(full=False), self.rundir.step_checkpoint(self.progress.step))
            self.rundir.prune_step_checkpoints(keep)
        save_checkpoint(self.payload(full=name == "last.pt", ranks_rng=ranks_rng),
                        self.rundir.checkpoint(name))

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        check_compatible(state, self.config, self.tokenizer, path)
        self._check_same_world(state, path)
        load_weights(self.model, state, path)
        self.progress = restore_training_state(state, self.optimizer, self.schedule, Progress, path)
        ranks_rng = _saved_world(state, path)["rng"]
        if self.world.distributed and ranks_rng:  # this rank's own random stream
            rng = ranks_rng[self.world.rank]
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"])
        if self.world.is_main:
            self.metrics.forget_after(self.progress.step)
            for stale in path.parent.glob(".*.tmp"):  # left by a kill during a save
                stale.unlink(missing_ok=True)

    def _check_same_world(self, state: dict, path: Path) -> None:
        """Resuming is exact with as many ranks as wrote the checkpoint, and refused otherwise:
        each rank's random stream and share of the batches depend on the number of ranks."""
        saved = _saved_world(state, path)["size"]
        if saved != self.world.size:
            launch = "without torchrun" if saved == 1 else \
                f"with torchrun on {saved} ranks in all (--nnodes x --nproc_per_node)"
            raise UserError(f"checkpoint was written by {saved} rank(s), this run has "
                            f"{self.world.size}: resuming with another number of ranks is not "
                            f"exact", str(path), f"resume {launch}, or start again with --overwrite")

    # -- the loop -------------------------------------------------------------------------------

    def log_event(self, event: str, **fields) -> None:
        if not self.world.is_main:
            return
        self.metrics.write({"event": event, "step": self.progress.step, "epoch": self.progress.epoch,
                            "elapsed": round(self.progress.elapsed, 3), **fields})

    def _train_step(self, batches) -> Update | None:
        """One update; returns its loss and tokens, or None when it was skipped (NaN/inf)."""
        lr = self.schedule.lr(self.progress.step + 1, self._done())
        try:
            return train_step(self.learner, self.optimizer, batches, self.config.train,
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

    def _updates_per_epoch(self) -> int | None:
        """Updates in one epoch; None for a stream (its length is not known in advance)."""
        cfg = self.config.train
        batches = self.train_data.batches_per_epoch(cfg.batch_tokens, cfg.seed)
        if batches is None:
            return None
        updates = updates_per_epoch(batches, self.world, cfg.accumulate)
        if updates == 0:
            raise UserError(f"an epoch has {batches} batches, fewer than one update takes "
                            f"({self.world.size} rank(s) x train.accumulate={cfg.accumulate})",
                            "train.accumulate", "lower train.accumulate, train.batch_tokens or "
                            "the number of ranks, or train on more data")
        return updates

    def run(self) -> dict:
        cfg, p = self.config.train, self.progress
        self.total_steps = self._total_steps(self._updates_per_epoch())
        bar = tqdm(total=self.total_steps, initial=p.step, unit="step", dynamic_ncols=True,
                   file=sys.stderr, disable=None if self.world.is_main else True)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            stop = self._train_epochs(bar)
            if self.agreed_signal:
                self.save("last.pt")
                raise Interrupted(f"interrupted by {self.agreed_signal} at step {p.step}; "
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
        p = self.progress
        stop = self._should_stop()
        while stop is None:
            for position, mine in self._update_groups(p.epoch):
                self._step_on(mine, bar)
                p.batch_in_epoch = position
                self._agree()
                stop = self._should_stop() or self.agreed_signal
                if stop:
                    return stop
            p.epoch += 1
            p.batch_in_epoch = 0
            stop = self._should_stop() or self.agreed_signal
        return stop

    def _agree(self) -> None:
        """After each update every rank takes the slowest rank's clock (time limits and
        time-based schedules then agree) and learns of a signal that any rank caught, so all
        stop at the same step. One process: its own clock and signal."""
        code = float(signal.Signals[self.stop_signal]) if self.stop_signal else 0.0
        elapsed, code = max_over_ranks([self.progress.elapsed, code], self.device)
        self.progress.elapsed = elapsed
        self.agreed_signal = signal.Signals(int(code)).name if code else None

    def _update_groups(self, epoch: int) -> Iterator[tuple[int, list[Batch]]]:
        """(position in the epoch after the update, this rank's batches of it), from the saved
        position on. A stored corpus: the epoch's batch list, shared among the ranks. A stream:
        train.accumulate consecutive batches of this rank's stream at a time."""
        cfg, start = self.config.train, self.progress.batch_in_epoch
        if isinstance(self.train_data, EncodedSplit):
            batches = train_batches(self.train_data, cfg.batch_tokens, cfg.seed, epoch)
            for position, mine in update_groups(batches, start, self.world, cfg.accumulate):
                yield position, [make_batch(self.train_data, indices) for indices in mine]
            return
        yield from self._stream_groups(epoch, start)

    def _stream_groups(self, epoch: int, start: int) -> Iterator[tuple[int, list[Batch]]]:
        """A stream's updates. The ranks' streams end at different batches (their shares of the
        pairs tokenise to different lengths), so before each update they agree that every rank
        has its train.accumulate batches: the epoch ends with the shortest stream, the others'
        tails dropped (as a stored corpus drops its incomplete last update). Every rank has read
        as many batches then, so the position means the same on each, and in the checkpoint."""
        cfg = self.config.train
        batches = self._timed(self.train_data.epoch_batches(cfg.batch_tokens, cfg.seed, epoch,
                                                           start))
        updates = 0
        while True:
            group = list(itertools.islice(batches, cfg.accumulate))
            complete = float(len(group) == cfg.accumulate)
            if min_over_ranks([complete], self.device)[0] < 1.0:  # one process: its own flag
                break
            updates += 1
            yield group[-1][0] + 1, [batch for _, batch in group]
        if updates == 0 and start == 0:  # an epoch without an update would repeat forever
            raise UserError(f"an epoch of the stream holds fewer batches than one update takes "
                            f"on some rank ({self.world.size} rank(s) x "
                            f"train.accumulate={cfg.accumulate})", self.train_data.where,
                            "lower train.accumulate, train.batch_tokens or the number of ranks, "
                            "or stream more data")

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

    def _step_on(self, group: list[Batch], bar) -> None:
        """One update on this rank's batches, then log, validate and save on their schedules."""
        cfg, p, window = self.config.train, self.progress, self.window
        started = time.perf_counter()
        update = self._train_step([batch.to(self.device) for batch in group])
        p.elapsed += time.perf_counter() - started
        if update is None:
            self._bad_step()
            return
        p.step += 1
        self.bad_in_row = 0
        p.tgt_tokens += update.tokens
        window.add(update.tokens, update.loss)
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
        """Rank 0 validates; every rank takes its value, so best, patience and plateau agree."""
        started = time.perf_counter()
        value = self._validate(bar) if self.world.is_main else None
        value = from_main(value)
        self.progress.elapsed += time.perf_counter() - started
        p, cfg = self.progress, self.config.train
        if improves(value, p.best_value, cfg.best_metric):
            p.best_value, p.best_step, p.bad_validations = value, p.step, 0
            self.save("best.pt")
        else:
            p.bad_validations += 1
        self.schedule.after_validation(value, HIGHER_IS_BETTER[cfg.best_metric])

    def _validate(self, bar) -> float:
        """Validate, write the hypotheses, log and print; returns the value of train.best_metric."""
        result = validate(self.model, self.valid_data, self.tokenizer, self.config, self.device)
        p, cfg = self.progress, self.config.train
        atomic_write_text(self.rundir.valid_hypotheses(p.step), "\n".join(result.pop("hypotheses")) + "\n")
        samples = result.pop("samples")
        self.log_event("valid", **result)
        value = result[cfg.best_metric]
        improved = improves(value, p.best_value, cfg.best_metric)
        write = tqdm.write if not bar.disable else self.say
        write(f"valid step {p.step}: loss {result['loss']:.3f} ppl {result['ppl']:.2f} "
              f"BLEU {result['bleu']:.2f} chrF {result['chrf']:.2f}"
              f"{' (best)' if improved else ''} [{result['seconds']:.0f}s]")
        for src, hyp, ref in samples:
            write(f"  src: {src}\n  hyp: {hyp}\n  ref: {ref}")
        return value


def _saved_world(state: dict, path: Path) -> dict:
    """The world that wrote a checkpoint: {"size", "rng" (per rank, or [])}; checkpoints of one
    process, and those from before DDP, have none: one rank."""
    world = state.get("world")
    if not isinstance(world, dict):
        return {"size": 1, "rng": []}
    size, rng = world.get("size", 1), world.get("rng") or []
    if not isinstance(size, int) or not isinstance(rng, list) or len(rng) not in (0, size):
        raise UserError("checkpoint's world entry is damaged", str(path),
                        "resume from another checkpoint or start again with --overwrite")
    return {"size": size, "rng": rng}


def train(config: Config, run_dir: Path, resume: bool = False, overwrite: bool = False,
          say=print, resume_command: str | None = None) -> dict:
    """Prepare, build, (resume,) train; returns a summary.

    `resume_command` is what an interrupted run tells the user to type to continue. Launched by
    torchrun, this process joins the world first and trains as one of its ranks.
    """
    world, device = _join(config)
    finished = False
    try:
        summary = _train(config, RunDir(run_dir), world, device, resume, overwrite,
                         say if world.is_main else _quiet, resume_command)
        finished = True
        return summary
    except Exception as exc:
        if world.distributed and is_lost_peer(exc):
            raise LostRank(f"rank {world.rank} lost the other ranks ({_first_line(exc)}): one "
                           f"died or hung; the last checkpoint is kept in {run_dir}/checkpoints, "
                           f"resume with the same torchrun command and --resume") from None
        raise
    finally:
        leave_world(world, finished)


class LostRank(RunFailed):
    """A collective failed: another rank died, hung past train.ddp_timeout, or the network."""

    every_rank = True  # each surviving rank says so (rank 0 may be the one that died)


def _quiet(*_) -> None:
    """What ranks other than 0 say: nothing (rank 0 speaks for the world)."""


def _first_line(exc: BaseException) -> str:
    """The gist of a backend error: its first sentence, without gloo's source location."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", text)
    return text.split(". ")[0][:160]


def _join(config: Config) -> tuple[World, torch.device]:
    if not launched_by_torchrun():
        return SINGLE, resolve_device(config.train.device)
    return join_world(config.train.device, config.train.ddp_timeout)


def _train(config: Config, run: RunDir, world: World, device: torch.device, resume: bool,
           overwrite: bool, say, resume_command: str | None) -> dict:
    if world.distributed:
        say(describe_world(world, device))
    run.check_for_training(resume, overwrite)
    barrier()  # every rank checked the run dir before rank 0 writes to it
    if overwrite and world.is_main:
        run.clear_for_overwrite()
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    prepared = _prepare_in_turn(config, run, resume, say, world)
    run.root.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, run, prepared, device, say, world)
    if resume_command:
        trainer.resume_command = resume_command
    if resume:
        trainer.restore(run.last)
        say(f"resuming at step {trainer.progress.step} (epoch {trainer.progress.epoch})")
    # Only now: a --resume refused above must not replace the run's config with the wrong one.
    if world.is_main:
        save_config(config, run.config)
    say(f"model {describe_model(config)}, {trainer.model.num_parameters():,} parameters; "
        f"device {device}, precision {trainer.precision}")
    return trainer.run()


def _prepare_in_turn(config: Config, run: RunDir, resume: bool, say, world: World) -> Prepared:
    """Rank 0 prepares (trains the tokenizer, caches the corpus); then the others read what it
    wrote. A user error of rank 0 is every rank's, so none waits for a rank that gave up."""
    prepared, failure = None, None
    if world.is_main:
        try:
            prepared = _prepare_or_clean_up(config, run, resume, say)
        except UserError as exc:
            failure = exc
    verdict = from_main(None if failure is None else (failure.what, failure.where, failure.fix))
    if failure is not None:
        raise failure
    if verdict is not None:
        raise UserError(*verdict)
    return prepared if world.is_main else _prepare_or_clean_up(config, run, resume, _quiet)


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
