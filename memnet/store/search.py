"""Search of one bank: candidates from FAISS (or an exact scan), exact scores, padding.

The index only proposes candidate slots; every returned score is the exact float32
score of the stored key, so a compressed index (PQ) changes which memories are
found, never their scores. Indexes that hold their keys uncompressed (flat, HNSW-Flat,
IVF-Flat; inner product and cosine) already return those scores as their distances,
which are used as they are; every other index's candidates are re-scored from the
stored keys. Scores are higher-is-better: inner product, cosine, or -squared L2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter

import faiss
import numpy as np

from memnet.store import index as ix
from memnet.store.scores import exact_scores, pairwise_scores, softmax_tail
from memnet.store.state import BankState
from memnet.store.types import BankConfig, IndexKind, Metric, SearchResult
from memnet.store.vectors import TailSample

# A filtered search scans its matching memories exactly when there are at most this many.
EXACT_SUBSET_MAX = 65_536
# IVF-PQ distances are approximate: fetch this many times k and keep the exact best k.
PQ_OVERFETCH = 4
# Batches of at least this many queries use BLAS for flat distances (one pass over the
# keys for the whole batch): FAISS 1.15 compares distance_compute_blas_threshold with
# nq * d, so we set it to BLAS_MIN_QUERIES * d. Measured on 2 cores, one thread, per
# query: 2,000 x 100 keys, 49 / 43 / 50 / 48 µs without BLAS at B = 1 / 4 / 8 / 16
# against 112 / 37 / 29 / 23 µs with it; 100k x 128, 6.1 / 5.7 / 5.7 / 5.5 ms against
# 15.6 / 3.8 / 2.4 / 1.5 ms. Single queries (and pairs) scan without BLAS.
BLAS_MIN_QUERIES = 4
_OMP_THREADS = faiss.omp_get_max_threads()


@dataclass(frozen=True)
class Candidates:
    """What an index (or an exact scan) proposes for (B, Dk) queries."""

    slots: np.ndarray  # (B, Kf) int64, -1 where there is none
    # (B, Kf) float32 exact scores of ``slots``, best first, when the search computed
    # them (``BankState.distances_exact``); None: re-score from the stored keys.
    scores: np.ndarray | None


def use_threads(b: int, d: int) -> None:
    """One OpenMP thread for a single query, all of them for a batch (a per-thread
    setting); BLAS for flat distances from BLAS_MIN_QUERIES queries on. Each is read
    first and set only when it differs: most searches change neither."""
    threads = 1 if b == 1 else _OMP_THREADS
    if faiss.omp_get_max_threads() != threads:
        faiss.omp_set_num_threads(threads)
    threshold = BLAS_MIN_QUERIES * d
    if faiss.cvar.distance_compute_blas_threshold != threshold:
        faiss.cvar.distance_compute_blas_threshold = threshold


def empty_result(
    b: int, k: int, config: BankConfig, *, with_keys: bool, with_values: bool
) -> SearchResult:
    return SearchResult(
        ids=[[""] * k for _ in range(b)],
        scores=np.full((b, k), -np.inf, np.float32),
        valid=np.zeros((b, k), bool),
        recency=np.full((b, k), -1, np.int64),
        keys=np.zeros((b, k, config.key_dim), np.float32) if with_keys else None,
        values=np.zeros((b, k, config.value_dim), np.float32) if with_values else None,
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
) -> Candidates:
    """Candidate slots for (B, Dk) queries, with their scores when the search computed
    them exactly.

    ``allowed``: the (M',) slots a metadata filter matched (``SlotTable.matching``),
    or None for every live memory.
    """
    t = state.table
    use_threads(q.shape[0], q.shape[1])
    selector: faiss.IDSelector | None = None
    keep_alive: np.ndarray | None = None
    if allowed is not None:
        if len(allowed) == 0:
            return Candidates(np.full((q.shape[0], 1), -1, np.int64), None)
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
    distances, labels = state.index.search(q, kf, params=params)  # (B, Kf) each
    del keep_alive
    return Candidates(labels, distances if state.distances_exact else None)


def exact_candidates(
    state: BankState, config: BankConfig, q: np.ndarray, k: int, slots: np.ndarray
) -> Candidates:
    """Top-k by exact scan over ``slots`` (untrained index, or a small filtered subset)."""
    base = state.table.keys[slots]  # (M', Dk)
    metric = config.metric
    if metric is Metric.COSINE:
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
    distances, found = faiss.knn(
        q,
        np.ascontiguousarray(base, np.float32),
        min(k, len(slots)),
        metric=ix.faiss_metric(metric),
    )  # (B, k') each
    labels = np.where(found >= 0, slots[np.maximum(found, 0)], -1).astype(np.int64)
    # A direct float32 scan: its inner products are exact scores (L2 is re-scored,
    # see ``ix.distances_are_scores``).
    return Candidates(labels, None if metric is Metric.L2 else distances)


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
    return softmax_tail(
        scores,
        scale=scale,
        sample_values=t.values[sample] if exact else None,
        mean_value=mean_value,
    )


def assemble(
    state: BankState,
    config: BankConfig,
    q: np.ndarray,
    cands: Candidates,
    k: int,
    *,
    with_keys: bool,
    with_values: bool,
) -> tuple[SearchResult, np.ndarray]:
    """Exact scores (re-scored unless the search computed them), the best k per row,
    padding, recency, and the keys and values when asked for.

    Also returns the rows' (B, K) int64 slots, -1 for padding.
    """
    t = state.table
    valid = cands.slots >= 0  # (B, Kf)
    all_valid = bool(np.logical_and.reduce(valid, axis=None))
    slots = cands.slots if all_valid else np.where(valid, cands.slots, 0)
    cand_keys: np.ndarray | None = None  # (B, Kf, Dk)
    if cands.scores is not None:  # exact already, in the index's (best-first) order
        scores = cands.scores
        if not all_valid:
            scores[~valid] = -np.inf
        if with_keys:
            cand_keys = t.keys[slots]
    else:
        cand_keys = t.keys[slots]  # reused as the result's keys
        scores = exact_scores(config.metric, q, cand_keys).astype(np.float32)  # (B, Kf)
        if not all_valid:
            scores[~valid] = -np.inf
        if scores.shape[1] > k or not bool((scores[:, :-1] >= scores[:, 1:]).all()):
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (B, k')
            rows = np.arange(q.shape[0])[:, None]  # (B, 1)
            slots, scores, valid = slots[rows, order], scores[rows, order], valid[rows, order]
            cand_keys = cand_keys[rows, order] if with_keys else cand_keys
        # else: FAISS's order already agrees with the exact scores (the usual case)
    if slots.shape[1] < k:  # fewer candidates than k: pad
        pad = k - slots.shape[1]
        slots = np.pad(slots, ((0, 0), (0, pad)))
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        valid = np.pad(valid, ((0, 0), (0, pad)), constant_values=False)
        if with_keys:
            assert cand_keys is not None
            cand_keys = np.pad(cand_keys, ((0, 0), (0, pad), (0, 0)))
        all_valid = False
    recency = t.recency(slots)  # (B, K)
    flat = slots.ravel().tolist()
    flat_ids: list[str | None] = (
        list(itemgetter(*flat)(t.ids)) if len(flat) > 1 else [t.ids[flat[0]]]
    )
    keys = cand_keys if with_keys else None  # (B, K, Dk)
    values = t.values[slots] if with_values else None  # (B, K, Dv)
    if not all_valid:
        invalid = ~valid
        recency[invalid] = -1
        for j in np.flatnonzero(invalid.ravel()).tolist():
            flat_ids[j] = ""
        if keys is not None:
            keys[invalid] = 0.0
        if values is not None:
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
    with_keys: bool,
    with_values: bool,
    rng: np.random.Generator,
) -> SearchResult:
    """Top-k of validated (B, Dk) queries over ``state`` (the caller holds the bank's
    shared lock), with the softmax tail estimate when ``tail_samples`` is given."""
    t = state.table
    B = q.shape[0]
    if t.n_live == 0:
        result = empty_result(B, k, config, with_keys=with_keys, with_values=with_values)
        if tail_samples is None:
            return result
        return dataclasses.replace(  # an empty bank: no tail
            result,
            tail_log_mass=np.full(B, -np.inf),
            tail_value=np.zeros((B, config.value_dim), np.float32),
        )
    allowed = t.matching(metadata_filter) if metadata_filter else None
    cands = candidates(state, config, q, k, ef_search=ef_search, nprobe=nprobe, allowed=allowed)
    result, slots = assemble(
        state, config, q, cands, k, with_keys=with_keys, with_values=with_values
    )
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
