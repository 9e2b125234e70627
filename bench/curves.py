"""Curves: query latency against M, durable write throughput against batch size, and
service QPS against concurrency with and without dynamic batching.

    python bench/curves.py [--sizes 1000,10000,100000] [--service-m 100000]

* Latency vs M: the product path (``VectorPassThroughModel.query`` over a bank, B = 1,
  k = 32) on clustered keys (bench/datasets.py), flat and HNSW banks.
* Write throughput vs batch size: ``Bank.write`` with ``FsyncPolicy.ALWAYS`` (one fsync
  per call) into a fresh flat and a fresh HNSW bank, each point bounded by time.
* QPS vs concurrency: ``memnet serve`` in a child process (bench/bench_service.py's
  ``ServerProcess``: an HNSW bank, vector queries, k = 32, 1 hop), an asyncio gRPC
  client keeping c queries in flight. Two servers hold the same bank, one with dynamic
  batching and one with ``--no-batching``; each level alternates between them. Client
  and server share the 2 cores.
"""

from __future__ import annotations

import argparse
import gc
import logging
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets
import timing
from exact_attention import build_bank, scratch_store

from memnet.core.search_options import SearchOptions
from memnet.serving.bank_source import BankMemorySource
from memnet.serving.vector_model import VectorPassThroughModel
from memnet.store import (
    BankConfig,
    FsyncPolicy,
    MemoryBatch,
    MemoryStore,
    Metric,
    StoreSettings,
)

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurvesConfig:
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    kinds: tuple[str, ...] = ("flat", "hnsw")
    k: int = 32
    d: int = 128
    n_queries: int = 200
    rounds: int = 3
    batch_sizes: tuple[int, ...] = (1, 10, 100, 1_000, 10_000)
    write_budget_s: float = 3.0  # per (kind, batch size) point
    write_max_memories: int = 30_000
    service_m: int = 100_000
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    duration_s: float = 3.0
    seed: int = 0


@dataclass(frozen=True)
class Point:
    series: str
    x: float
    y: float  # the curve's quantity
    extra: float = 0.0  # a second quantity (p99 ms for latency and QPS points)


@dataclass
class CurvesResults:
    config: CurvesConfig
    latency: list[Point] = field(default_factory=list)  # x = M, y = p50 ms, extra = p99 ms
    writes: list[Point] = field(default_factory=list)  # x = batch, y = memories/s
    service: list[Point] = field(default_factory=list)  # x = in flight, y = QPS, extra = p99
    service_note: str = ""


def latency_vs_m(cfg: CurvesConfig, root: Path, out: CurvesResults) -> None:
    model = VectorPassThroughModel()
    for m in cfg.sizes:
        ds = datasets.clustered_data(m, cfg.d, cfg.n_queries, seed=cfg.seed)
        q = ds.scaled_queries(1.0)
        for kind in cfg.kinds:
            store = scratch_store(root / f"lat-{m}-{kind}")
            source = BankMemorySource(build_bank(store, "bench", ds, kind))
            fns = [
                lambda s=q[i : i + 1], src=source: model.query(s, src, SearchOptions(k=cfg.k))
                for i in range(len(q))
            ]
            lat = timing.summarize_s(timing.per_call_s(fns, repeats=cfg.rounds))
            out.latency.append(Point(kind, m, lat.p50_ms, lat.p99_ms))
            LOG.info("latency M=%d %s: p50 %.3f ms", m, kind, lat.p50_ms)
            store.close()
            del source, store
            gc.collect()
        del ds


def writes_vs_batch(cfg: CurvesConfig, root: Path, out: CurvesResults) -> None:
    from exact_attention import index_spec

    rng = np.random.default_rng(cfg.seed)
    n = cfg.write_max_memories
    keys = datasets.clustered_keys(rng, n, cfg.d)  # (N, D)
    values = rng.standard_normal((n, cfg.d), dtype=np.float32)  # (N, D)
    settings = StoreSettings(fsync=FsyncPolicy.ALWAYS, snapshot_on_close=False)
    for kind in cfg.kinds:
        for b in cfg.batch_sizes:
            path = root / f"w-{kind}-{b}"
            store = MemoryStore(path, settings)
            bank = store.create_bank(
                BankConfig(
                    name="w",
                    key_dim=cfg.d,
                    value_dim=cfg.d,
                    metric=Metric.INNER_PRODUCT,
                    index=index_spec(kind, n),
                )
            )
            written, t0 = 0, time.perf_counter()
            while written + b <= n and time.perf_counter() - t0 < cfg.write_budget_s:
                bank.write(MemoryBatch(keys[written : written + b], values[written : written + b]))
                written += b
            rate = written / (time.perf_counter() - t0)
            out.writes.append(Point(kind, b, rate))
            LOG.info("writes %s batch %d: %.0f memories/s", kind, b, rate)
            store.close()
            shutil.rmtree(path, ignore_errors=True)


def qps_vs_concurrency(cfg: CurvesConfig, root: Path, out: CurvesResults) -> None:
    """Two servers (batching on, batching off) hold the same bank; each concurrency level is
    measured on both alternately, ``rounds - 1`` times, so both curves share the machine's state.
    """
    import service_driver as svc

    rng = np.random.default_rng(cfg.seed)
    keys = datasets.clustered_keys(rng, cfg.service_m, cfg.d)
    values = rng.standard_normal((cfg.service_m, cfg.d), dtype=np.float32)
    queries, _ = datasets.near_queries(rng, keys, 2_000)
    requests = svc.query_requests(queries, cfg.k)
    servers: dict[str, svc.ServerProcess] = {}
    load_per_s: list[float] = []
    try:
        for label, batching in (("batching on", True), ("batching off", False)):
            servers[label] = svc.ServerProcess(root / label.replace(" ", "-"), batching=batching)
            load_per_s.append(svc.load_bank(servers[label].target, keys, values))
        for server in servers.values():
            svc.run_service(server.target, requests, 1, 1.0)  # warm-up
        for c in cfg.concurrency:
            qps: dict[str, list[float]] = {label: [] for label in servers}
            p99: dict[str, list[float]] = {label: [] for label in servers}
            for _ in range(max(cfg.rounds - 1, 1)):
                for label, server in servers.items():
                    st = svc.run_service(server.target, requests, c, cfg.duration_s)
                    qps[label].append(st.qps)
                    p99[label].append(st.p99_ms)
            for label in servers:
                q50, t99 = statistics.median(qps[label]), statistics.median(p99[label])
                out.service.append(Point(label, c, q50, t99))
                LOG.info("service %s c=%d: %.0f QPS p99 %.2f ms", label, c, q50, t99)
    finally:
        for server in servers.values():
            server.stop()
    out.service_note = (
        f"HNSW bank of {cfg.service_m:,} × {cfg.d} clustered keys in each of two servers, "
        f"loaded over StreamWriteMemories at {min(load_per_s):,.0f}–{max(load_per_s):,.0f} "
        "memories/s (server fsync none); median of alternating runs"
    )


def run(
    cfg: CurvesConfig, *, parts: tuple[str, ...] = ("latency", "writes", "service")
) -> CurvesResults:
    out = CurvesResults(cfg)
    root = Path(tempfile.mkdtemp(prefix="bench-curves-"))
    try:
        if "latency" in parts:
            latency_vs_m(cfg, root, out)
        if "writes" in parts:
            writes_vs_batch(cfg, root, out)
        if "service" in parts:
            qps_vs_concurrency(cfg, root, out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def tables(res: CurvesResults) -> list[str]:
    out: list[str] = []
    if res.latency:
        rows = [
            [p.series, f"{p.x:,.0f}", timing.fmt_ms(p.y), timing.fmt_ms(p.extra)]
            for p in res.latency
        ]
        out.append(
            timing.table(
                f"Query latency against M (B = 1, k = {res.config.k}, product path)",
                ["index", "M", "p50 ms", "p99 ms"],
                rows,
            )
        )
    if res.writes:
        rows = [[p.series, f"{p.x:,.0f}", timing.fmt_int(p.y)] for p in res.writes]
        out.append(
            timing.table(
                "Durable write throughput against batch size (fsync per write)",
                ["index", "memories per write", "memories/s"],
                rows,
            )
        )
    if res.service:
        rows = [
            [p.series, f"{p.x:.0f}", timing.fmt_int(p.y), timing.fmt_ms(p.extra)]
            for p in res.service
        ]
        out.append(
            timing.table(
                f"Service QPS against concurrency ({res.service_note})",
                ["server", "in flight", "QPS", "p99 ms"],
                rows,
            )
        )
    return out


def plot(res: CurvesResults, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = (
        (
            "curve_latency_vs_m.png",
            res.latency,
            "M (memories)",
            "p50 latency (ms)",
            "Query latency vs M",
        ),
        (
            "curve_writes_vs_batch.png",
            res.writes,
            "memories per write",
            "memories/s",
            "Durable writes vs batch",
        ),
        (
            "curve_qps_vs_concurrency.png",
            res.service,
            "queries in flight",
            "QPS",
            "Service QPS vs concurrency",
        ),
    )
    paths: list[Path] = []
    for name, points, xlabel, ylabel, title in specs:
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for series in dict.fromkeys(p.series for p in points):
            pts = [p for p in points if p.series == series]
            ax.plot([p.x for p in pts], [p.y for p in pts], "o-", label=series)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--service-m", type=int, default=100_000)
    p.add_argument("--parts", default="latency,writes,service")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = CurvesConfig(sizes=tuple(int(s) for s in a.sizes.split(",")), service_m=a.service_m)
    res = run(cfg, parts=tuple(a.parts.split(",")))
    for t in tables(res):
        print(t)


if __name__ == "__main__":
    main()
