"""Checkpoints: their format, writing and reading them as data (never code), whether one fits a
run, and the weights and training state they carry.

A checkpoint is a dict: `format`, `config` (the resolved config), `vocab` (sizes and the
tokenizer's fingerprint), `model` (the state dict), `progress`; last.pt adds `optimizer`,
`schedule` and `rng` so that a resume continues exactly.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

from seqattn.errors import UserError
from seqattn.files import atomic_write_bytes

CHECKPOINT_FORMAT = "seqattn-checkpoint-2"
# Round 1 wrote format 1: the same payload, with the RNN decoder's parts at the model's top level.
ROUND1_FORMAT = "seqattn-checkpoint-1"
ROUND1_PARTS = {"bridge_hidden": "decoder.bridge.hidden", "bridge_cell": "decoder.bridge.cell",
                "rnn": "decoder.rnn", "attention": "decoder.attention",
                "readout": "decoder.readout", "combine": "decoder.combine"}


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Serialise to memory first, so a failing write (disk full) never touches the old file."""
    import torch  # here, not at the top: text writes and CLI checks need no torch (~2 s to import)

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise UserError(f"cannot write checkpoint: {exc.strerror or exc}", str(path),
                        "free disk space or choose another --run-dir; the previous checkpoint "
                        "is intact") from None


def _refusal_detail(exc: Exception) -> str:
    """The part of torch's weights-only refusal that names the culprit, without its advice to
    re-run with weights_only=False or to allow-list the global (either would run the file)."""
    for line in str(exc).splitlines():
        line = line.strip()
        if "GLOBAL" in line or line.lower().startswith("unsupported"):
            return _first_sentence(line.removeprefix("WeightsUnpickler error: "))
    return "unsupported content"


def _first_sentence(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else ""
    return text.split(". ")[0].rstrip(".")[:200]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load with weights_only=True: tensors and plain containers only, never code."""
    path = Path(path)
    if not path.exists():
        raise UserError("checkpoint not found", str(path),
                        "train first, or pass an existing checkpoint")
    import torch

    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise on a refusal
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"checkpoint refused, it holds more than tensors and plain data "
                        f"({_refusal_detail(exc)})", str(path),
                        "only load checkpoints written by seqattn") from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError) as exc:
        first = _first_sentence(str(exc)) or type(exc).__name__
        raise UserError(f"checkpoint is corrupt or truncated ({first})", str(path),
                        "use another checkpoint (e.g. last.pt or best.pt) or retrain") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise UserError("file is not a seqattn checkpoint", str(path),
                        "pass a checkpoint written by seqattn train")
    return payload


def check_compatible(state: dict, config, tokenizer, path: Path) -> None:
    """A checkpoint fits a run when its model config and vocabulary match."""
    from seqattn.config import config_from_dict

    if state.get("format") not in (CHECKPOINT_FORMAT, ROUND1_FORMAT):
        raise UserError("file is not a seqattn checkpoint of this version", str(path),
                        "use a checkpoint written by this seqattn")
    vocab = state.get("vocab")
    if not isinstance(state.get("config"), dict) or not isinstance(vocab, dict) \
            or not {"src", "tgt", "tokenizer"} <= vocab.keys() or not isinstance(state["model"], dict):
        raise UserError("checkpoint is damaged: config, vocab or model entry missing", str(path),
                        "use another checkpoint (e.g. last.pt or best.pt) or retrain")
    saved = config_from_dict(state["config"], str(path), warn_legacy=False)
    if saved.model != config.model:
        raise UserError("checkpoint's model config differs from the run's", str(path),
                        "use the config the checkpoint was trained with")
    if (vocab["src"], vocab["tgt"]) != (tokenizer.src_vocab_size, tokenizer.tgt_vocab_size) \
            or vocab["tokenizer"] != tokenizer.fingerprint:
        raise UserError("checkpoint's vocabulary does not match the run's tokenizer", str(path),
                        "use the tokenizer folder of the run that wrote the checkpoint")


def upgrade_weights(state: dict) -> dict:
    """The state dict of a checkpoint in today's module layout (round-1 names moved)."""
    weights = state["model"]
    if state.get("format") != ROUND1_FORMAT:
        return weights
    upgraded = {}
    for key, value in weights.items():
        head, _, rest = key.partition(".")
        upgraded[f"{ROUND1_PARTS[head]}.{rest}" if head in ROUND1_PARTS else key] = value
    if "tgt_embed.weight" in upgraded:  # the decoder now holds the target embedding it uses
        upgraded.setdefault("decoder.embedding.weight", upgraded["tgt_embed.weight"])
    return upgraded


def load_weights(model, state: dict, path: Path) -> None:
    """Copy a compatible checkpoint's weights; missing or misshapen tensors are a user error."""
    try:
        model.load_state_dict(upgrade_weights(state))
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines()[:2]]
        detail = " ".join(lines)[:200] or type(exc).__name__
        raise UserError(f"checkpoint weights do not fit the model ({detail})", str(path),
                        "use another checkpoint (e.g. last.pt or best.pt) or retrain") from None


def make_payload(config, tokenizer, model, progress: dict, training: dict | None = None) -> dict:
    """What a checkpoint holds; `training` (optimizer, schedule, rng) makes it resumable."""
    from seqattn.config import config_to_dict

    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": config_to_dict(config),
        "vocab": {"src": tokenizer.src_vocab_size, "tgt": tokenizer.tgt_vocab_size,
                  "tokenizer": tokenizer.fingerprint},
        "model": model.state_dict(),
        "progress": progress,
    }
    return {**payload, **(training or {})}


def restore_training_state(state: dict, optimizer, schedule, progress_class, path: Path):
    """Load the optimizer, schedule and RNG of a resumable checkpoint; returns its progress
    as a `progress_class`."""
    import torch

    if "optimizer" not in state:
        raise UserError("checkpoint has no optimizer state", str(path),
                        "resume from checkpoints/last.pt")
    try:
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["rng"]["cuda"])
        return progress_class(**state["progress"])
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise UserError(f"checkpoint's training state is damaged ({type(exc).__name__}: "
                        f"{_first_line(exc)})", str(path), "resume from another checkpoint or "
                        "start again with --overwrite") from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""
