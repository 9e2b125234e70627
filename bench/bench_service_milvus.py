"""The milvus store rows of bench/bench_service.py: the same bank and queries through a
``memnet serve --store milvus`` in front of a Milvus Lite server (its own process).

Milvus Lite is a pure-Python engine that scans in Python on every search: these rows
show the milvus store working end to end, as a functional stand-in for Milvus
standalone or a cluster, not a measure of Milvus's speed.
"""

from __future__ import annotations

import argparse
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lite_server import lite_server
from service_driver import ServerProcess, Stats, load_bank, query_requests, run_service


@dataclass(frozen=True)
class MilvusRun:
    load_per_s: float
    by_level: dict[int, Stats]


def measure_milvus(
    keys: np.ndarray,
    values: np.ndarray,
    queries: np.ndarray,
    *,
    levels: list[int],
    args: argparse.Namespace,
    root: Path,
) -> MilvusRun:
    """Load the bank through a milvus-store server, then single queries at each level
    (batching on, one round: Milvus Lite is slow enough that the noise is small)."""
    with lite_server(root / "milvus-lite") as uri:
        flags = [
            "--store", "milvus", "--milvus-uri", uri,
            "--milvus-collection-prefix", f"bench_{uuid.uuid4().hex[:8]}_",
        ]  # fmt: skip
        server = ServerProcess(root / "unused", batching=True, store_flags=flags)
        try:
            load_per_s = load_bank(server.target, keys, values)
            requests = query_requests(queries, args.k)
            run_service(server.target, requests, 1, 1.0)  # warm-up
            by_level = {c: run_service(server.target, requests, c, args.duration_s) for c in levels}
        finally:
            server.stop()
    return MilvusRun(load_per_s, by_level)


def milvus_rows(label: str, faiss: dict[int, Stats], run: MilvusRun) -> list[list[str]]:
    """Per level: the FAISS store (batching on) beside the milvus store."""
    rows = []
    for c, m in run.by_level.items():
        f = faiss[c]
        rows.append(
            [
                label,
                str(c),
                f"{f.p50_ms:.2f} / {f.p99_ms:.2f}",
                f"{f.qps:,.0f}",
                f"{m.p50_ms:.2f} / {m.p99_ms:.2f}",
                f"{m.qps:,.1f}",
                f"{m.qps / f.qps:.4f}",
            ]
        )
    return rows


MILVUS_HEADER = [
    "M",
    "in flight",
    "faiss store p50/p99",
    "QPS",
    "milvus store (Milvus Lite) p50/p99",
    "QPS",
    "milvus / faiss QPS",
]
