"""Search of one bank: candidates from FAISS (or an exact scan), exact re-scoring, padding.

The index only proposes candidate slots; every returned score is recomputed from
the stored float32 keys, so a compressed index (PQ) changes which memories are
found, never their scores. Scores are higher-is-better: inner product, cosine,
or -squared L2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import faiss
import numpy as np

from memnet.core.search_options import MetadataFilter, SearchOptions
from memnet.errors import InvalidArgument
from memnet.store import index as ix
from memnet.store.state import BankState
from memnet.store.types import BankConfig, IndexKind, Metric, SearchResult
from memnet.store.vectors import TailSample

# A filtered search scans its matching memories exactly when there are at most this many.
EXACT_SUBSET_MAX = 65_536
# IVF-PQ distances are approximate: fetch this many times k and keep the exact best k.
PQ_OVERFETCH = 4
# Batches of at least this many queries use BLAS for flat distances: FAISS 1.15 compares
# distance_compute_blas_threshold with nq * d, so we set it to 20 * d per search.
BLAS_MIN_QUERIES = 20
_OMP_THREADS = faiss.omp_get_max_threads()


def empty_result(b: int, k: int, config: BankConfig, *, with_vectors: bool) -> SearchResult:
    return SearchResult(
        ids=[[""] * k for _ in range(b)],
        scores=np.full((b, k), -np.inf, np.float32),
        valid=np.zeros((b, k), bool),
        recency=np.full((b, k), -1, np.int64),
        keys=np.zeros((b, k, config.key_dim), np.float32) if with_vectors else None,
        values=np.zeros((b, k, config.value_dim), np.float32) if with_vectors else None,
    )


def candidates(
    state: BankState,
    config: BankConfig,
    q: np.ndarray,
    k: int,
    *,
    ef_search: int | None,
    nprobe: int | None,
    allowed: np.ndarray | None,
) -> np.ndarray:
    """(B, Kf) int64 candidate slots for (B, Dk) queries, -1 where there are none.

    ``allowed``: the (M',) slots a metadata filter matched (``SlotTable.matching``),
    or None for every live memory.
    """
    t = state.table
    faiss.omp_set_num_threads(1 if q.shape[0] == 1 else _OMP_THREADS)  # per-thread OpenMP setting
    faiss.cvar.distance_compute_blas_threshold = BLAS_MIN_QUERIES * q.shape[1]
    selector: faiss.IDSelector | None = None
    keep_alive: np.ndarray | None = None
    if allowed is not None:
        if len(allowed) == 0:
            return np.full((q.shape[0], 1), -1, np.int64)
        if not state.trained or len(allowed) <= EXACT_SUBSET_MAX:
            return exact_candidates(state, config, q, k, allowed)
        selector, keep_alive = ix.bitmap_selector(allowed, t.n_slots)
    elif not state.trained:
        return exact_candidates(state, config, q, k, t.live_slots())
    else:
        live = state.live_selector()
        if live is not None:
            selector, keep_alive = live
    kf = k * PQ_OVERFETCH if config.index.kind is IndexKind.IVF_PQ else k
    if ef_search is None and selector is not None and state.tombstones:
        # Over-fetch through tombstones: widen the beam by the share of dead slots.
        ef_search = min(
            1 << 16, int(max(config.index.ef_search, kf) * t.n_slots / max(t.n_live, 1))
        )
    params = ix.search_params(
        state.family, config.index, ef_search=ef_search, nprobe=nprobe, k=kf, selector=selector
    )
    _, labels = state.index.search(q, kf, params=params)  # (B, Kf)
    del keep_alive
    return np.asarray(labels, np.int64)


def exact_candidates(
    state: BankState, config: BankConfig, q: np.ndarray, k: int, slots: np.ndarray
) -> np.ndarray:
    """Top-k by exact scan over ``slots`` (untrained index, or a small filtered subset)."""
    base = state.table.keys[slots]  # (M', Dk)
    metric = config.metric
    if metric is Metric.COSINE:
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
    _, found = faiss.knn(
        q,
        np.ascontiguousarray(base, np.float32),
        min(k, len(slots)),
        metric=ix.faiss_metric(metric),
    )
    return np.where(found >= 0, slots[np.maximum(found, 0)], -1).astype(np.int64)  # (B, k')


def exact_scores(metric: Metric, q: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(B, K) scores of (B, Dk) queries against their (B, K, Dk) candidate keys."""
    if metric is Metric.L2:
        diff = keys - q[:, None, :]  # (B, K, Dk)
        return -np.einsum("bkd,bkd->bk", diff, diff)
    dots = np.matmul(keys, q[:, :, None])[:, :, 0]  # (B, K)
    if metric is Metric.COSINE:  # q is unit-norm already
        norms = np.linalg.norm(keys, axis=2)  # (B, K)
        return dots / np.where(norms > 0, norms, 1.0)
    return dots


def pairwise_scores(metric: Metric, q: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(B, S) scores of (B, Dk) queries against one shared set of (S, Dk) keys."""
    if metric is Metric.L2:
        q2 = np.einsum("bd,bd->b", q, q)[:, None]  # (B, 1)
        k2 = np.einsum("sd,sd->s", keys, keys)[None, :]  # (1, S)
        return -(q2 - 2.0 * (q @ keys.T) + k2)
    dots = q @ keys.T  # (B, S)
    if metric is Metric.COSINE:  # q is unit-norm already
        norms = np.linalg.norm(keys, axis=1)  # (S,)
        return dots / np.where(norms > 0, norms, 1.0)[None, :]
    return dots


def tail_estimate(
    state: BankState,
    config: BankConfig,
    q: np.ndarray,
    slots: np.ndarray,
    population: np.ndarray,
    *,
    n_samples: int,
    rng: np.random.Generator,
    mean_value: Callable[[], np.ndarray],
    cached: TailSample | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The softmax tail of each row: ``population`` slots outside the row's result.

    ``slots`` (B, K) are the rows' results, -1 for padding. With at least as many
    samples as the population every member is scored: the (B,) log Σ exp(score) is
    exact and the (B, Dv) tail value is the exp(score)-weighted mean of the members'
    values. Otherwise ``n_samples`` members drawn uniformly with replacement estimate
    Σ exp(score) (scaled by N / n_samples: unbiased) and the tail value is
    ``mean_value()``, the population's mean. -inf and zeros for an empty tail.
    ``cached``: a sample of the population drawn earlier (``SlotTable.tail_sample``).
    """
    n = len(population)
    B, Dv = q.shape[0], config.value_dim
    if n == 0:
        return np.full(B, -np.inf), np.zeros((B, Dv), np.float32)
    exact = n_samples >= n
    t = state.table
    if exact:
        sample, sample_keys, scale = population, t.keys[population], 1.0
    elif cached is not None:
        sample, sample_keys, scale = cached.slots, cached.keys, n / len(cached.slots)
    else:
        sample = population[rng.integers(0, n, n_samples)]
        sample_keys, scale = t.keys[sample], n / n_samples
    scores = pairwise_scores(config.metric, q, sample_keys).astype(np.float64)  # (B, S)
    for row in range(B):  # a sampled member in the row's result is not in its tail
        members = np.sort(slots[row])  # (K,)
        at = np.minimum(np.searchsorted(members, sample), len(members) - 1)  # (S,)
        scores[row, members[at] == sample] = -np.inf
    top = scores.max(axis=1)  # (B,)
    shift = np.where(np.isfinite(top), top, 0.0)[:, None]  # (B, 1)
    e = np.exp(scores - shift)  # (B, S)
    mass = e.sum(axis=1)  # (B,)
    with np.errstate(divide="ignore"):
        log_mass = np.log(mass * scale) + shift[:, 0]
    if exact:
        weighted = e @ t.values[sample].astype(np.float64)  # (B, Dv)
        value = weighted / np.where(mass > 0, mass, 1.0)[:, None]
    else:
        value = np.broadcast_to(mean_value(), (B, Dv))
    return log_mass, np.ascontiguousarray(value, np.float32)


def assemble(
    state: BankState,
    config: BankConfig,
    q: np.ndarray,
    cands: np.ndarray,
    k: int,
    *,
    with_vectors: bool,
) -> tuple[SearchResult, np.ndarray]:
    """Re-score candidates exactly, keep the best k per row, pad, attach recency and vectors.

    Also returns the rows' (B, K) int64 slots, -1 for padding.
    """
    t = state.table
    valid = cands >= 0  # (B, Kf)
    all_valid = bool(valid.all())
    safe = cands if all_valid else np.where(valid, cands, 0)
    cand_keys = t.keys[safe]  # (B, Kf, Dk), reused as the result's keys
    scores = exact_scores(config.metric, q, cand_keys).astype(np.float32)  # (B, Kf)
    if not all_valid:
        scores[~valid] = -np.inf
    if scores.shape[1] <= k and bool((scores[:, :-1] >= scores[:, 1:]).all()):
        slots = safe  # FAISS's order already agrees with the exact scores (the usual case)
    else:
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (B, k')
        rows = np.arange(q.shape[0])[:, None]  # (B, 1)
        slots, scores, valid = safe[rows, order], scores[rows, order], valid[rows, order]
        cand_keys = cand_keys[rows, order] if with_vectors else cand_keys
    if slots.shape[1] < k:  # fewer candidates than k: pad
        pad = k - slots.shape[1]
        slots = np.pad(slots, ((0, 0), (0, pad)))
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        valid = np.pad(valid, ((0, 0), (0, pad)), constant_values=False)
        if with_vectors:
            cand_keys = np.pad(cand_keys, ((0, 0), (0, pad), (0, 0)))
        all_valid = False
    recency = t.recency(slots)  # (B, K)
    flat = slots.ravel().tolist()
    flat_ids: list[str | None] = (
        list(itemgetter(*flat)(t.ids)) if len(flat) > 1 else [t.ids[flat[0]]]
    )
    keys = cand_keys if with_vectors else None  # (B, K, Dk)
    values = t.values[slots] if with_vectors else None  # (B, K, Dv)
    if not all_valid:
        invalid = ~valid
        recency[invalid] = -1
        for j in np.flatnonzero(invalid.ravel()).tolist():
            flat_ids[j] = ""
        if keys is not None and values is not None:
            keys[invalid] = 0.0
            values[invalid] = 0.0
    ids = [flat_ids[r * k : (r + 1) * k] for r in range(slots.shape[0])]  # B lists of K
    result = SearchResult(
        ids=ids,  # type: ignore[arg-type]  # "" replaced every None above
        scores=scores,
        valid=valid,
        recency=recency,
        keys=keys,
        values=values,
    )
    return result, (slots if all_valid else np.where(valid, slots, -1))


def search(
    state: BankState,
    config: BankConfig,
    q: np.ndarray,
    k: int,
    *,
    ef_search: int | None,
    nprobe: int | None,
    metadata_filter: dict[str, object] | None,
    tail_samples: int | None,
    with_vectors: bool,
    rng: np.random.Generator,
) -> SearchResult:
    """Top-k of validated (B, Dk) queries over ``state`` (the caller holds the bank's
    shared lock), with the softmax tail estimate when ``tail_samples`` is given."""
    t = state.table
    B = q.shape[0]
    if t.n_live == 0:
        result = empty_result(B, k, config, with_vectors=with_vectors)
        if tail_samples is None:
            return result
        return dataclasses.replace(  # an empty bank: no tail
            result,
            tail_log_mass=np.full(B, -np.inf),
            tail_value=np.zeros((B, config.value_dim), np.float32),
        )
    allowed = t.matching(metadata_filter) if metadata_filter else None
    cands = candidates(state, config, q, k, ef_search=ef_search, nprobe=nprobe, allowed=allowed)
    result, slots = assemble(state, config, q, cands, k, with_vectors=with_vectors)
    if tail_samples is None:
        return result
    cached: TailSample | None = None
    if allowed is not None:
        population = allowed

        def mean_value() -> np.ndarray:
            return t.values[population].mean(0).astype(np.float32)  # (Dv,)

    else:
        population, mean_value = t.live_slots(), t.value_mean
        if tail_samples < len(population):
            cached = t.tail_sample(tail_samples, rng)
    log_mass, value = tail_estimate(
        state,
        config,
        q,
        slots,
        population,
        n_samples=tail_samples,
        rng=rng,
        mean_value=mean_value,
        cached=cached,
    )
    return dataclasses.replace(result, tail_log_mass=log_mass, tail_value=value)


def options_of(
    k: int | SearchOptions,
    *,
    ef_search: int | None,
    nprobe: int | None,
    metadata_filter: dict[str, Any] | None,
    tail_samples: int | None,
) -> SearchOptions:
    """A search's options: ``k`` itself, or built from ``k`` and the keyword knobs."""
    if isinstance(k, SearchOptions):
        if (ef_search, nprobe, metadata_filter, tail_samples) != (None, None, None, None):
            raise InvalidArgument(
                "give the search knobs in the SearchOptions or as keywords, not both",
                field="options",
            )
        return k
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidArgument(f"k must be an integer, got {k!r}", field="k")
    return SearchOptions(
        k=int(k),
        ef_search=ef_search,
        nprobe=nprobe,
        metadata_filter=None
        if metadata_filter is None
        else MetadataFilter.of(metadata_filter, field="metadata_filter"),
        tail_samples=tail_samples,
    )
