"""FAISS index construction, search parameters, tombstones and training for one bank.

Labels are slot numbers (``vectors.SlotTable``). Two deletion modes:

* **remove** (flat, IVF, IVF-PQ, factory indexes that implement ``remove_ids``):
  dead slots are removed from the index in one batched ``remove_ids`` call per write.
* **tombstone** (HNSW, and factory indexes whose ``remove_ids`` raises): dead slots
  stay in the graph and searches pass an ``IDSelectorBitmap`` of live slots; the
  bank compacts (rebuilds) once dead slots dominate.

An index that needs training (IVF, IVF-PQ, trainable factory strings) is built
untrained; until the bank holds ``train_threshold`` live memories the bank
answers by exact search over its arrays, then trains on all live keys and adds them.
``check`` refuses, at creation, an index memnet cannot drive or that breaks a limit
(``index_plan`` walks the built FAISS index, whatever its spelling).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from memnet.errors import InvalidArgument
from memnet.store import index_plan
from memnet.store.index_plan import POINTS_PER_CENTROID, IndexPlan
from memnet.store.types import BankConfig, IndexKind, IndexSpec, Metric

LOG = logging.getLogger(__name__)

_FAISS_WHERE = re.compile(r"^.*? at \S+:\d+: (?:Error: )?", re.DOTALL)


def faiss_metric(metric: Metric) -> int:
    return int(faiss.METRIC_L2 if metric is Metric.L2 else faiss.METRIC_INNER_PRODUCT)


def train_threshold(spec: IndexSpec, *, key_dim: int) -> int:
    """Live memories needed before the index of ``spec`` at ``key_dim`` is trained."""
    if spec.train_size is not None:
        return spec.train_size
    if spec.kind is IndexKind.IVF:
        return POINTS_PER_CENTROID * spec.nlist
    if spec.kind is IndexKind.IVF_PQ:
        return POINTS_PER_CENTROID * max(spec.nlist, 1 << spec.pq_nbits)
    if spec.kind is IndexKind.FACTORY:
        assert spec.factory is not None
        return _factory_train_points(spec.factory, key_dim)
    return 0


@functools.lru_cache(maxsize=256)
def _factory_train_points(factory: str, key_dim: int) -> int:
    """The training need of a factory string (planned once per string and dimension; the
    metric does not change it, and L2 builds every string memnet accepts)."""
    core = faiss.index_factory(key_dim, factory, faiss.METRIC_L2)
    return index_plan.analyse(core, l2=True).train_points


def check(config: BankConfig) -> IndexPlan:
    """The plan of ``config``'s index; InvalidArgument naming the field when memnet cannot
    drive it, it breaks a limit, or ``train_size`` is below what FAISS needs to train it."""
    spec, dim = config.index, config.key_dim
    field = "index.factory" if spec.kind is IndexKind.FACTORY else "index"
    what = (
        f"index.factory {spec.factory!r}"
        if spec.factory is not None
        else f"index {spec.kind.value}"
    )
    screened = index_plan.screen(spec, dim=dim)
    if screened:
        raise InvalidArgument(f"{what} breaks a limit: {'; '.join(screened)}", field=field)
    try:
        core = _core(spec, config.metric, dim)
    except RuntimeError as err:
        raise InvalidArgument(
            f"{what} cannot be built at key_dim {dim}: {faiss_reason(err)}", field=field
        ) from None
    plan = index_plan.analyse(core, l2=config.metric is Metric.L2)
    if plan.unsupported:
        raise InvalidArgument(
            f"{what} cannot be used by memnet: {'; '.join(plan.unsupported)}", field=field
        )
    if plan.over_limits:
        raise InvalidArgument(f"{what} breaks a limit: {'; '.join(plan.over_limits)}", field=field)
    if spec.train_size is not None and spec.train_size < plan.min_train_points:
        raise InvalidArgument(
            f"index.train_size={spec.train_size} is below the {plan.min_train_points} points "
            f"FAISS needs to train {what} ({plan.structure})",
            field="index.train_size",
        )
    return plan


def faiss_reason(err: BaseException) -> str:
    """FAISS's own words from one of its exceptions, without the C++ signature and file."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return _FAISS_WHERE.sub("", text)[:300]


def build(spec: IndexSpec, metric: Metric, dim: int) -> faiss.Index:
    """An empty FAISS index for ``spec`` whose labels are slot numbers."""
    index = _labelled(_core(spec, metric, dim), spec)
    set_defaults(index, spec)
    return index


def _core(spec: IndexSpec, metric: Metric, dim: int) -> faiss.Index:
    """The index of ``spec`` without memnet's id map; a factory string memnet cannot drive
    raises InvalidArgument (a bank created before the checks is quarantined with it)."""
    fm = faiss_metric(metric)
    if spec.kind is IndexKind.FLAT:
        return faiss.IndexFlat(dim, fm)
    if spec.kind is IndexKind.HNSW:
        index = faiss.IndexHNSWFlat(dim, spec.hnsw_m, fm)
        index.hnsw.efConstruction = spec.ef_construction
        index.hnsw.efSearch = spec.ef_search
        return index
    if spec.kind is IndexKind.IVF:
        flat = faiss.IndexIVFFlat(faiss.IndexFlat(dim, fm), dim, spec.nlist, fm)
        flat.nprobe = spec.nprobe
        return flat
    if spec.kind is IndexKind.IVF_PQ:
        if dim % spec.pq_m:
            raise ValueError(f"index.pq_m={spec.pq_m} must divide key_dim={dim}")
        ivf = faiss.IndexIVFPQ(
            faiss.IndexFlat(dim, fm), dim, spec.nlist, spec.pq_m, spec.pq_nbits, fm
        )
        ivf.nprobe = spec.nprobe
        return ivf
    assert spec.factory is not None
    core = faiss.index_factory(dim, spec.factory, fm)
    plan = index_plan.analyse(core, l2=metric is Metric.L2)
    if plan.unsupported:  # a bank created before these checks: quarantined with the reason
        raise InvalidArgument(
            f"index.factory {spec.factory!r} cannot be used by memnet: "
            f"{'; '.join(plan.unsupported)}",
            field="index.factory",
        )
    _skip_polysemous_training(core)
    return core


def _skip_polysemous_training(core: faiss.Index) -> None:
    """index_factory's PQ trains polysemous codes (simulated annealing, tens of seconds on a
    busy machine, inside a write); memnet never searches by Hamming distance, so skip it."""
    index: Any = faiss.downcast_index(core)  # the SWIG class is known at run time only
    if isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    if isinstance(index, faiss.IndexHNSW):
        index = faiss.downcast_index(index.storage)
    if type(index).__name__ in ("IndexPQ", "IndexIVFPQ"):
        index.do_polysemous_training = False


def _labelled(core: faiss.Index, spec: IndexSpec) -> faiss.Index:
    """``core`` as memnet stores it: flat and factory indexes (but IVF, which labels
    natively) inside an ``IndexIDMap``; an IDMap over IVF breaks remove_ids."""
    if spec.kind is IndexKind.FLAT:
        return faiss.IndexIDMap(core)
    if spec.kind is IndexKind.FACTORY and faiss.try_extract_index_ivf(core) is None:
        return faiss.IndexIDMap(core)
    return core


def remove(index: faiss.Index, slots: np.ndarray) -> None:
    """Remove labels ``slots`` in one batched call (one call per id is catastrophically slow)."""
    removed = index.remove_ids(slots)  # type: ignore[arg-type]  # numpy overload
    assert removed == len(slots), f"removed {removed} of {len(slots)} labels"


def uses_tombstones(index: faiss.Index) -> bool:
    """True when ``remove_ids`` is not implemented (HNSW and friends)."""
    try:
        index.remove_ids(np.empty(0, dtype=np.int64))  # type: ignore[arg-type]  # numpy overload
    except RuntimeError:
        return True
    return False


def is_sequential(index: faiss.Index) -> bool:
    """Indexes without an id map label vectors 0, 1, 2... in add order."""
    return isinstance(index, faiss.IndexHNSW)


def empty_like(index: faiss.Index, spec: IndexSpec, metric: Metric, dim: int) -> faiss.Index:
    """An empty index with the same training (IVF centroids, PQ codebooks) as ``index``."""
    if not index.is_trained or spec.kind in (IndexKind.FLAT, IndexKind.HNSW):
        return build(spec, metric, dim)
    clone = faiss.clone_index(index)
    clone.reset()
    return clone


# Adds of at least this many keys run on every core the process may use: inserting into
# an HNSW graph (and assigning IVF lists) parallelises over the keys. Searches keep one
# OpenMP thread per call (``search.use_threads``; OMP_NUM_THREADS=1 under memnet serve).
PARALLEL_ADD_MIN = 1_000
ADD_THREADS = max(
    1,
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
)


def add(index: faiss.Index, slots: np.ndarray, keys: np.ndarray) -> None:
    """Add (N, Dk) float32 ``keys`` under labels ``slots``; from ``PARALLEL_ADD_MIN``
    keys on, on ``ADD_THREADS`` OpenMP threads (this thread's setting, restored after)."""
    if len(slots) == 0:
        return
    before = faiss.omp_get_max_threads()
    threads = ADD_THREADS if len(slots) >= PARALLEL_ADD_MIN else before
    if threads != before:
        faiss.omp_set_num_threads(threads)
    try:
        if is_sequential(index):
            first, last = int(slots[0]), int(slots[-1])
            assert first == index.ntotal and last == index.ntotal + len(slots) - 1
            index.add(keys)
        else:
            index.add_with_ids(keys, slots)
    finally:
        if threads != before:
            faiss.omp_set_num_threads(before)


def train(index: faiss.Index, keys: np.ndarray) -> None:
    t0 = time.perf_counter()
    index.train(keys)
    LOG.info("trained index on %d vectors in %.1f ms", len(keys), (time.perf_counter() - t0) * 1e3)


def _inner(index: faiss.Index) -> faiss.Index:
    """The searching index under memnet's id map and any pre-transforms (OPQ, PCA, ...)."""
    index = faiss.downcast_index(index)
    while isinstance(index, faiss.IndexIDMap | faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index


def family(index: faiss.Index) -> str:
    """ "hnsw", "ivf" or "other": which search parameters the index takes."""
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    if faiss.try_extract_index_ivf(inner) is not None:
        return "ivf"
    return "other"


# Indexes that keep every key as float32 and compute a query's distance to it directly.
_UNCOMPRESSED = (
    faiss.IndexFlat,
    faiss.IndexFlatIP,
    faiss.IndexFlatL2,
    faiss.IndexHNSWFlat,
    faiss.IndexIVFFlat,
)


def distances_are_scores(index: faiss.Index, metric: Metric) -> bool:
    """True when the index's search distances are the exact float32 scores of the bank.

    Flat, HNSW-Flat and IVF-Flat indexes hold the (index) keys uncompressed and compute
    each inner product directly in float32, so their distances equal a re-scoring from
    the stored keys up to float32 rounding (tests/memnet/store/test_store_scores.py
    checks the bound). L2 is always re-scored: FAISS's batched flat search computes
    ``|x|² + |y|² − 2x·y``, which cancels for near neighbours. Compressed indexes (PQ,
    SQ, pre-transforms) return approximate distances and are re-scored.
    """
    return metric is not Metric.L2 and type(_inner(index)) in _UNCOMPRESSED


def set_defaults(index: faiss.Index, spec: IndexSpec) -> None:
    """Make the spec's efSearch / nprobe the index's own defaults (also after loading it)."""
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = spec.ef_search
    ivf = faiss.try_extract_index_ivf(inner)
    if ivf is not None:
        ivf.nprobe = spec.nprobe


def search_params(
    fam: str,
    spec: IndexSpec,
    *,
    ef_search: int | None,
    nprobe: int | None,
    k: int,
    selector: faiss.IDSelector | None,
) -> faiss.SearchParameters | None:
    """Per-call parameters, or None when the index defaults (``set_defaults``) already apply."""
    if fam == "hnsw":
        ef = max(ef_search or spec.ef_search, k)  # HNSW returns at most efSearch results
        if ef == spec.ef_search and selector is None:
            return None
        return faiss.SearchParametersHNSW(efSearch=ef, sel=selector)  # type: ignore[attr-defined]
    if fam == "ivf":
        if nprobe is None and selector is None:
            return None
        return faiss.SearchParametersIVF(nprobe=nprobe or spec.nprobe, sel=selector)  # type: ignore[call-arg]
    if selector is not None:
        return faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
    return None


def bitmap_selector(allowed_slots: np.ndarray, n_slots: int) -> tuple[faiss.IDSelector, np.ndarray]:
    """A selector admitting exactly ``allowed_slots``; keep the returned bitmap alive while used."""
    mask = np.zeros(n_slots, bool)
    mask[allowed_slots] = True
    bits = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(n_slots, faiss.swig_ptr(bits)), bits


def write(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def read(path: Path) -> faiss.Index:
    return faiss.read_index(str(path))
