"""`seqattn train`: teacher-forced training with validation, checkpoints and exact resume.

The loop reads top-down: `Trainer.run` -> `_train_step` per batch -> `validate` every
`valid_every` steps -> `save` every `save_every` steps. Everything a resume needs (weights,
optimizer, schedule, RNG, step, epoch, position in the epoch, early-stopping state) is in last.pt.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from seqattn.average import prune_step_checkpoints, step_file
from seqattn.checkpoint import atomic_write_text, check_can_create_dir, load_checkpoint, save_checkpoint
from seqattn.config import Config, config_from_dict, config_to_dict, save_config
from seqattn.data import Batch, EncodedSplit, make_batch, sentence_batches, train_batches
from seqattn.errors import Interrupted, RunFailed, UserError
from seqattn.loss import cross_entropy_sum, teacher_forced_loss
from seqattn.metrics import corpus_scores
from seqattn.models import EncoderDecoder, build_model
from seqattn.prepare import Prepared, describe, prepare
from seqattn.search import decode, perplexity
from seqattn.tokenizer import PAD_ID, Tokenizer

CHECKPOINT_FORMAT = "seqattn-checkpoint-1"
HIGHER_IS_BETTER = {"bleu": True, "chrf": True, "loss": False, "ppl": False}


# ---------------------------------------------------------------------------------------------
# Devices, precision, run directories


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda > mps > cpu; an explicit device that is missing is a user error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device is cuda but no CUDA device is available", "train.device",
                        "use train.device=auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise UserError("train.device is mps but MPS is not available", "train.device",
                        "use train.device=auto or cpu")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """bf16 matrix units (AMX or AVX512-BF16); without them bf16 is far slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto`: bf16 where the hardware has bf16 matrix units, else fp32."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return "fp32"


def has_run(run_dir: Path) -> bool:
    """A run dir 'has a run' once training wrote to it (prepare's outputs do not count)."""
    return (run_dir / "checkpoints").exists() or (run_dir / "metrics.jsonl").exists()


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    check_can_create_dir(run_dir)
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other", str(run_dir),
                        "give one of them")
    if resume and not (run_dir / "checkpoints" / "last.pt").exists():
        raise UserError("nothing to resume: no checkpoints/last.pt", str(run_dir),
                        "train without --resume first")
    if has_run(run_dir) and not (resume or overwrite):
        raise UserError("run dir already holds a run", str(run_dir),
                        "pass --resume to continue it or --overwrite to start again")
    if overwrite and run_dir.exists():
        # Keep the tokenizer and encoded cache: prepare reuses them only when they still match.
        for child in run_dir.iterdir():
            if child.name in ("tokenizer", "cache"):
                continue
            shutil.rmtree(child) if child.is_dir() else child.unlink()


# ---------------------------------------------------------------------------------------------
# Learning-rate schedule


def make_optimizer(model: torch.nn.Module, cfg, device: torch.device) -> torch.optim.Optimizer:
    """Adam or AdamW; fused (one kernel over all parameters per update) where torch has it."""
    optimizer_class = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                           fused=device.type in ("cpu", "cuda"))


class Schedule:
    """constant | plateau (scale down when the dev metric stalls) | inverse_sqrt | linear | cosine,
    each with linear warmup.

    linear and cosine decay the rate from train.lr to train.min_lr over the whole run: `done` is
    the share of the run behind us, measured against the first limit that will stop it
    (train.max_steps, train.max_epochs or train.max_minutes). Against max_minutes the decay
    follows the wall clock, so such a run is not bit-reproducible; it is the schedule that
    makes the most of a fixed time budget.
    """

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.scale = 1.0
        self.best: float | None = None
        self.bad = 0

    def lr(self, step: int, done: float = 0.0) -> float:
        cfg = self.cfg
        warm = cfg.warmup_steps
        if cfg.schedule == "inverse_sqrt":
            factor = min(step / warm, math.sqrt(warm / step)) if warm else 1.0 / math.sqrt(step)
        else:
            factor = min(1.0, step / warm) if warm else 1.0
        if cfg.schedule in ("linear", "cosine"):
            done = min(max(done, 0.0), 1.0)
            decay = 1.0 - done if cfg.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * done))
            return cfg.min_lr + (cfg.lr - cfg.min_lr) * decay * factor
        return max(cfg.lr * self.scale * factor, cfg.min_lr if step > warm else 0.0)

    def after_validation(self, value: float, higher_is_better: bool) -> None:
        if self.cfg.schedule != "plateau":
            return
        improved = self.best is None or (value > self.best if higher_is_better else value < self.best)
        if improved:
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad >= self.cfg.plateau_patience:
            self.scale *= self.cfg.plateau_factor
            self.bad = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best, self.bad = state["scale"], state["best"], state["bad"]


# ---------------------------------------------------------------------------------------------
# Training


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
    def __init__(self, config: Config, run_dir: Path, prepared: Prepared, device: torch.device,
                 say=print) -> None:
        self.config, self.run_dir, self.device, self.say = config, run_dir, device, say
        self.tokenizer: Tokenizer = prepared.tokenizer
        self.train_data: EncodedSplit = prepared.train
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
        self.metrics_path = run_dir / "metrics.jsonl"
        self.window = LogWindow()
        self.last_valid_step = -1
        self.total_steps: int | None = None  # set by run(): the step limit that binds first
        self.resume_command = f"seqattn train CONFIG --run-dir {run_dir} --resume"

    # -- checkpoints ---------------------------------------------------------------------------

    def payload(self, full: bool) -> dict:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "config": config_to_dict(self.config),
            "vocab": {"src": self.tokenizer.src_vocab_size, "tgt": self.tokenizer.tgt_vocab_size,
                      "tokenizer": self.tokenizer.fingerprint},
            "model": self.model.state_dict(),
            "progress": dict(vars(self.progress)),
        }
        if full:
            payload["optimizer"] = self.optimizer.state_dict()
            payload["schedule"] = self.schedule.state_dict()
            payload["rng"] = {"torch": torch.get_rng_state()}
            if self.device.type == "cuda":
                payload["rng"]["cuda"] = torch.cuda.get_rng_state()
        return payload

    def save(self, name: str) -> None:
        folder = self.run_dir / "checkpoints"
        keep = self.config.train.keep_last
        if name == "last.pt" and keep > 0 and self.progress.step > 0:
            save_checkpoint(self.payload(full=False), folder / step_file(self.progress.step))
            prune_step_checkpoints(folder, keep)
        save_checkpoint(self.payload(full=name == "last.pt"), folder / name)

    def restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        check_compatible(state, self.config, self.tokenizer, path)
        load_weights(self.model, state, path)
        if "optimizer" not in state:
            raise UserError("checkpoint has no optimizer state", str(path),
                            "resume from checkpoints/last.pt")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            torch.set_rng_state(state["rng"]["torch"])
            if "cuda" in state["rng"] and self.device.type == "cuda":
                torch.cuda.set_rng_state(state["rng"]["cuda"])
            self.progress = Progress(**state["progress"])
        except (RuntimeError, TypeError, ValueError, KeyError) as exc:
            raise UserError(f"checkpoint's training state is damaged ({type(exc).__name__}: "
                            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})",
                            str(path), "resume from another checkpoint or start again with "
                            "--overwrite") from None
        self._forget_events_after(self.progress.step)
        for stale in path.parent.glob(".*.tmp"):  # left by a kill during a save
            stale.unlink(missing_ok=True)

    def _forget_events_after(self, step: int) -> None:
        """Drop metrics logged after the checkpoint (a kill loses them): resumed steps log once."""
        if not self.metrics_path.exists():
            return
        kept = [line for line in self.metrics_path.read_text(encoding="utf-8").splitlines()
                if line.strip() and _event_step(line) <= step]
        atomic_write_text(self.metrics_path, "".join(line + "\n" for line in kept))

    # -- the loop -------------------------------------------------------------------------------

    def log_event(self, event: str, **fields) -> None:
        record = {"event": event, "step": self.progress.step, "epoch": self.progress.epoch,
                  "elapsed": round(self.progress.elapsed, 3), **fields}
        try:
            with self.metrics_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write metrics: {exc.strerror or exc}", str(self.metrics_path),
                            "free disk space; checkpoints/last.pt is intact, resume with --resume"
                            ) from None

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, int]:
        """Summed label-smoothed cross-entropy over real target tokens, and their count."""
        cfg = self.config.train
        if cfg.teacher_forcing < 1.0:
            logits = scheduled_sampling_logits(self.model, batch, cfg.teacher_forcing)
            loss = cross_entropy_sum(logits.flatten(0, 1), batch.tgt_out.flatten(), PAD_ID,
                                     cfg.label_smoothing)
        else:
            loss = teacher_forced_loss(self.model, batch, PAD_ID, cfg.label_smoothing)
        return loss, batch.num_tgt_tokens

    def _train_step(self, batch: Batch) -> float | None:
        """One update; returns the per-token loss, or None when the batch was skipped (NaN/inf)."""
        cfg = self.config.train
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr(self.progress.step + 1, self._done())
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.precision == "bf16"):
            loss, tokens = self._loss(batch)
        loss_value = loss.item() / tokens
        self.optimizer.zero_grad(set_to_none=True)
        if math.isfinite(loss_value):
            (loss / tokens).backward()
            norm = (torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_norm)
                    if cfg.clip_norm > 0 else torch.tensor(0.0))
            if math.isfinite(float(norm)):
                try:
                    self.optimizer.step()
                except RuntimeError as exc:  # e.g. lr / bias correction beyond float32
                    if "overflow" not in str(exc):
                        raise
                    raise RunFailed(f"training diverged: the optimizer step overflowed at step "
                                    f"{self.progress.step + 1} (train.lr={cfg.lr}); the last good "
                                    f"checkpoint is kept in {self.run_dir / 'checkpoints'}. Lower "
                                    f"train.lr") from None
                return loss_value
        self.optimizer.zero_grad(set_to_none=True)
        return None

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

    def _total_steps(self, per_epoch: int) -> int | None:
        cfg = self.config.train
        limits = []
        if cfg.max_steps is not None:
            limits.append(cfg.max_steps)
        if cfg.max_epochs is not None:
            limits.append(cfg.max_epochs * per_epoch)
        return min(limits) if limits else None

    def run(self) -> dict:
        cfg, p = self.config.train, self.progress
        per_epoch = len(train_batches(self.train_data, cfg.batch_tokens, cfg.seed, 0))
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
            batches = train_batches(self.train_data, cfg.batch_tokens, cfg.seed, p.epoch)
            for index in range(p.batch_in_epoch, len(batches)):
                self._step_on(batches[index], bar)
                p.batch_in_epoch = index + 1
                stop = self._should_stop() or self.stop_signal
                if stop:
                    return stop
            p.epoch += 1
            p.batch_in_epoch = 0
            stop = self._should_stop() or self.stop_signal
        return stop

    def _step_on(self, indices: list[int], bar) -> None:
        """Train on one batch, then log, validate and save on their schedules."""
        cfg, p, window = self.config.train, self.progress, self.window
        started = time.perf_counter()
        batch = make_batch(self.train_data, indices).to(self.device)
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
                            f"good checkpoint is kept in {self.run_dir / 'checkpoints'}. Lower "
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
        hyp_path = self.run_dir / "valid" / f"step{p.step:07d}.hyp.txt"
        atomic_write_text(hyp_path, "\n".join(result.pop("hypotheses")) + "\n")
        samples = result.pop("samples")
        self.log_event("valid", **result)
        value = result[cfg.best_metric]
        higher = HIGHER_IS_BETTER[cfg.best_metric]
        improved = p.best_value is None or (value > p.best_value if higher else value < p.best_value)
        if improved:
            p.best_value, p.best_step, p.bad_validations = value, p.step, 0
            self.save("best.pt")
        else:
            p.bad_validations += 1
        self.schedule.after_validation(value, higher)
        write = tqdm.write if not bar.disable else self.say
        write(f"valid step {p.step}: loss {result['loss']:.3f} ppl {result['ppl']:.2f} "
              f"BLEU {result['bleu']:.2f} chrF {result['chrf']:.2f}"
              f"{' (best)' if improved else ''} [{result['seconds']:.0f}s]")
        for src, hyp, ref in samples:
            write(f"  src: {src}\n  hyp: {hyp}\n  ref: {ref}")


def _event_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return sys.maxsize  # a line torn by a kill: dropped with the events after the checkpoint


def scheduled_sampling_logits(model: EncoderDecoder, batch: Batch, ratio: float) -> torch.Tensor:
    """Step by step; each step feeds the gold token with probability `ratio`, else the model's own."""
    state = model.encode(batch.src, batch.src_lengths)
    prev = batch.tgt_in[:, 0]
    outputs = []
    for t in range(batch.tgt_in.size(1)):
        log_probs, state = model.step(prev, state)
        outputs.append(log_probs)
        if t + 1 < batch.tgt_in.size(1):
            use_gold = torch.rand(prev.shape, device=prev.device) < ratio
            prev = torch.where(use_gold, batch.tgt_in[:, t + 1], log_probs.argmax(-1))
    return torch.stack(outputs, dim=1)  # log-probabilities: [B, T, V]


@torch.inference_mode()
def corpus_loss(model: EncoderDecoder, data: EncodedSplit, batch_size: int,
                device: torch.device) -> tuple[float, int]:
    """Summed cross-entropy (no smoothing) of the references and their token count."""
    model.eval()
    total, tokens = 0.0, 0
    for indices in sentence_batches([len(s) + 1 for s in data.src], batch_size):
        batch = make_batch(data, indices).to(device)
        logits = model(batch)
        total += float(cross_entropy_sum(logits.flatten(0, 1), batch.tgt_out.flatten(), PAD_ID))
        tokens += batch.num_tgt_tokens
    return total, tokens


@torch.inference_mode()
def validate(model: EncoderDecoder, data: EncodedSplit, tokenizer: Tokenizer, config: Config,
             device: torch.device) -> dict:
    """Dev loss and perplexity (teacher forced, no smoothing) and greedy BLEU/chrF."""
    started = time.perf_counter()
    total_loss, total_tokens = corpus_loss(model, data, config.search.batch_size, device)
    search = config.search
    hyps = decode(model, data.src, 1, search.length_penalty, search.max_length_ratio,
                  search.max_length_offset, search.batch_size, device)
    texts = [tokenizer.decode_tgt(h[0].tokens) for h in hyps]
    scores = corpus_scores(texts, data.tgt_text)
    n = min(config.train.samples, len(texts))
    return {"loss": round(total_loss / max(total_tokens, 1), 4),
            "ppl": round(perplexity(total_loss, total_tokens), 3),
            "bleu": scores["bleu"], "chrf": scores["chrf"],
            "seconds": round(time.perf_counter() - started, 2),
            "hypotheses": texts,
            "samples": [(data.src_text[i], texts[i], data.tgt_text[i]) for i in range(n)]}


def check_compatible(state: dict, config: Config, tokenizer: Tokenizer, path: Path) -> None:
    """A checkpoint fits a run when its model config and vocabulary match."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise UserError("file is not a seqattn checkpoint of this version", str(path),
                        "use a checkpoint written by this seqattn")
    vocab = state.get("vocab")
    if not isinstance(state.get("config"), dict) or not isinstance(vocab, dict) \
            or not {"src", "tgt", "tokenizer"} <= vocab.keys() or not isinstance(state["model"], dict):
        raise UserError("checkpoint is damaged: config, vocab or model entry missing", str(path),
                        "use another checkpoint (e.g. last.pt or best.pt) or retrain")
    saved = config_from_dict(state["config"], str(path))
    if saved.model != config.model:
        raise UserError("checkpoint's model config differs from the run's", str(path),
                        "use the config the checkpoint was trained with")
    if (vocab["src"], vocab["tgt"]) != (tokenizer.src_vocab_size, tokenizer.tgt_vocab_size) \
            or vocab["tokenizer"] != tokenizer.fingerprint:
        raise UserError("checkpoint's vocabulary does not match the run's tokenizer", str(path),
                        "use the tokenizer folder of the run that wrote the checkpoint")


def load_weights(model: torch.nn.Module, state: dict, path: Path) -> None:
    """Copy a compatible checkpoint's weights; missing or misshapen tensors are a user error."""
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines()[:2]]
        detail = " ".join(lines)[:200] or type(exc).__name__
        raise UserError(f"checkpoint weights do not fit the model ({detail})", str(path),
                        "use another checkpoint (e.g. last.pt or best.pt) or retrain") from None


def train(config: Config, run_dir: Path, resume: bool = False, overwrite: bool = False,
          say=print, resume_command: str | None = None) -> dict:
    """Prepare, build, (resume,) train; returns a summary.

    `resume_command` is what an interrupted run tells the user to type to continue.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume, overwrite)
    device = resolve_device(config.train.device)
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    created = not run_dir.exists()
    try:
        prepared = prepare(config, run_dir, with_valid=True, allow_retrain=not resume, say=say)
    except UserError:
        if created:  # e.g. nothing left after filtering: leave no half-made run dir behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    say(describe(prepared.stats))
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, run_dir, prepared, device, say)
    if resume_command:
        trainer.resume_command = resume_command
    if resume:
        trainer.restore(run_dir / "checkpoints" / "last.pt")
        say(f"resuming at step {trainer.progress.step} (epoch {trainer.progress.epoch})")
    # Only now: a --resume refused above must not replace the run's config with the wrong one.
    save_config(config, run_dir / "config.yaml")
    model = trainer.model
    say(f"model {config.model.kind} ({config.model.cell}), {model.num_parameters():,} parameters; "
        f"device {device}, precision {trainer.precision}")
    return trainer.run()
