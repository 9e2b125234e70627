"""Exact (flat) search throughput against the memory-bandwidth floor, measured in one run.

    python bench/machine_limits.py [--m 1000000] [--d 128]

An exact search of one query reads every key once: it cannot go faster than the
machine streams memory. The floor is a large array copy measured in the same run
(numpy, 1 thread; torch ``copy_`` on every core), counted as read + write = 2 × the
array's bytes per copy. Copies and searches are interleaved: each of ``repeats`` rounds
times every probe once, and the percentage is the median of the per-round ratios. (A
CPU that reads a destination line before writing it moves 3 × the bytes; counting 2 ×
makes the floor lower, so the percentage higher.)

Flat search throughput = M · D · 4 bytes of keys scanned per query ÷ latency, for
raw FAISS ``IndexFlatIP`` (1 and all OpenMP threads) and for memnet's flat bank
(``Bank.search``, B = 1, which runs FAISS on 1 thread). The percentage compares a
1-thread search with the 1-thread copy and an all-thread search with the
all-thread copy. Arrays are 488 MiB at the default M, 15 × the 32 MiB L3 cache. The
test data are random Gaussian keys: a flat scan's speed does not depend on them.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets
import timing

from memnet.store.search import BLAS_MIN_QUERIES

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class LimitsConfig:
    m: int = 1_000_000
    d: int = 128
    n_queries: int = 30  # single queries per timed pass
    repeats: int = 5
    with_bank: bool = True  # also time memnet's flat bank (writes M memories first)
    seed: int = 0


@dataclass(frozen=True)
class Measurement:
    what: str
    threads: int
    bytes_per_s: float  # keys scanned (searches) or read + write (copies) per second, median
    latency_ms: float  # per query or per copy, median over rounds
    percent_of_floor: float = 0.0  # searches: median over rounds of search ÷ same-round copy


@dataclass(frozen=True)
class LimitsResults:
    config: LimitsConfig
    copies: list[Measurement]
    searches: list[Measurement]

    def floor(self, threads: int) -> Measurement:
        return next(c for c in self.copies if c.threads == threads)

    def percent(self, search: Measurement) -> float:
        return search.percent_of_floor


@dataclass(frozen=True)
class Probe:
    what: str
    threads: int
    bytes_per_op: int
    ops: list[Callable[[], object]]  # one round times each op once, then takes the median
    is_copy: bool


def probes(cfg: LimitsConfig, keys: np.ndarray, queries: np.ndarray, root: Path) -> list[Probe]:
    """Copies (numpy on 1 thread, torch on every core) and flat searches (1 thread, every core)."""
    from exact_attention import build_bank, scratch_store

    m, d = keys.shape
    cores = os.cpu_count() or 1
    src = np.random.default_rng(1).standard_normal(keys.size, dtype=np.float32)
    dst = np.empty_like(src)
    ts, td = torch.from_numpy(src), torch.from_numpy(dst)

    def torch_copy() -> None:
        torch.set_num_threads(cores)  # faiss and torch share one OpenMP runtime: set it each time
        td.copy_(ts)

    index = faiss.IndexFlatIP(d)
    index.add(keys)

    def faiss_search(q: np.ndarray, threads: int) -> None:
        faiss.omp_set_num_threads(threads)
        faiss.cvar.distance_compute_blas_threshold = BLAS_MIN_QUERIES * d
        index.search(q, 32)

    singles = [queries[i : i + 1] for i in range(len(queries))]
    scanned = m * d * 4
    out = [
        Probe("numpy copyto", 1, 2 * keys.nbytes, [lambda: np.copyto(dst, src)] * 3, True),
        Probe("torch copy_", cores, 2 * keys.nbytes, [torch_copy] * 3, True),
        Probe(
            "FAISS IndexFlatIP search, B=1",
            1,
            scanned,
            [lambda q=q: faiss_search(q, 1) for q in singles],
            False,
        ),
        Probe(
            "FAISS IndexFlatIP search, B=1",
            cores,
            scanned,
            [lambda q=q: faiss_search(q, cores) for q in singles],
            False,
        ),
    ]
    if cfg.with_bank:
        ds = datasets.Dataset("limits", keys, keys, queries, np.full(len(queries), -1, np.int64))
        bank = build_bank(scratch_store(root), "limits", ds, "flat")
        out.append(
            Probe(
                "memnet flat Bank.search, B=1",
                1,
                scanned,
                [lambda q=q: bank.search(q, 32) for q in singles],
                False,
            )
        )
    return out


def run(cfg: LimitsConfig) -> LimitsResults:
    """Each round times every probe once (copies and searches seconds apart); medians of rounds."""
    rng = np.random.default_rng(cfg.seed)
    keys = rng.standard_normal((cfg.m, cfg.d), dtype=np.float32)  # (M, D)
    queries = rng.standard_normal((cfg.n_queries, cfg.d), dtype=np.float32)  # (Q, D)
    root = Path(tempfile.mkdtemp(prefix="bench-limits-"))
    try:
        ps = probes(cfg, keys, queries, root)
        for p in ps:
            p.ops[0]()  # warm-up
        rates: dict[int, list[float]] = {i: [] for i in range(len(ps))}  # bytes/s per round
        for _ in range(cfg.repeats):
            for i, p in enumerate(ps):
                s = statistics.median(timing.time_once_s(op) for op in p.ops)
                rates[i].append(p.bytes_per_op / s)
    finally:
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        shutil.rmtree(root, ignore_errors=True)
    copies: list[Measurement] = []
    searches: list[Measurement] = []
    floor_of = {p.threads: i for i, p in enumerate(ps) if p.is_copy}
    for i, p in enumerate(ps):
        r = statistics.median(rates[i])
        ms = 1e3 * p.bytes_per_op / r
        if p.is_copy:
            copies.append(Measurement(p.what, p.threads, r, ms))
            continue
        floor = rates[floor_of[p.threads]]
        pct = statistics.median(100 * a / b for a, b in zip(rates[i], floor, strict=True))
        searches.append(Measurement(p.what, p.threads, r, ms, pct))
    return LimitsResults(cfg, copies, searches)


def tables(res: LimitsResults) -> list[str]:
    gib = float(1 << 30)
    mib = res.config.m * res.config.d * 4 / (1 << 20)
    copy_rows = [
        [c.what, str(c.threads), f"{c.bytes_per_s / gib:.2f}", f"{c.latency_ms:.1f}"]
        for c in res.copies
    ]
    search_rows = [
        [
            s.what,
            str(s.threads),
            f"{s.latency_ms:.2f}",
            f"{s.bytes_per_s / gib:.2f}",
            f"{res.floor(s.threads).bytes_per_s / gib:.2f}",
            f"{res.percent(s):.0f} %",
        ]
        for s in res.searches
    ]
    return [
        timing.table(
            f"Memory-bandwidth floor: copy of a {mib:,.0f} MiB float32 array (read + write)",
            ["copy", "threads", "GiB/s", "ms per copy"],
            copy_rows,
        ),
        timing.table(
            f"Flat search of {res.config.m:,} × {res.config.d} keys against the floor",
            [
                "search",
                "threads",
                "p50 ms",
                "keys GiB/s",
                "floor GiB/s (copy, same threads)",
                "% of floor (median of per-round ratios)",
            ],
            search_rows,
        ),
    ]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--m", type=int, default=1_000_000)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--no-bank", action="store_true", help="skip memnet's flat bank")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    res = run(LimitsConfig(m=a.m, d=a.d, with_bank=not a.no_bank))
    for t in tables(res):
        print(t)


if __name__ == "__main__":
    main()
