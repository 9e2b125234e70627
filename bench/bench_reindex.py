"""Reindex benchmark: re-encoding throughput and query latency during a reindex.

``memnet serve`` runs in a child process with a models directory holding a second
version of the shipped model (its weights perturbed). A text bank of ``--memories``
sentences (bAbI task 1-2 training statements, cycled) is written with version 1; then
one client thread queries it at a steady rate while nothing else runs (the baseline)
and again while ``ReindexBank`` re-encodes it into version 2. Prints memories/s of
the reindex and the query latency percentiles of both phases in one table.

    .venv/bin/python bench/bench_reindex.py            # 100k memories, ~3 minutes
    .venv/bin/python bench/bench_reindex.py --memories 5000 --query-s 3   # a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import torch
from timing import summarize_s

from memnet.api.v1 import (
    bank_pb2,
    bank_pb2_grpc,
    memory_pb2,
    memory_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)
from memnet.model.checkpoint import load_checkpoint, save_checkpoint
from memnet.serving.repository import CHECKPOINT_DIR

DATA = Path(__file__).resolve().parent.parent / "data" / "babi" / "en"
WRITE_CHUNK = 2000
QUESTIONS = ["Where is Mary?", "Where is Daniel?", "Where is the football?"]


def sentences() -> list[str]:
    return [
        line.split(" ", 1)[1].strip()
        for task in ("qa1_single-supporting-fact", "qa2_two-supporting-facts")
        for line in (DATA / f"{task}_train.txt").read_text().splitlines()
        if "?" not in line
    ]


def second_version(models_dir: Path) -> None:
    checkpoint = load_checkpoint(CHECKPOINT_DIR / "babi-joint.pt")
    generator = torch.Generator().manual_seed(3)
    weights = {
        name: value + 0.05 * torch.randn(value.shape, generator=generator)
        if value.dtype.is_floating_point
        else value
        for name, value in checkpoint.state_dict.items()
    }
    save_checkpoint(
        models_dir / "babi-joint" / "2" / "model.pt",
        dataclasses.replace(checkpoint, state_dict=weights),
    )


class Server:
    def __init__(self, data_dir: Path, models_dir: Path) -> None:
        memnet = str(Path(sys.executable).with_name("memnet"))
        env = {**os.environ, "MEMNET_METRICS_PORT": "0", "MEMNET_LOG_FORMAT": "json"}
        command = [
            memnet, "serve", "--port", "0", "--data-dir", str(data_dir),
            "--models-dir", str(models_dir), "--model-poll-s", "0", "--fsync", "none",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        for line in self.process.stderr:
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("msg") == "serving":
                self.target = str(entry["address"])
                break
        else:
            raise RuntimeError("memnet serve exited before serving")
        threading.Thread(
            target=lambda: [None for _ in self.process.stderr or []], daemon=True
        ).start()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=300)


def write_bank(channel: grpc.Channel, texts: list[str]) -> float:
    banks = bank_pb2_grpc.BankServiceStub(channel)
    memories = memory_pb2_grpc.MemoryServiceStub(channel)
    banks.CreateBank(
        bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name="r", model="babi-joint@1"))
    )
    t0 = time.perf_counter()
    for lo in range(0, len(texts), WRITE_CHUNK):
        batch = memory_pb2.MemoryBatch(
            memories=[memory_pb2.MemoryInput(text=t) for t in texts[lo : lo + WRITE_CHUNK]]
        )
        memories.WriteMemories(memory_pb2.WriteMemoriesRequest(bank="r", batch=batch), timeout=300)
    return len(texts) / (time.perf_counter() - t0)


def query_loop(channel: grpc.Channel, stop: threading.Event, interval_s: float) -> list[float]:
    """Queries at a steady rate (one in flight) until ``stop``; latencies in seconds."""
    stub = query_pb2_grpc.QueryServiceStub(channel)
    latencies: list[float] = []
    i = 0
    while not stop.is_set():
        request = query_pb2.QueryRequest(bank="r", questions=[QUESTIONS[i % 3]], k=32)
        t0 = time.perf_counter()
        stub.Query(request, timeout=30)
        latencies.append(time.perf_counter() - t0)
        i += 1
        time.sleep(max(0.0, interval_s - latencies[-1]))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--query-s", type=float, default=20.0, help="baseline phase, seconds")
    parser.add_argument("--qps", type=float, default=20.0, help="query rate of the client")
    args = parser.parse_args()
    pool = sentences()
    texts = [pool[i % len(pool)] for i in range(args.memories)]
    with tempfile.TemporaryDirectory(prefix="memnet-bench-reindex-") as root:
        models_dir = Path(root) / "models"
        second_version(models_dir)
        server = Server(Path(root) / "data", models_dir)
        try:
            with grpc.insecure_channel(server.target) as channel:
                write_rate = write_bank(channel, texts)
                stop = threading.Event()
                timer = threading.Timer(args.query_s, stop.set)
                timer.start()
                baseline = query_loop(channel, stop, 1 / args.qps)
                banks = bank_pb2_grpc.BankServiceStub(channel)
                stop = threading.Event()
                during: list[float] = []
                thread = threading.Thread(
                    target=lambda: during.extend(query_loop(channel, stop, 1 / args.qps))
                )
                thread.start()
                t0 = time.perf_counter()
                banks.ReindexBank(bank_pb2.ReindexBankRequest(bank="r", model="babi-joint@2"))
                while True:
                    bank = banks.GetBank(bank_pb2.GetBankRequest(name="r")).bank
                    if bank.reindex.state != bank_pb2.REINDEX_STATE_REINDEXING:
                        break
                    time.sleep(0.2)
                reindex_s = time.perf_counter() - t0
                stop.set()
                thread.join()
                assert bank.reindex.state == bank_pb2.REINDEX_STATE_DONE, bank.reindex.error
        finally:
            server.stop()
    base, busy = summarize_s(baseline), summarize_s(during)
    print(f"\n### Reindex of {args.memories:,} text memories (babi-joint@1 -> @2)\n")
    print(f"write rate before: {write_rate:,.0f} memories/s")
    print(f"reindex: {reindex_s:.1f} s, {args.memories / reindex_s:,.0f} memories/s "
          f"(server's own rate {bank.reindex.rate_per_s:,.0f}/s)\n")  # fmt: skip
    print("| phase | queries | p50 ms | p99 ms | max-rate client |")
    print("|---|---|---|---|---|")
    for name, s in (("no reindex", base), ("during reindex", busy)):
        print(f"| {name} | {s.n} | {s.p50_ms:.1f} | {s.p99_ms:.1f} | {args.qps:.0f}/s |")
    print(f"\np99 during / p99 without: {busy.p99_ms / base.p99_ms:.2f}x")


if __name__ == "__main__":
    main()
