"""Several processes training one model: torchrun's environment, torch.distributed and DDP.

`torchrun --nproc_per_node N [--nnodes M ...] -m seqattn train CONFIG` starts N*M processes, one
*world* of that many *ranks*. seqattn starts no processes and reduces no gradients itself:
torchrun launches and watches the ranks, torch.distributed connects them (gloo on CPU, NCCL on
CUDA) and DistributedDataParallel averages the gradients. What is ours is bookkeeping:

- every rank builds the same model (same seed) and computes the same epoch order of batches
  (`data.train_batches` is a pure function of the epoch); an update takes the next
  `size * train.accumulate` batches of that order, rank r the r-th `accumulate` of them
  (`update_groups`). An epoch's last `len(batches) % (size * accumulate)` batches are dropped,
  so every rank runs the same number of updates and no collective waits for a missing batch;
- small all-reduces so that every rank takes the same decisions (skip an update, stop, the
  learning rate of a time-based schedule) and rank 0 alone writes.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from seqattn.device import resolve_device
from seqattn.errors import UserError

# What torchrun sets in each rank's environment (torch.distributed.run's documentation).
TORCHRUN_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process's place among the ranks; the default is one process, no torch.distributed."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""  # "" (one process), "gloo" or "nccl"

    @property
    def distributed(self) -> bool:
        return bool(self.backend)

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the checkpoints, metrics.jsonl and the progress bar, and validates."""
        return self.rank == 0


SINGLE = World()


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def _env_int(name: str) -> int:
    text = os.environ.get(name, "")
    try:
        return int(text)
    except ValueError:
        raise UserError(f"environment variable {name}={text!r} is not an integer", name,
                        "launch with torchrun, which sets it") from None


def _world_from_env() -> World:
    missing = [key for key in TORCHRUN_KEYS if key not in os.environ]
    if missing:
        raise UserError(f"a distributed launch without {', '.join(missing)} in the environment",
                        "torchrun", "launch with torchrun --nproc_per_node N -m seqattn train ...")
    rank, size, local_rank = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    if not 0 <= rank < size:
        raise UserError(f"RANK={rank} is outside WORLD_SIZE={size}", "torchrun",
                        "launch with torchrun, which sets both")
    return World(rank, size, local_rank, "")


def _device_for(world: World, device_name: str) -> torch.device:
    """CUDA: one GPU per rank of this machine (LOCAL_RANK); CPU otherwise; MPS has no backend."""
    device = resolve_device(device_name)
    if device.type == "mps":
        raise UserError("distributed training has no backend for MPS", "train.device",
                        "use train.device=cpu with torchrun, or train without torchrun")
    if device.type != "cuda":
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if world.local_rank >= count:
        raise UserError(f"--nproc_per_node asks for more ranks on this machine than its {count} "
                        f"GPU(s) (local rank {world.local_rank})", "torchrun --nproc_per_node",
                        f"use --nproc_per_node {count} or fewer, or train.device=cpu")
    return torch.device("cuda", world.local_rank)


def join_world(device_name: str, timeout_seconds: float) -> tuple[World, torch.device]:
    """Join the world torchrun set up; returns it and this rank's device.

    `timeout_seconds` bounds every collective: a rank that died or hangs fails the others with
    an error after that long instead of leaving them waiting (gloo's default is 30 minutes).
    """
    world = _world_from_env()
    device = _device_for(world, device_name)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and the object collectives use the current device
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds))
    return World(world.rank, world.size, world.local_rank, backend), device


def leave_world(world: World, finished: bool = False) -> None:
    """Leave the process group. After a finished run the ranks first wait for each other (rank 0
    may still be writing last.pt), and the DDP wrapper, which holds the group, is collected
    before the group goes: a reducer freed at interpreter exit, after the group, aborts the
    process ("terminate called without an active exception")."""
    if not (world.distributed and dist.is_initialized()):
        return
    if finished:  # (after a failure, leave at once: a lost peer would make both wait)
        gc.collect()
        dist.barrier()
    dist.destroy_process_group()


def describe(world: World, device: torch.device) -> str:
    """The one line a rank prints when it joined."""
    node = os.environ.get("GROUP_RANK", "0")
    return (f"joined world: rank {world.rank} of {world.size} (node {node}, local rank "
            f"{world.local_rank}), backend {world.backend}, device {device}")


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel over `module`: rank 0's weights are broadcast at construction,
    gradients averaged over ranks in backward."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda"
                                   else None)


def update_groups(batches: list, start: int, world: World, accumulate: int
                  ) -> Iterator[tuple[int, list]]:
    """(position after the update, this rank's batches) for each whole update from `start`.

    Position counts batches of the epoch order consumed by all ranks together, so it means the
    same on every rank and in the checkpoint. The incomplete group at the end is dropped.
    """
    size = world.size * accumulate
    for first in range(start, len(batches) - size + 1, size):
        mine = first + world.rank * accumulate
        yield first + size, batches[mine : mine + accumulate]


def updates_per_epoch(batches_per_epoch: int, world: World, accumulate: int) -> int:
    return batches_per_epoch // (world.size * accumulate)


# -- collectives: identity on one process ---------------------------------------------------------


def _reduce(values: list[float], device: torch.device, op: str) -> list[float]:
    if not dist.is_initialized():
        return list(values)
    # float64: token counts stay exact integers far beyond any corpus.
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=getattr(dist.ReduceOp, op))
    return tensor.tolist()


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    return _reduce(values, device, "SUM")


def max_over_ranks(values: list[float], device: torch.device) -> list[float]:
    return _reduce(values, device, "MAX")


def min_over_ranks(values: list[float], device: torch.device) -> list[float]:
    return _reduce(values, device, "MIN")


def from_main(value: Any) -> Any:
    """Rank 0's `value` on every rank (a decision only rank 0 could take, e.g. after validating)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def from_all(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank (e.g. the ranks' random states)."""
    if not dist.is_initialized():
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def is_lost_peer(exc: BaseException) -> bool:
    """Whether `exc` is a collective failing because another rank died, hung or timed out."""
    if isinstance(exc, dist.DistError):  # DistBackendError, DistNetworkError, DistStoreError
        return True
    # Some gloo failures still arrive as a plain RuntimeError (e.g. from DDP's reducer).
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(word in text for word in _LOST_WORDS)


# Words of gloo's and NCCL's errors when a peer closed its connection or never answered.
_LOST_WORDS = ("Connection closed by peer", "Connection reset by peer", "Timed out",
               "timed out", "Broken pipe", "NCCL error", "[gloo", "ProcessGroupGloo")


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
