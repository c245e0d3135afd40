"""Requests/s and latency of `seqattn serve` on a trained run, over real HTTP on 127.0.0.1.

    python scripts/bench_serve.py runs/bahdanau --sentences ../shared/data/multi30k/test.jsonl

Starts `seqattn serve RUN_DIR --port 0`, then for each request size (1 and 32 sentences), beam (1 and
5) and number of concurrent clients (1 and 8) sends requests for --seconds, each client on its own
keep-alive connection, and reports requests/s, sentences/s and the median and 95th-percentile
latency. --direct also times the same calls through the Python API (what HTTP adds is the rest).
The ways of sending take turns (--rounds), so a shared host's drift hits them alike.
It times a 2048x512x8000 fp32 matmul too, to put the figures next to the host's peak.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def matmul_gflops(repeats: int = 5) -> float:
    """The host's fp32 matmul rate on the output-layer shape (tokens x hidden x vocabulary)."""
    import torch

    a, b = torch.randn(2048, 512), torch.randn(512, 8000)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * 2048 * 512 * 8000 / best / 1e9


def read_sentences(path: Path, column: str | None) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".jsonl":
        lines = [json.loads(line)[column] for line in lines if line.strip()]
    return [line for line in lines if line.strip()]


def start_server(run_dir: Path) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "seqattn", "serve", str(run_dir), "--port", "0"]
    server = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    for line in server.stderr:
        if line.startswith("serving "):  # "serving NAME at http://127.0.0.1:PORT/ (Ctrl-C stops)"
            return server, line.split("http://")[1].split("/")[0]
        if line.startswith("error:"):
            raise SystemExit(line.strip())
    raise SystemExit("the server stopped before it listened")


def client(address: str, bodies: list[bytes], until: float, latencies: list[float]) -> None:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    k = 0
    while time.perf_counter() < until or k == 0:
        started = time.perf_counter()
        connection.request("POST", "/translate", bodies[k % len(bodies)],
                           {"Content-Type": "application/json"})
        answer = connection.getresponse()
        payload = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"HTTP {answer.status}: {payload[:200]!r}")
        latencies.append(time.perf_counter() - started)
        k += 1
    connection.close()


def http_round(address: str, bodies: list[bytes], clients: int,
               seconds: float) -> tuple[list[float], float]:
    """`clients` threads, each on its own connection, sending `bodies` for `seconds`."""
    latencies: list[float] = []
    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(address, bodies[c::clients] or bodies,
                                                      started + seconds, latencies))
               for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started


def direct_round(translator, batches: list[list[str]], beam: int,
                 seconds: float) -> tuple[list[float], float]:
    """The same work through the Python API in this process: what HTTP and JSON add is the rest."""
    latencies: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() < started + seconds or not latencies:
        begin = time.perf_counter()
        translator.translate(batches[len(latencies) % len(batches)], beam=beam)
        latencies.append(time.perf_counter() - begin)
    return latencies, time.perf_counter() - started


def summary(size: int, beam: int, clients, latencies: list[float], wall: float) -> dict:
    ordered = sorted(latencies)
    return {"sentences_per_request": size, "beam": beam, "clients": clients, "requests": len(ordered),
            "requests_per_second": round(len(ordered) / wall, 2),
            "sentences_per_second": round(len(ordered) * size / wall, 1),
            "median_ms": round(1000 * statistics.median(ordered), 1),
            "p95_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1)}


def measure_cell(address: str, translator, sentences: list[str], size: int, beam: int,
                 client_counts: list[int], seconds: float, rounds: int) -> list[dict]:
    """One request size and beam; the ways of sending it take turns, so host drift hits all alike."""
    rng = random.Random(size * 100 + beam)
    batches = [rng.sample(sentences, size) for _ in range(64)]
    bodies = [json.dumps({"text": batch, "beam": beam}).encode() for batch in batches]
    ways = [*client_counts, *(["API"] if translator is not None else [])]
    results = {way: ([], 0.0) for way in ways}
    # The API calls run on one worker thread, as the server's decoding does.
    with ThreadPoolExecutor(1) as worker:
        http_round(address, bodies[:4], 1, 0.5)  # untimed: the first calls of a shape are slower
        if translator is not None:
            worker.submit(direct_round, translator, batches[:4], beam, 0.5).result()
        for _ in range(rounds):
            for way in ways:
                latencies, wall = (
                    worker.submit(direct_round, translator, batches, beam, seconds / rounds).result()
                    if way == "API" else http_round(address, bodies, way, seconds / rounds))
                results[way] = (results[way][0] + latencies, results[way][1] + wall)
    return [summary(size, beam, way, *results[way]) for way in ways]


def table(rows: list[dict]) -> str:
    lines = ["| sentences/request | beam | clients | requests | requests/s | sentences/s | median ms "
             "| p95 ms |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['sentences_per_request']} | {r['beam']} | {r['clients']} | {r['requests']} | "
                     f"{r['requests_per_second']} | {r['sentences_per_second']} | {r['median_ms']} | "
                     f"{r['p95_ms']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--sentences", type=Path, required=True,
                        help="text file (one per line) or .jsonl with the run's source column")
    parser.add_argument("--column", default="de", help="the .jsonl column [default: de]")
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement [default: 20]")
    parser.add_argument("--rounds", type=int, default=3,
                        help="turns each way of sending takes, splitting --seconds [default: 3]")
    parser.add_argument("--sizes", default="1,32")
    parser.add_argument("--beams", default="1,5")
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--direct", action="store_true",
                        help="also time seqattn.load(RUN_DIR).translate() in this process (clients: API)")
    parser.add_argument("--output", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    sentences = read_sentences(args.sentences, args.column)
    peak = matmul_gflops()
    translator = None
    if args.direct:
        import seqattn

        translator = seqattn.load(args.run_dir)
    server, address = start_server(args.run_dir)
    rows = []
    try:
        for size in map(int, args.sizes.split(",")):
            for beam in map(int, args.beams.split(",")):
                clients = [int(c) for c in args.clients.split(",")]
                rows += measure_cell(address, translator, sentences, size, beam, clients, args.seconds,
                                     args.rounds)
                print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        server.terminate()
        server.wait(30)
    # Timed again at the end: on a shared host the gap between the two says how steady it was.
    host = {"cpus": os.cpu_count(),
            "matmul_2048x512x8000_fp32_gflops": [round(peak, 1), round(matmul_gflops(), 1)],
            "load_average_1_5_15min": [round(v, 2) for v in os.getloadavg()]}
    print(f"host: {host}\n\n{table(rows)}")
    if args.output:
        args.output.write_text(json.dumps({"host": host, "rows": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
