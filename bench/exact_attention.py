"""Exact softmax attention over all M memories (torch) against memnet's top-k attention.

    python bench/exact_attention.py [--sizes 10000,100000] [--kinds flat,hnsw,ivf]

The same memories and queries on both sides. Exact: ``softmax(q Kᵀ) V`` over all M
keys in torch float32 on every core, timed both as matmul → softmax → matmul and as
``scaled_dot_product_attention`` (scale 1: the temperature is folded into the queries,
see bench/datasets.py); the faster of the two is the baseline (SDPA, 4–8× slower at
B = 1 here, is not timed above M = 100k: "-" in the tables). memnet: the product
path — a bank of a ``MemoryStore`` (flat, HNSW or IVF index), wrapped in
``BankMemorySource``, queried by the pass-through ``VectorPassThroughModel.query``
(index top-k → exact float32 scores of the K stored keys → softmax over the K → Σ p v).
Its readout is u + o; o is taken as readout − u. Each index is measured twice: plain
top-k (the softmax renormalised over the K), and "+tail": the bank also scores
``tail_samples`` (1,024) uniformly sampled memories to estimate the softmax mass outside
the K, the K get weights exp(s)/Z with Z = Σ_K exp(s) + the estimate, and the tail's
share reads the bank's mean value (``Bank.search(tail_samples=...)``).

Accuracy per query, against a float64 reference over all M:
* readout error = ‖o_topk − o_exact‖ / ‖o_exact‖ (o_topk is renormalised over the K);
* mass captured = Σ exact softmax weights of the K retrieved memories.

Latency: single queries (B = 1), the exact path and each k timed in alternating blocks
of ``n_timed`` queries, median of ``rounds`` rounds; speedup = exact p50 / memnet p50.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets
import timing

from memnet.core.search_options import SearchOptions
from memnet.serving.bank_source import BankMemorySource
from memnet.serving.contract import AttentionMode
from memnet.serving.vector_model import VectorPassThroughModel
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

LOG = logging.getLogger(__name__)

DEFAULT_KS = (8, 16, 32, 64, 128, 256, 512, 1024)
DEFAULT_LOGIT_SCALES = (1.0, 2.0, 4.0)  # times 1/sqrt(D); sqrt(D) (raw dot product) is added
ERROR_TARGET = 0.01
WRITE_BATCH = 50_000
SDPA_MAX_M = 100_000  # above this, SDPA (4–5× slower at B = 1 here) is not timed
REF_CHUNK = 8  # queries per float64 reference pass: (8, M) scores


@dataclass(frozen=True)
class ExactConfig:
    sizes: tuple[int, ...] = (10_000, 100_000)
    kinds: tuple[str, ...] = ("flat", "hnsw", "ivf")
    datasets: tuple[str, ...] = ("clustered", "random")
    ks: tuple[int, ...] = DEFAULT_KS
    logit_scales: tuple[float, ...] = DEFAULT_LOGIT_SCALES
    d: int = 128
    n_accuracy: int = 64  # queries whose error and mass are measured (one batch)
    n_timed: int = 20  # single queries per timed block
    rounds: int = 3
    seed: int = 0
    skip: tuple[tuple[str, int, str], ...] = ()  # (dataset, M, index kind) not run
    # Each index is also measured with the softmax tail estimated from this many sampled
    # memories (label "<kind>+tail"); 0 = not.
    tail_samples: int = 1024

    @property
    def labels(self) -> tuple[str, ...]:
        """Every measured variant: the index kinds, then each kind with a tail estimate."""
        tails = tuple(f"{kind}+tail" for kind in self.kinds) if self.tail_samples else ()
        return (*self.kinds, *tails)


def base_kind(label: str) -> str:
    """The index kind of a variant label ("ivf+tail" -> "ivf")."""
    return label.split("+", 1)[0]


@dataclass(frozen=True)
class AccuracyRow:
    dataset: str
    m: int
    kind: str
    logit_scale: float  # beta * sqrt(D)
    k: int
    error_p50: float  # relative readout error, median over queries
    error_p90: float
    mass_p50: float  # exact attention mass of the retrieved memories, median


@dataclass(frozen=True)
class TimingRow:
    dataset: str
    m: int
    kind: str
    k: int
    memnet_p50_ms: float
    exact_p50_ms: float  # the faster exact path
    exact_impl: str  # which one: "matmul" or "sdpa"
    exact_all_ms: dict[str, float]  # every exact path timed, p50 ms

    @property
    def speedup(self) -> float:
        return self.exact_p50_ms / self.memnet_p50_ms


@dataclass
class ExactResults:
    config: ExactConfig
    accuracy: list[AccuracyRow] = field(default_factory=list)
    timings: list[TimingRow] = field(default_factory=list)
    builds: list[tuple[str, int, str, float]] = field(default_factory=list)  # ds, M, kind, s


def index_spec(kind: str, m: int) -> IndexSpec:
    """HNSW32 efConstruction 40 / efSearch 64 (ef grows to k); IVF-Flat with nprobe 16 and
    nlist = 4·sqrt(M), the low end of FAISS's guideline for up to 1M vectors (4–16·sqrt(N),
    "Guidelines to choose an index"). At 1M clustered, top-512 + tail, nlist 4,096 took
    0.61 ms per query against 0.97 ms with nlist 1,000 (sqrt(M)) at the same readout error
    (0.67 % vs 0.71 %): a 4× smaller scan of the lists for a 4× larger centroid scan."""
    if kind == "hnsw":
        return IndexSpec(kind=IndexKind.HNSW, hnsw_m=32, ef_construction=40, ef_search=64)
    if kind == "ivf":
        nlist = max(16, round(4 * m**0.5))
        return IndexSpec(kind=IndexKind.IVF, nlist=nlist, nprobe=16, train_size=min(m, 39 * nlist))
    return IndexSpec(kind=IndexKind.FLAT)


def build_bank(store: MemoryStore, name: str, ds: datasets.Dataset, kind: str) -> Bank:
    """A bank holding ``ds`` (ids "0".."M-1"), written in batches.

    The build (setup, never timed here) runs FAISS on one OpenMP thread: on this shared
    2-core machine, 2-thread HNSW inserts were 7× slower (747 vs 5,494 inserts/s,
    2026-11-23). Searches set their own thread count per call (memnet.store.search).
    """
    cfg = BankConfig(
        name=name,
        key_dim=ds.d,
        value_dim=ds.d,
        metric=Metric.INNER_PRODUCT,
        index=index_spec(kind, ds.m),
        model="vector",
    )
    bank = store.create_bank(cfg)
    ids = datasets.ids_for(ds.m)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for lo in range(0, ds.m, WRITE_BATCH):
            hi = min(ds.m, lo + WRITE_BATCH)
            batch_ids: list[str | None] = list(ids[lo:hi])
            bank.write(MemoryBatch(keys=ds.keys[lo:hi], values=ds.values[lo:hi], ids=batch_ids))
    finally:
        faiss.omp_set_num_threads(threads)
    return bank


def scratch_store(root: Path) -> MemoryStore:
    """A store for benchmark banks: no fsync and no snapshots (durability is not measured here)."""
    settings = StoreSettings(
        fsync=FsyncPolicy.NONE, snapshot_after_log_bytes=1 << 50, snapshot_on_close=False
    )
    return MemoryStore(root, settings)


def exact_reference(q: np.ndarray, ds: datasets.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """float64 exact readout (B, D) and log-sum-exp (B,) of the logits of (B, D) scaled queries."""
    keys = torch.from_numpy(ds.keys).double()  # (M, D)
    values = torch.from_numpy(ds.values).double()  # (M, D)
    outs: list[np.ndarray] = []
    lses: list[np.ndarray] = []
    for lo in range(0, len(q), REF_CHUNK):
        s = torch.from_numpy(q[lo : lo + REF_CHUNK]).double() @ keys.T  # (b, M)
        lse = torch.logsumexp(s, dim=1)  # (b,)
        outs.append((torch.exp(s - lse[:, None]) @ values).numpy())  # (b, D)
        lses.append(lse.numpy())
    return np.concatenate(outs), np.concatenate(lses)


def exact_attention_fns(ds: datasets.Dataset) -> dict[str, Callable[[np.ndarray], torch.Tensor]]:
    """The timed exact paths for (B, D) scaled queries, float32 over all M keys.

    Both torch formulations are timed and the faster one is the baseline: for B = 1 on
    this CPU the fused ``scaled_dot_product_attention`` is several times slower than
    the plain matmul → softmax → matmul, so above SDPA_MAX_M only the matmul is timed.
    """
    keys = torch.from_numpy(ds.keys)  # (M, D)
    values = torch.from_numpy(ds.values)  # (M, D)
    cores = os.cpu_count() or 1

    def matmul(q: np.ndarray) -> torch.Tensor:
        # faiss and torch share one OpenMP runtime, and a B = 1 search leaves it on one
        # thread: give the exact path every core on every call.
        torch.set_num_threads(cores)
        with torch.inference_mode():
            return torch.softmax(torch.from_numpy(q) @ keys.T, dim=-1) @ values  # (B, D)

    def sdpa(q: np.ndarray) -> torch.Tensor:
        torch.set_num_threads(cores)
        with torch.inference_mode():
            return F.scaled_dot_product_attention(
                torch.from_numpy(q)[None], keys[None], values[None], scale=1.0
            )[0]  # (B, D)

    if ds.m > SDPA_MAX_M:
        return {"matmul": matmul}
    return {"matmul": matmul, "sdpa": sdpa}


@dataclass(frozen=True)
class Variant:
    """A bank read as memnet reads it, with or without the softmax tail estimate."""

    source: BankMemorySource
    tail_samples: int | None = None

    def options(self, k: int) -> SearchOptions:
        return SearchOptions(k=k, hops=1, mode=AttentionMode.SPARSE, tail_samples=self.tail_samples)


def topk_readout(
    model: VectorPassThroughModel, variant: Variant, q: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """memnet's o (B, D) and the (B, K) exact logits of the K memories it attended to."""
    out = model.query(q, variant.source, variant.options(k))
    o = out.readout - q  # (B, D): the readout is u + o for Dk == Dv
    return o, np.where(out.hops[0].weights > 0, out.hops[0].scores, -np.inf)


def accuracy(
    model: VectorPassThroughModel,
    variant: Variant,
    q: np.ndarray,
    k: int,
    *,
    o_exact: np.ndarray,
    lse: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-query relative readout error (B,) and exact attention mass captured (B,)."""
    o, logits = topk_readout(model, variant, q, k)
    err = np.linalg.norm(o - o_exact, axis=1) / np.linalg.norm(o_exact, axis=1)
    mass = np.exp(logits.astype(np.float64) - lse[:, None]).sum(axis=1)
    return err, mass


def block_p50_ms(fn: Callable[[np.ndarray], object], singles: list[np.ndarray]) -> float:
    """Median ms of ``fn`` over single queries, after one warm-up call."""
    fn(singles[0])
    return 1e3 * statistics.median(timing.time_once_s(lambda s=s: fn(s)) for s in singles)


def time_topk_and_exact(
    model: VectorPassThroughModel,
    variants: dict[str, Variant],
    exact: dict[str, Callable[[np.ndarray], torch.Tensor]],
    q: np.ndarray,
    *,
    ks: tuple[int, ...],
    rounds: int,
) -> tuple[dict[str, float], dict[tuple[str, int], float]]:
    """Single-query p50 ms of each exact path and of each (variant, k), alternating
    blocks per round.

    Blocks (not single calls) alternate: an exact pass streams the whole key array and
    would evict the index's cache lines before every top-k query (ENVIRONMENT.md).
    """
    singles = [q[i : i + 1] for i in range(len(q))]
    exact_ms: dict[str, list[float]] = {name: [] for name in exact}
    topk_ms: dict[tuple[str, int], list[float]] = {(v, k): [] for v in variants for k in ks}
    for _ in range(rounds):
        for name, fn in exact.items():
            exact_ms[name].append(block_p50_ms(fn, singles))
        for (name, k), times in topk_ms.items():
            variant = variants[name]

            def one(s: np.ndarray, v: Variant = variant, k: int = k) -> object:
                return model.query(s, v.source, v.options(k))

            times.append(block_p50_ms(one, singles))
    return (
        {name: statistics.median(v) for name, v in exact_ms.items()},
        {key: statistics.median(v) for key, v in topk_ms.items()},
    )


def run_one(cfg: ExactConfig, ds: datasets.Dataset, root: Path, out: ExactResults) -> None:
    model = VectorPassThroughModel()
    scales = (*cfg.logit_scales, float(np.sqrt(ds.d)))
    refs = {s: exact_reference(ds.scaled_queries(s)[: cfg.n_accuracy], ds) for s in scales}
    exact = exact_attention_fns(ds)
    timed_q = ds.scaled_queries(1.0)[cfg.n_accuracy : cfg.n_accuracy + cfg.n_timed]
    ks = tuple(k for k in cfg.ks if k <= ds.m)
    for kind in cfg.kinds:
        if (ds.name, ds.m, kind) in cfg.skip:
            LOG.info("%s M=%d %s: skipped", ds.name, ds.m, kind)
            continue
        path = root / f"{ds.name}-{ds.m}-{kind}"
        store = scratch_store(path)
        t0 = time.perf_counter()
        bank = build_bank(store, "bench", ds, kind)
        build_s = time.perf_counter() - t0
        out.builds.append((ds.name, ds.m, kind, build_s))
        LOG.info("%s M=%d %s: bank built in %.1f s", ds.name, ds.m, kind, build_s)
        variants = {kind: Variant(BankMemorySource(bank))}
        if cfg.tail_samples:
            variants[f"{kind}+tail"] = Variant(BankMemorySource(bank), cfg.tail_samples)
        for name, variant in variants.items():
            for s in scales:
                q = ds.scaled_queries(s)[: cfg.n_accuracy]
                o_exact, lse = refs[s]
                for k in ks:
                    err, mass = accuracy(model, variant, q, k, o_exact=o_exact, lse=lse)
                    out.accuracy.append(
                        AccuracyRow(
                            ds.name,
                            ds.m,
                            name,
                            s,
                            k,
                            float(np.median(err)),
                            float(np.percentile(err, 90)),
                            float(np.median(mass)),
                        )
                    )
        exact_ms, topk_ms = time_topk_and_exact(
            model, variants, exact, timed_q, ks=ks, rounds=cfg.rounds
        )
        best = min(exact_ms, key=lambda name: exact_ms[name])
        for (name, k), ms in topk_ms.items():
            out.timings.append(
                TimingRow(ds.name, ds.m, name, k, ms, exact_ms[best], best, exact_ms)
            )
        LOG.info(
            "%s M=%d %s: exact %s, top-32 %.3f ms",
            ds.name,
            ds.m,
            kind,
            exact_ms,
            topk_ms.get((kind, 32), float("nan")),
        )
        store.close()
        del bank, variants, store
        gc.collect()
        shutil.rmtree(path, ignore_errors=True)


def run(cfg: ExactConfig, *, work_dir: Path | None = None) -> ExactResults:
    out = ExactResults(cfg)
    root = Path(tempfile.mkdtemp(prefix="bench-exact-", dir=work_dir))
    try:
        for name in cfg.datasets:
            for m in cfg.sizes:
                t0 = time.perf_counter()
                ds = datasets.make(name, m, cfg.d, cfg.n_accuracy + cfg.n_timed, seed=cfg.seed)
                LOG.info("%s M=%d generated in %.1f s", name, m, time.perf_counter() - t0)
                run_one(cfg, ds, root, out)
                del ds
                gc.collect()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def smallest_k(
    res: ExactResults, dataset: str, m: int, kind: str, logit_scale: float
) -> AccuracyRow | None:
    """The smallest k whose median readout error is within ERROR_TARGET, or None."""
    rows = [
        r
        for r in res.accuracy
        if (r.dataset, r.m, r.kind) == (dataset, m, kind)
        and abs(r.logit_scale - logit_scale) < 1e-6
        and r.error_p50 <= ERROR_TARGET
    ]
    return min(rows, key=lambda r: r.k) if rows else None


def timing_of(res: ExactResults, dataset: str, m: int, kind: str, k: int) -> TimingRow | None:
    for r in res.timings:
        if (r.dataset, r.m, r.kind, r.k) == (dataset, m, kind, k):
            return r
    return None


def scale_label(s: float, d: int) -> str:
    return "√D (raw dot)" if abs(s - d**0.5) < 1e-6 else f"{s:g}"


def tables(res: ExactResults) -> list[str]:
    """Markdown tables: curves at logit scale 1, and the smallest k per temperature."""
    cfg = res.config
    out: list[str] = []
    for name in cfg.datasets:
        rows: list[list[str]] = []
        for m in cfg.sizes:
            for kind in cfg.labels:
                for r in res.accuracy:
                    if (r.dataset, r.m, r.kind) != (name, m, kind) or r.logit_scale != 1.0:
                        continue
                    t = timing_of(res, name, m, kind, r.k)
                    rows.append(
                        [
                            f"{m:,}",
                            kind,
                            str(r.k),
                            f"{100 * r.error_p50:.2f} %",
                            f"{100 * r.error_p90:.2f} %",
                            f"{100 * r.mass_p50:.1f} %",
                            timing.fmt_ms(t.memnet_p50_ms) if t else "-",
                            " / ".join(
                                timing.fmt_ms(t.exact_all_ms[n]) if n in t.exact_all_ms else "-"
                                for n in ("matmul", "sdpa")
                            )
                            if t
                            else "-",
                            timing.fmt_ratio(t.speedup) if t else "-",
                        ]
                    )
        out.append(
            timing.table(
                f"Exact vs top-k attention, {name} data, logit scale 1 (β = 1/√D), D = {cfg.d}",
                [
                    "M",
                    "index",
                    "k",
                    "readout err p50",
                    "err p90",
                    "mass p50",
                    "memnet p50 ms",
                    "exact p50 ms (matmul / SDPA)",
                    "speedup vs faster",
                ],
                rows,
            )
        )
    rows = []
    for name in cfg.datasets:
        for m in cfg.sizes:
            for s in (*cfg.logit_scales, cfg.d**0.5):
                for kind in cfg.labels:
                    if (name, m, base_kind(kind)) in cfg.skip:
                        rows.append([name, f"{m:,}", scale_label(s, cfg.d), kind, "not run"])
                        rows[-1] += ["-", "-"]
                        continue
                    best = smallest_k(res, name, m, kind, s)
                    t = timing_of(res, name, m, kind, best.k) if best else None
                    rows.append(
                        [
                            name,
                            f"{m:,}",
                            scale_label(s, cfg.d),
                            kind,
                            str(best.k) if best else f"none ≤ {max(cfg.ks)}",
                            f"{100 * best.mass_p50:.1f} %" if best else "-",
                            timing.fmt_ratio(t.speedup) if t else "-",
                        ]
                    )
    out.append(
        timing.table(
            "Smallest k with median readout error ≤ 1 %, per softmax temperature",
            ["data", "M", "logit scale (β·√D)", "index", "smallest k", "mass", "speedup"],
            rows,
        )
    )
    return out


def plot(res: ExactResults, out_dir: Path) -> list[Path]:
    """One PNG per dataset: error, mass and speedup against k at logit scale 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = res.config
    paths: list[Path] = []
    for name in cfg.datasets:
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
        for m in cfg.sizes:
            for kind in cfg.labels:
                acc = [
                    r
                    for r in res.accuracy
                    if (r.dataset, r.m, r.kind) == (name, m, kind) and r.logit_scale == 1.0
                ]
                tim = [r for r in res.timings if (r.dataset, r.m, r.kind) == (name, m, kind)]
                if not acc:
                    continue
                label = f"M={m:,} {kind}"
                style = "o--" if "+tail" in kind else "o-"
                axes[0].plot(
                    [r.k for r in acc], [100 * r.error_p50 for r in acc], style, label=label
                )
                axes[1].plot(
                    [r.k for r in acc], [100 * r.mass_p50 for r in acc], style, label=label
                )
                axes[2].plot([r.k for r in tim], [r.speedup for r in tim], style, label=label)
        axes[0].axhline(100 * ERROR_TARGET, color="grey", ls="--", lw=1)
        axes[2].axhline(100, color="grey", ls="--", lw=1)
        titles = ("readout error p50 (%)", "attention mass captured p50 (%)", "speedup vs exact")
        for ax, title in zip(axes, titles, strict=True):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("k (memories attended)")
            ax.set_title(title)
            ax.grid(True, alpha=0.3)
        axes[0].set_yscale("log")
        axes[2].set_yscale("log")
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{name} data, D={cfg.d}, logit scale 1 (β = 1/√D)")
        fig.tight_layout()
        path = out_dir / f"exact_attention_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="10000,100000", help="bank sizes M, comma-separated")
    p.add_argument("--kinds", default="flat,hnsw,ivf")
    p.add_argument("--datasets", default="clustered,random")
    p.add_argument(
        "--tail-samples",
        type=int,
        default=ExactConfig.tail_samples,
        help="also measure each index with the softmax tail estimated from this many "
        "sampled memories (0 = not)",
    )
    p.add_argument("--out-dir", type=Path, default=None, help="write PNGs here")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = ExactConfig(
        sizes=tuple(int(s) for s in a.sizes.split(",")),
        kinds=tuple(a.kinds.split(",")),
        datasets=tuple(a.datasets.split(",")),
        tail_samples=a.tail_samples,
    )
    res = run(cfg)
    for t in tables(res):
        print(t)
    if a.out_dir is not None:
        a.out_dir.mkdir(parents=True, exist_ok=True)
        plot(res, a.out_dir)


if __name__ == "__main__":
    main()
