"""Driving a ``memnet serve`` child process for the benchmarks: start it, load a bank,
send queries from an asyncio gRPC client, and summarise latencies.

Shared by bench_service.py, bench_service_milvus.py, curves.py, rpc_cost.py and
query_parts.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, bank_pb2_grpc, memory_pb2, memory_pb2_grpc, query_pb2

QUERY_METHOD = "/memnet.api.v1.QueryService/Query"
# The cheapest RPC the server answers (an empty request, a one-field response, no model
# and no bank): its rate is the ceiling of any handler's rate through grpcio's server here.
NOOP_METHOD = "/grpc.health.v1.Health/Check"
WRITE_CHUNK = 10_000
SERVER_ENV: dict[str, str] = {}  # set from --server-env
HNSW_M, EF_CONSTRUCTION, EF_SEARCH = 32, 40, 64


@dataclass(frozen=True)
class Stats:
    p50_ms: float
    p99_ms: float
    qps: float


def summarize(latencies_s: list[float], elapsed_s: float) -> Stats:
    ordered = np.sort(np.asarray(latencies_s))
    return Stats(
        p50_ms=float(np.percentile(ordered, 50) * 1e3),
        p99_ms=float(np.percentile(ordered, 99) * 1e3),
        qps=len(ordered) / elapsed_s,
    )


def clustered(rng: np.random.Generator, n: int, d: int, centres: np.ndarray) -> np.ndarray:
    out = np.empty((n, d), np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        which = rng.integers(0, len(centres), hi - lo)
        out[lo:hi] = centres[which] + 0.3 * rng.standard_normal((hi - lo, d), dtype=np.float32)
    return out


def vector_bank_data(
    seed: int, m: int, d: int, n_queries: int = 2000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The query-path benchmarks' vector bank: (M, D) clustered keys (M / 250 centres),
    (M, D) Gaussian values and (Q, D) queries from the same clusters, float32, drawn
    in that order from ``seed`` (the same data in every benchmark that uses it)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((m // 250, d), dtype=np.float32)
    keys = clustered(rng, m, d, centres)
    values = rng.standard_normal((m, d), dtype=np.float32)
    queries = clustered(rng, n_queries, d, centres)
    return keys, values, queries


async def _run_service(
    target: str, requests: list[bytes], workers: int, duration_s: float, method: str
) -> Stats:
    options = [("grpc.max_receive_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary(method)  # bytes in, bytes out: no client-side parsing
        latencies: list[float] = []
        stop_at = time.perf_counter() + duration_s

        async def loop(worker: int) -> None:
            i = worker
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                await call(requests[i % len(requests)], timeout=30)
                latencies.append(time.perf_counter() - t0)
                i += workers

        t0 = time.perf_counter()
        await asyncio.gather(*(loop(w) for w in range(workers)))
        return summarize(latencies, time.perf_counter() - t0)


def run_service(
    target: str,
    requests: list[bytes],
    workers: int,
    duration_s: float,
    method: str = QUERY_METHOD,
) -> Stats:
    return asyncio.run(_run_service(target, requests, workers, duration_s, method))


def best_of(repeats: int, measure: Callable[[], Stats]) -> Stats:
    """The run with the best QPS of ``repeats``: on a shared machine, the least disturbed."""
    return max((measure() for _ in range(repeats)), key=lambda stats: stats.qps)


class ServerProcess:
    """``memnet serve`` in a child process on a free port; ``SERVER_ENV`` (``--server-env``)
    is added to its environment only, never to the benchmark's own (raw FAISS) process."""

    def __init__(
        self,
        data_dir: Path,
        *,
        batching: bool,
        store_flags: tuple[str, ...] | list[str] = (),
        python: Path | None = None,
    ) -> None:
        # ``python``: the interpreter of the checkout to serve (default: this one's).
        memnet = str(Path(python or sys.executable).with_name("memnet"))
        env = {**os.environ, **SERVER_ENV, "MEMNET_METRICS_PORT": "0", "MEMNET_LOG_FORMAT": "json"}
        flags = ["--batching" if batching else "--no-batching", "--fsync", "none", *store_flags]
        command = [memnet, "serve", "--port", "0", "--data-dir", str(data_dir), *flags]
        self.process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        for line in self.process.stderr:
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("msg") == "serving":
                self.target = entry["address"]
                break
        else:
            raise RuntimeError("memnet serve exited before serving")
        self._drain = threading.Thread(target=self._discard_logs, daemon=True)
        self._drain.start()

    def _discard_logs(self) -> None:
        assert self.process.stderr is not None
        for _ in self.process.stderr:
            pass

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=300)


def load_bank(target: str, keys: np.ndarray, values: np.ndarray) -> float:
    """Create the HNSW bank and stream-write every memory; returns memories per second."""
    d = keys.shape[1]
    with grpc.insecure_channel(target) as channel:
        index = bank_pb2.IndexSpec(
            kind=bank_pb2.INDEX_KIND_HNSW,
            hnsw_m=HNSW_M,
            ef_construction=EF_CONSTRUCTION,
            ef_search=EF_SEARCH,
        )
        spec = bank_pb2.BankSpec(name="bench", model="vector", key_dim=d, value_dim=d, index=index)
        bank_pb2_grpc.BankServiceStub(channel).CreateBank(bank_pb2.CreateBankRequest(spec=spec))

        def chunks() -> Iterator[memory_pb2.StreamWriteMemoriesRequest]:
            for lo in range(0, len(keys), WRITE_CHUNK):
                batch = memory_pb2.MemoryBatch(
                    keys=to_tensor(keys[lo : lo + WRITE_CHUNK]),
                    values=to_tensor(values[lo : lo + WRITE_CHUNK]),
                )
                yield memory_pb2.StreamWriteMemoriesRequest(bank="bench", batch=batch)

        t0 = time.perf_counter()
        written = memory_pb2_grpc.MemoryServiceStub(channel).StreamWriteMemories(chunks())
        elapsed_s = time.perf_counter() - t0
    assert written.written == len(keys)
    return len(keys) / elapsed_s


def query_requests(queries: np.ndarray, k: int) -> list[bytes]:
    return [
        query_pb2.QueryRequest(
            bank="bench", query_vectors=to_tensor(q[None]), k=k, hops=1
        ).SerializeToString()
        for q in queries
    ]
