"""Benchmark of memnet.store against raw FAISS on the same data, in the same run.

    python bench/bench_store.py                 # 100k memories, flat + HNSW (a few minutes)
    python bench/bench_store.py --n 1000000     # the 1M run (the HNSW build takes minutes)

Prints three tables: durable write throughput (fsync per batch) vs raw FAISS ``add``
of the same batches; search latency through the store vs ``index.search`` on the
store's own index object (same queries, interleaved one by one); time to close
(snapshot) and reopen a bank. Data are clustered Gaussians (random data is useless
for ANN recall, see /work/shared/ENVIRONMENT.md).
"""

from __future__ import annotations

import argparse
import gc
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from memnet.store import (
    Bank,
    BankConfig,
    FsyncPolicy,
    IndexKind,
    IndexSpec,
    MemoryBatch,
    MemoryStore,
    Metric,
    StoreSettings,
)
from memnet.store import index as ix
from memnet.store.search import BLAS_MIN_QUERIES

Row = list[str]


@dataclass
class Data:
    keys: np.ndarray  # (M, D) float32
    values: np.ndarray  # (M, D) float32
    ids: list[str]
    queries: np.ndarray  # (Q, D) float32


@dataclass
class Args:
    n: int
    d: int
    batch: int
    kinds: list[str]
    k: int
    queries: int
    batch_queries: int
    data_dir: Path | None
    seed: int


def parse() -> Args:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=100_000, help="memories per bank (1000000: 1M run)")
    p.add_argument("--d", type=int, default=128, help="key and value dimension")
    p.add_argument("--batch", type=int, default=1000, help="memories per write (one fsync each)")
    p.add_argument("--kinds", default="flat,hnsw", help="comma-separated index kinds")
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--queries", type=int, default=1000, help="single queries timed per kind")
    p.add_argument("--batch-queries", type=int, default=256, help="B of the batched search")
    p.add_argument("--data-dir", type=Path, default=None, help="where banks live (default: tmp)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    kinds = a.kinds.split(",")
    return Args(a.n, a.d, a.batch, kinds, a.k, a.queries, a.batch_queries, a.data_dir, a.seed)


def make_data(a: Args) -> Data:
    rng = np.random.default_rng(a.seed)
    centres = rng.standard_normal((max(64, a.n // 250), a.d), dtype=np.float32)

    def clustered(n: int) -> np.ndarray:
        out = np.empty((n, a.d), np.float32)  # (n, D)
        for lo in range(0, n, 100_000):
            hi = min(n, lo + 100_000)
            which = rng.integers(0, len(centres), hi - lo)
            noise = rng.standard_normal((hi - lo, a.d), dtype=np.float32)
            out[lo:hi] = centres[which] + 0.3 * noise
        return out

    keys = clustered(a.n)
    values = rng.standard_normal((a.n, a.d), dtype=np.float32)
    queries = clustered(max(a.queries, a.batch_queries))
    return Data(keys, values, [f"m{i}" for i in range(a.n)], queries)


def table(title: str, header: Row, rows: list[Row]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def pct(store_s: float, raw_s: float) -> str:
    return f"{(store_s / raw_s - 1) * 100:+.1f} %"


def spec_for(kind: str) -> IndexSpec:
    if kind == "hnsw":
        return IndexSpec(kind=IndexKind.HNSW, hnsw_m=32, ef_construction=40, ef_search=64)
    if kind == "ivf":
        return IndexSpec(kind=IndexKind.IVF, nlist=1024, nprobe=16)
    return IndexSpec(kind=IndexKind(kind))


def write_all(
    bank: Bank, a: Args, data: Data, raw: faiss.Index | None = None
) -> tuple[float, float]:
    """Seconds inside ``bank.write`` and inside raw FAISS add of the same batches.

    The two are interleaved batch by batch so that both see the same machine load.
    """
    store_s = raw_s = 0.0
    for lo in range(0, a.n, a.batch):
        hi = min(a.n, lo + a.batch)
        ids: list[str | None] = list(data.ids[lo:hi])
        b = MemoryBatch(keys=data.keys[lo:hi], values=data.values[lo:hi], ids=ids)
        t0 = time.perf_counter()
        bank.write(b)
        store_s += time.perf_counter() - t0
        if raw is not None:
            labels = np.arange(lo, hi, dtype=np.int64)
            t0 = time.perf_counter()
            ix.add(raw, labels, data.keys[lo:hi])
            raw_s += time.perf_counter() - t0
    return store_s, raw_s


def raw_index(cfg: BankConfig, a: Args, data: Data) -> faiss.Index:
    """The same kind of index as the bank's, for raw FAISS add."""
    raw = ix.build(cfg.index, cfg.metric, a.d)
    if not raw.is_trained:
        raw.train(data.keys[: ix.train_threshold(cfg.index, key_dim=cfg.key_dim)])
    return raw


def bench_search(kind: str, bank: Bank, a: Args, data: Data) -> list[Row]:
    index = bank.state.index
    params = ix.search_params(
        ix.family(index), bank.config.index, ef_search=None, nprobe=None, k=a.k, selector=None
    )

    def raw(q: np.ndarray) -> None:
        faiss.omp_set_num_threads(1 if len(q) == 1 else faiss.omp_get_max_threads())
        faiss.cvar.distance_compute_blas_threshold = BLAS_MIN_QUERIES * a.d
        index.search(q, a.k, params=params)

    rows: list[Row] = []
    nq = min(a.queries, len(data.queries))
    single = [data.queries[i : i + 1] for i in range(nq)]
    for rep in range(2):  # a warm-up pass, then the measured pass; interleaved per query
        times: list[list[float]] = [[], [], []]  # raw, store, store + vectors
        for i, q in enumerate(single):
            calls: list[Callable[[], object]] = [
                lambda q=q: raw(q),  # type: ignore[misc]
                lambda q=q: bank.search(q, a.k),  # type: ignore[misc]
                lambda q=q: bank.search(q, a.k, with_vectors=True),  # type: ignore[misc]
            ]
            # Rotate who goes first: a repeated query finds the index warm in the cache.
            for j in range(3):
                which = (i + j) % 3
                times[which].append(timed(calls[which]))
        raw_t, st_t, stv_t = times
        if rep == 1:
            r50, s50, v50 = (statistics.median(t) * 1e3 for t in (raw_t, st_t, stv_t))
            mean_pct = pct(statistics.fmean(stv_t), statistics.fmean(raw_t))
            rows.append(
                [
                    kind,
                    "1",
                    f"{r50:.3f}",
                    f"{s50:.3f}",
                    pct(s50, r50),
                    f"{v50:.3f}",
                    pct(v50, r50),
                    mean_pct,
                ]
            )
    bq = data.queries[: a.batch_queries]
    raw_b: list[float] = []
    st_b: list[float] = []
    stv_b: list[float] = []
    batch_calls: list[tuple[list[float], Callable[[], object]]] = [
        (raw_b, lambda: raw(bq)),
        (st_b, lambda: bank.search(bq, a.k)),
        (stv_b, lambda: bank.search(bq, a.k, with_vectors=True)),
    ]
    for i in range(6):
        for j in range(3):
            out, fn = batch_calls[(i + j) % 3]
            out.append(timed(fn))
    rb, sb, vb = (statistics.median(t) * 1e3 for t in (raw_b, st_b, stv_b))
    mean_pct = pct(statistics.fmean(stv_b), statistics.fmean(raw_b))
    rows.append(
        [
            kind,
            str(len(bq)),
            f"{rb:.2f}",
            f"{sb:.2f}",
            pct(sb, rb),
            f"{vb:.2f}",
            pct(vb, rb),
            mean_pct,
        ]
    )
    return rows


def recall_at_10(bank: Bank, data: Data) -> str:
    if len(data.keys) > 200_000:
        return "not computed at this size"
    q = data.queries[:200]
    truth = np.argsort(-(q @ data.keys.T), axis=1)[:, :10]  # (200, 10)
    found = bank.search(q, 10).ids
    hits = sum(len({f"m{t}" for t in row} & set(f)) for row, f in zip(truth, found, strict=True))
    return f"{hits / truth.size:.3f}"


def bench_kind(kind: str, a: Args, data: Data, root: Path) -> tuple[Row, list[Row], list[Row]]:
    path = root / kind
    shutil.rmtree(path, ignore_errors=True)
    settings = StoreSettings(fsync=FsyncPolicy.ALWAYS, snapshot_after_log_bytes=1 << 40)
    store = MemoryStore(path, settings)
    cfg = BankConfig(
        name=kind, key_dim=a.d, value_dim=a.d, metric=Metric.INNER_PRODUCT, index=spec_for(kind)
    )
    bank = store.create_bank(cfg)
    store_s, raw_s = write_all(bank, a, data, raw_index(cfg, a, data))
    gc.collect()
    print(f"{kind}: store {a.n / store_s:,.0f}/s, raw add {a.n / raw_s:,.0f}/s", flush=True)
    write_row = [
        kind,
        f"{a.n:,}",
        f"{a.n / store_s:,.0f}",
        f"{a.n / raw_s:,.0f}",
        f"{store_s / raw_s:.2f}x",
    ]
    search_rows = bench_search(kind, bank, a, data)
    print(f"{kind}: recall@10 vs brute force = {recall_at_10(bank, data)}", flush=True)
    close_s = timed(store.close)
    del bank, store
    gc.collect()
    t0 = time.perf_counter()
    store = MemoryStore(path, settings)
    open_s = time.perf_counter() - t0
    replayed = store.recovery_reports()[kind].records_replayed
    assert store.bank(kind).count() == a.n
    store.close()
    mib = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / (1 << 20)
    open_rows = [
        [kind, f"{a.n:,}", f"{close_s:.2f}", f"{open_s:.2f}", str(replayed), f"{mib:,.0f}"]
    ]
    shutil.rmtree(path, ignore_errors=True)
    if kind == "flat":  # reopen by replaying the whole log, no snapshot (HNSW would rebuild)
        path = root / "flat-replay"
        no_snap = StoreSettings(snapshot_on_close=False, snapshot_after_log_bytes=1 << 40)
        store = MemoryStore(path, no_snap)
        write_all(store.create_bank(cfg), a, data)
        store.close()
        del store
        gc.collect()
        t0 = time.perf_counter()
        store = MemoryStore(path, no_snap)
        replay_s = time.perf_counter() - t0
        replayed = store.recovery_reports()[kind].records_replayed
        store.close()
        shutil.rmtree(path, ignore_errors=True)
        open_rows.append(
            ["flat, log replay only", f"{a.n:,}", "-", f"{replay_s:.2f}", str(replayed), "-"]
        )
    return write_row, search_rows, open_rows


def report(a: Args, writes: list[Row], searches: list[Row], opens: list[Row]) -> None:
    table(
        f"Durable writes: d={a.d} keys + d={a.d} values, batches of {a.batch}, fsync per batch",
        ["index", "memories", "store memories/s", "raw FAISS add/s", "store time / raw time"],
        writes,
    )
    header = ["index", "B", "raw p50", "store p50", "overhead", "store+vectors p50", "overhead"]
    table(
        f"Search, k={a.k}, {a.n:,} memories: store vs raw index.search, same index (ms)",
        [*header, "overhead (mean, +vectors)"],
        searches,
    )
    table(
        "Close (snapshot) and reopen",
        ["index", "memories", "close s", "reopen s", "records replayed", "on disk MiB"],
        opens,
    )
    sys.stdout.flush()


def main() -> None:
    a = parse()
    t0 = time.perf_counter()
    data = make_data(a)
    print(f"data: {a.n:,} x {a.d} keys + values in {time.perf_counter() - t0:.1f} s")
    print(
        f"machine: {platform.machine()}, {faiss.omp_get_max_threads()} OpenMP threads, "
        f"faiss {faiss.__version__}, numpy {np.__version__}, python {platform.python_version()}"
    )
    root = a.data_dir or Path(tempfile.mkdtemp(prefix="bench-store-"))
    writes: list[Row] = []
    searches: list[Row] = []
    opens: list[Row] = []
    for kind in a.kinds:
        w, s, o = bench_kind(kind, a, data, root)
        writes.append(w)
        searches += s
        opens += o
        print(f"\n## Results after {kind}" + (" (final)" if kind == a.kinds[-1] else ""))
        report(a, writes, searches, opens)
    if a.data_dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
