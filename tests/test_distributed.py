"""torchrun + DDP: the ranks' shares of an epoch, N ranks == 1 process accumulating N batches,
exact resume, SIGINT to the launcher, a rank killed -9, and misuse refused in one line.

The multi-process tests launch real `torchrun` worlds of 2 CPU ranks (gloo, one thread each);
they skip when torchrun cannot start a world on this machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_config_dict
from reliability_support import cli_env, wait_for

from seqattn.config import config_from_dict
from seqattn.distributed import SINGLE, World, update_groups
from seqattn.errors import UserError
from seqattn.train import train

# fp32 and no dropout: the two sides of the equivalence differ only by float rounding.
EXACT = {"model": {"dropout": 0.0}, "train": {"precision": "fp32", "label_smoothing": 0.1,
                                               "log_every": 1, "valid_every": 100000,
                                               "save_every": 100000, "num_threads": 1,
                                               "ddp_timeout": 30}}
LONG = 100000  # steps: only a signal ends the first launch


def quiet(*_):
    pass


def train_events(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [row for row in rows if row["event"] == "train"]


def torchrun(*args, cwd: Path, log: Path, ranks: int = 2) -> subprocess.Popen:
    """`torchrun --nproc_per_node RANKS -m seqattn ARGS` in its own session, output to `log`."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
               "--standalone", "-m", "seqattn", *map(str, args)]
    with log.open("wb") as handle:
        return subprocess.Popen(command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                env=cli_env(), start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float) -> tuple[int, str]:
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return code, log.read_text(encoding="utf-8", errors="replace")


def skip_unless_started(output: str) -> None:
    if "joined world" not in output:
        pytest.skip(f"torchrun could not start a world here:\n{output[-2000:]}")


# -- the ranks' shares ------------------------------------------------------------------------


def test_ranks_take_disjoint_equal_shares_and_drop_the_same_tail():
    batches = [[i] for i in range(11)]
    shares = [list(update_groups(batches, 0, World(rank, 2, rank, "gloo"), 2)) for rank in (0, 1)]
    assert [len(s) for s in shares] == [2, 2]  # 11 batches, updates of 4: the last 3 dropped
    assert [pos for pos, _ in shares[0]] == [pos for pos, _ in shares[1]] == [4, 8]
    taken = [b for share in shares for _, mine in share for b in mine]
    assert sorted(taken) == [[i] for i in range(8)]
    # Rank r of an update takes what one process accumulating 2 per rank would take in order.
    alone = list(update_groups(batches, 0, SINGLE, 4))
    assert [mine for _, mine in alone][0] == shares[0][0][1] + shares[1][0][1]
    assert list(update_groups(batches, 8, SINGLE, 1)) == [(9, [[8]]), (10, [[9]]), (11, [[10]])]


def test_an_epoch_too_short_for_one_update_is_a_user_error(toy_corpus, tmp_path):
    config = config_from_dict(tiny_config_dict(toy_corpus, train={"accumulate": 1000}))
    with pytest.raises(UserError, match=r"fewer than one update takes \(1 rank\(s\) x "
                                        r"train.accumulate=1000\)") as error:
        train(config, tmp_path / "run", say=quiet)
    assert "\n" not in error.value.message()


def test_accumulating_two_batches_is_one_update_of_both(toy_corpus, tmp_path):
    """One process: accumulate 2 == the two batches' tokens in one summed-loss update."""
    from seqattn.data import make_batch, train_batches
    from seqattn.models import build_model
    from seqattn.optim import make_optimizer
    from seqattn.prepare import prepare
    from seqattn.training_step import train_step

    config = config_from_dict(tiny_config_dict(toy_corpus, **EXACT))
    prepared = prepare(config, tmp_path / "run", say=quiet)
    pair = train_batches(prepared.train, 400, 42, 0)[:2]
    losses, weights = [], []
    for batches in ([make_batch(prepared.train, [*pair[0], *pair[1]])],
                    [make_batch(prepared.train, b) for b in pair]):
        torch.manual_seed(0)
        model = build_model(config.model, prepared.tokenizer.src_vocab_size,
                            prepared.tokenizer.tgt_vocab_size)
        optimizer = make_optimizer(model, config.train, torch.device("cpu"))
        update = train_step(model, optimizer, batches, config.train, "fp32", torch.device("cpu"),
                            0.01)
        losses.append(update)
        weights.append([p.detach().clone() for p in model.parameters()])
    assert losses[0].tokens == losses[1].tokens
    assert losses[0].loss == pytest.approx(losses[1].loss, rel=1e-5)
    for one, two in zip(*weights):
        torch.testing.assert_close(one, two, rtol=1e-4, atol=1e-5)  # the same sums, added in another order


# -- real worlds of 2 ranks -------------------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted_then_resumed(tmp_path_factory):
    """2 ranks trained until SIGINT reaches torchrun, then resumed for 3 more updates."""
    from conftest import toy_pairs, write_jsonl

    root = tmp_path_factory.mktemp("ddp")
    for split, n, seed in (("train", 600, 1), ("validation", 40, 2), ("test", 40, 3)):
        write_jsonl(root / "toy" / f"{split}.jsonl", toy_pairs(n, seed=seed))
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict(root / "toy", **EXACT)))
    run_dir, first_log = root / "run", root / "first.log"
    started = time.monotonic()
    proc = torchrun("train", config, "--run-dir", run_dir, "--set", f"train.max_steps={LONG}",
                    cwd=root, log=first_log)
    try:
        wait_for(lambda: len(train_events(run_dir)) >= 3, timeout=120, proc=proc,
                 what="three updates")
    except AssertionError:
        skip_unless_started(first_log.read_text(errors="replace"))
        raise
    proc.send_signal(signal.SIGINT)
    code, first = finish(proc, first_log, timeout=60)
    stopped = int(re.search(r"interrupted by SIGINT at step (\d+)", first).group(1))
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    target = stopped + 3
    resume_log = root / "resume.log"
    resumed = torchrun("train", config, "--run-dir", run_dir, "--resume", "--set",
                       f"train.max_steps={target}", cwd=root, log=resume_log)
    resume_code, resume_output = finish(resumed, resume_log, timeout=120)
    return {"root": root, "config": config, "run": run_dir, "first": first, "code": code,
            "stopped": stopped, "saved": saved, "target": target, "resume_code": resume_code,
            "resumed": resume_output, "seconds": time.monotonic() - started}


def test_sigint_to_torchrun_stops_every_rank_at_one_step_and_saves(interrupted_then_resumed):
    run = interrupted_then_resumed
    output, step = run["first"], run["stopped"]
    assert run["code"] != 0, output
    lines = [line for line in output.splitlines() if "interrupted by SIGINT" in line]
    assert len(lines) == 1, output  # rank 0 speaks for both
    assert re.search(r"Resume with: torchrun --nproc_per_node 2 -m seqattn train \S+ --run-dir "
                     r"\S+ --resume", lines[0]), lines[0]
    state = run["saved"]
    assert state["progress"]["step"] == step
    # Saving gathers every rank's random state: both ranks were at that step to give it.
    assert state["world"]["size"] == 2 and len(state["world"]["rng"]) == 2
    assert not torch.equal(state["world"]["rng"][0]["torch"], state["world"]["rng"][1]["torch"])


def test_resume_continues_the_data_and_the_schedule(interrupted_then_resumed):
    run = interrupted_then_resumed
    assert run["resume_code"] == 0, run["resumed"]
    assert f"resuming at step {run['stopped']}" in run["resumed"]
    steps = [e["step"] for e in train_events(run["run"])]
    assert steps == list(range(1, run["target"] + 1))  # each update once, none restarted
    state = torch.load(run["run"] / "checkpoints" / "last.pt", weights_only=True)
    assert state["progress"]["step"] == run["target"]


def test_two_ranks_match_one_process_accumulating_two(interrupted_then_resumed, tmp_path):
    """Interrupted and resumed 2-rank DDP == one uninterrupted process with accumulate 2:
    the same loss at every step and the same weights and Adam moments at the end."""
    run = interrupted_then_resumed
    config = yaml.safe_load(run["config"].read_text())
    config["train"].update(accumulate=2, max_steps=run["target"])
    train(config_from_dict(config), tmp_path / "alone", say=quiet)
    ddp = {e["step"]: e for e in train_events(run["run"])}
    alone = {e["step"]: e for e in train_events(tmp_path / "alone")}
    assert sorted(ddp) == sorted(alone)
    for step, event in alone.items():
        assert ddp[step]["loss"] == pytest.approx(event["loss"], abs=1e-4), step  # 4 decimals
        assert ddp[step]["tgt_tokens"] == event["tgt_tokens"], step
    ours = torch.load(run["run"] / "checkpoints" / "last.pt", weights_only=True)
    theirs = torch.load(tmp_path / "alone" / "checkpoints" / "last.pt", weights_only=True)
    assert ours["progress"]["batch_in_epoch"] == theirs["progress"]["batch_in_epoch"]
    for key, value in theirs["model"].items():
        torch.testing.assert_close(ours["model"][key], value, rtol=1e-5, atol=1e-7)
    for index, moments in theirs["optimizer"]["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours["optimizer"]["state"][index][name], moments[name],
                                       rtol=1e-5, atol=1e-9)


def test_resuming_with_another_number_of_ranks_is_refused(interrupted_then_resumed, tmp_path):
    run = interrupted_then_resumed
    config = config_from_dict(yaml.safe_load(run["config"].read_text()))
    with pytest.raises(UserError, match="written by 2 rank.*this run has 1") as error:
        train(config, run["run"], resume=True, say=quiet)
    assert "torchrun on 2 ranks" in error.value.message()


def test_resume_restores_each_ranks_random_stream(tmp_path, tiny_config):
    """With dropout, 3 + 3 updates resumed == 6 straight, bit for bit: each rank draws its
    masks from its own stream, saved in last.pt and restored on resume."""
    config = tiny_config(model={"dropout": 0.3}, train={**EXACT["train"], "max_steps": 6})
    logs = []
    for run, extra in (("straight", []), ("split", ["--set", "train.max_steps=3"]),
                       ("split", ["--resume"])):
        logs.append(tmp_path / f"{run}{len(logs)}.log")
        code, output = finish(torchrun("train", config, "--run-dir", tmp_path / run, *extra,
                                       cwd=tmp_path, log=logs[-1]), logs[-1], timeout=120)
        skip_unless_started(output)
        assert code == 0, output
    straight = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)
    split = torch.load(tmp_path / "split/checkpoints/last.pt", weights_only=True)
    assert [e["loss"] for e in train_events(tmp_path / "split")] == \
        [e["loss"] for e in train_events(tmp_path / "straight")]
    for key, value in straight["model"].items():
        assert torch.equal(split["model"][key], value), key


def test_two_ranks_stream_each_epoch_to_the_shortest_stream_and_resume_exactly(
        tmp_path, monkeypatch):
    """data.streaming under torchrun: the ranks agree before each update that all have a batch,
    so an epoch ends with the shortest rank stream (nobody waits in a collective for a rank
    that has run out), and 3 updates + a resume give the two epochs of a straight run."""
    from conftest import toy_pairs, write_jsonl

    from seqattn.prepare import prepare

    # Two shards, one per rank: long pairs and short ones, so the shares differ in batches.
    shards = [write_jsonl(tmp_path / "data" / f"train-{name}.jsonl", toy_pairs(300, seed, *size))
              for name, seed, size in (("long", 1, (6, 9)), ("short", 4, (2, 3)))]
    valid = write_jsonl(tmp_path / "data" / "validation.jsonl", toy_pairs(40, seed=2))
    values = tiny_config_dict(tmp_path / "data", **EXACT)
    values["data"].update(path="json", streaming=True, shuffle_buffer=100, max_length=60,
                          data_files={"train": [str(s) for s in shards], "validation": str(valid)})
    values["train"].update(max_steps=None, max_epochs=2)
    config = tmp_path / "stream.yaml"
    config.write_text(yaml.safe_dump(values))
    logs = []
    for run, extra in (("straight", []), ("split", ["--set", "train.max_steps=3"]),
                       ("split", ["--resume"])):
        logs.append(tmp_path / f"{run}{len(logs)}.log")
        code, output = finish(torchrun("train", config, "--run-dir", tmp_path / run, *extra,
                                       cwd=tmp_path, log=logs[-1]), logs[-1], timeout=120)
        skip_unless_started(output)
        assert code == 0, output
    shares = []  # batches of each rank's stream in epochs 0 and 1, read here in-process
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        stream = prepare(config_from_dict(yaml.safe_load(config.read_text())),
                         tmp_path / "straight", with_valid=False, say=quiet).train
        shares.append([sum(1 for _ in stream.epoch_batches(400, 42, epoch)) for epoch in (0, 1)])
    assert all(long != short for long, short in zip(*shares)), shares  # a tail to drop
    expected = sum(min(counts) for counts in zip(*shares))
    straight = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)
    split = torch.load(tmp_path / "split/checkpoints/last.pt", weights_only=True)
    assert [e["step"] for e in train_events(tmp_path / "straight")] == list(range(1, expected + 1))
    assert straight["progress"]["epoch"] == split["progress"]["epoch"] == 2
    assert [e["step"] for e in train_events(tmp_path / "split")] == list(range(1, expected + 1))
    for key, value in straight["model"].items():
        torch.testing.assert_close(split["model"][key], value, rtol=1e-6, atol=1e-7)


def test_a_rank_killed_makes_the_others_fail_soon_not_hang(tmp_path, tiny_config):
    config = tiny_config(**EXACT)
    run_dir, log = tmp_path / "run", tmp_path / "kill.log"
    proc = torchrun("train", config, "--run-dir", run_dir, "--set", f"train.max_steps={LONG}",
                    cwd=tmp_path, log=log)
    try:
        wait_for(lambda: len(train_events(run_dir)) >= 2, timeout=120, proc=proc,
                 what="two updates")
    except AssertionError:
        skip_unless_started(log.read_text(errors="replace"))
        raise
    os.kill(rank_pid(proc.pid, rank=1), signal.SIGKILL)
    killed = time.monotonic()
    code, output = finish(proc, log, timeout=60)
    assert code != 0, output
    assert time.monotonic() - killed < 45, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "rank 0 lost the other ranks" in errors[0], output
    assert "Traceback" not in output.split("rank 0 lost")[0], output  # none from seqattn


def rank_pid(launcher: int, rank: int) -> int:
    """The pid of the worker of `rank` among the launcher's children (from their environment)."""
    for child in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(child)
    raise AssertionError(f"no rank {rank} among the children of {launcher}")


@pytest.mark.parametrize("env, words", [
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 is outside WORLD_SIZE=2"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not an integer"),
    ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": None}, "without MASTER_PORT"),
])
def test_a_broken_torchrun_environment_is_one_error_line(monkeypatch, env, words):
    from seqattn.distributed import join_world

    base = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "29999"}
    for key, value in {**base, **env}.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    with pytest.raises(UserError, match=re.escape(words)) as error:
        join_world("cpu", 5)
    assert error.value.message().startswith("error: ") and "\n" not in error.value.message()
