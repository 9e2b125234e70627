"""Scores taken from the index where they are exact, re-scored from the keys where not.

Flat, HNSW-Flat and IVF-Flat indexes hold the keys uncompressed and compute each inner
product directly in float32, so their distances are the bank's exact scores up to the
rounding of a float32 dot product: the store returns them as they are. Every other
index (compressed codes, or L2, whose batched flat search cancels) is re-scored.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
from store_testlib import batch, clustered, make_bank_config, open_store

from memnet.core.search_options import SearchOptions
from memnet.store import IndexKind, IndexSpec, Metric, scores, validation
from memnet.store import index as ix
from memnet.store import search as srch
from memnet.store.bank import Bank
from memnet.store.types import StoreLimits

N, D, B, K = 2000, 64, 24, 16
EPS = float(np.finfo(np.float32).eps)

EXACT = {
    "flat": IndexSpec(kind=IndexKind.FLAT),
    "hnsw": IndexSpec(kind=IndexKind.HNSW, hnsw_m=16, ef_search=64),
    "ivf": IndexSpec(kind=IndexKind.IVF, nlist=8, nprobe=4),
    "factory_hnsw": IndexSpec(kind=IndexKind.FACTORY, factory="HNSW16"),
    "factory_flat": IndexSpec(kind=IndexKind.FACTORY, factory="Flat"),
}
APPROXIMATE = {
    "ivf_pq": IndexSpec(
        kind=IndexKind.IVF_PQ, nlist=8, nprobe=4, pq_m=16, pq_nbits=6, train_size=1000
    ),
    "factory_sq": IndexSpec(kind=IndexKind.FACTORY, factory="IVF8,SQ4", train_size=1000),
}


def _bank(tmp_path: Path, spec: IndexSpec, metric: Metric) -> tuple[Bank, np.ndarray]:
    keys = clustered(np.random.default_rng(3), N, D)
    store = open_store(tmp_path)
    bank = store.create_bank(make_bank_config(key_dim=D, metric=metric, index=spec))
    assert isinstance(bank, Bank)
    bank.write(batch(keys, ids=[f"m{i}" for i in range(N)]))
    return bank, keys


def _queries(metric: Metric) -> np.ndarray:
    q = clustered(np.random.default_rng(3), B, D)  # near the stored keys
    if metric is Metric.COSINE:  # as the bank normalises them
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.ascontiguousarray(q, np.float32)


def _exact_and_bound(
    metric: Metric, q: np.ndarray, keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(B, K) float64 scores of (B, K, D) stored keys and the float32 error bound.

    A float32 dot product of length D is within D·eps·Σ|q_i k_i| of the exact one;
    cosine adds the rounding of the normalised key (another D·eps): 2(D + 2)·eps.
    """
    q64, k64 = q.astype(np.float64)[:, None, :], keys.astype(np.float64)
    if metric is Metric.COSINE:
        k64 = k64 / np.linalg.norm(k64, axis=2, keepdims=True)
    exact = (q64 * k64).sum(axis=2)
    bound = 2 * (D + 2) * EPS * np.abs(q64 * k64).sum(axis=2)
    return exact, bound


@pytest.mark.parametrize("metric", [Metric.INNER_PRODUCT, Metric.COSINE])
@pytest.mark.parametrize("name", list(EXACT))
def test_faiss_distances_are_the_exact_scores(tmp_path: Path, name: str, metric: Metric) -> None:
    bank, keys = _bank(tmp_path, EXACT[name], metric)
    state = bank.state
    assert state.trained and state.distances_exact
    q = _queries(metric)
    searched = validation.search_args(q, SearchOptions(k=K), bank.config, StoreLimits())
    for b in (1, B):  # a single query and a batch (BLAS from BLAS_MIN_QUERIES on)
        srch.use_threads(b, D)
        distances, labels = state.index.search(searched[:b], K)  # (b, K); labels are slots
        assert (labels >= 0).all()
        exact, bound = _exact_and_bound(metric, q[:b], keys[labels])
        assert np.all(np.abs(distances - exact) <= bound), np.abs(distances - exact).max()
        # ... and the store returns exactly those, in FAISS's order.
        res = bank.search(q[:b], K)
        np.testing.assert_array_equal(res.scores, distances)
        assert res.ids == [[f"m{s}" for s in row] for row in labels.tolist()]
        # A re-scoring from the stored keys agrees within the same bound.
        rescored = scores.exact_scores(metric, q[:b], keys[labels]).astype(np.float64)
        assert np.all(np.abs(res.scores - rescored) <= 2 * bound)


@pytest.mark.parametrize("name", list(APPROXIMATE))
def test_compressed_indexes_are_rescored_from_the_keys(tmp_path: Path, name: str) -> None:
    bank, keys = _bank(tmp_path, APPROXIMATE[name], Metric.INNER_PRODUCT)
    assert bank.state.trained and not bank.state.distances_exact
    q = _queries(Metric.INNER_PRODUCT)
    res = bank.search(q, K, with_vectors=True)
    assert res.keys is not None
    slots = [[int(i[1:]) for i in row] for row in res.ids]
    exact, bound = _exact_and_bound(Metric.INNER_PRODUCT, q, keys[slots])
    assert np.all(np.abs(res.scores - exact) <= bound)
    # The index's own distances are approximate: using them would break the bound.
    distances, _ = bank.state.index.search(q, K)
    _, index_bound = _exact_and_bound(Metric.INNER_PRODUCT, q, keys[slots])
    assert np.abs(np.sort(distances, axis=1) - np.sort(exact, axis=1)).max() > index_bound.max()


@pytest.mark.parametrize("name", ["flat", "hnsw", "ivf"])
def test_l2_is_rescored(tmp_path: Path, name: str) -> None:
    bank, keys = _bank(tmp_path, EXACT[name], Metric.L2)
    assert not bank.state.distances_exact
    q = _queries(Metric.L2)
    res = bank.search(q, K)
    slots = np.array([[int(i[1:]) for i in row] for row in res.ids])
    diff = keys[slots] - q[:, None, :]  # (B, K, D)
    np.testing.assert_array_equal(res.scores, -np.einsum("bkd,bkd->bk", diff, diff))


def test_an_untrained_index_scans_exactly_with_the_same_scores(tmp_path: Path) -> None:
    spec = IndexSpec(kind=IndexKind.IVF, nlist=8, nprobe=4, train_size=N + 1)
    bank, keys = _bank(tmp_path, spec, Metric.INNER_PRODUCT)
    assert not bank.state.trained  # searches scan the table's keys
    q = _queries(Metric.INNER_PRODUCT)
    res = bank.search(q, K)
    slots = np.array([[int(i[1:]) for i in row] for row in res.ids])
    exact, bound = _exact_and_bound(Metric.INNER_PRODUCT, q, keys[slots])
    assert np.all(np.abs(res.scores - exact) <= bound)
    top = np.sort(q.astype(np.float64) @ keys.T.astype(np.float64), axis=1)[:, ::-1][:, :K]
    assert np.all(np.abs(res.scores - top) <= bound)  # the true top k


def test_distances_are_scores_names_the_uncompressed_indexes() -> None:
    ip, l2 = Metric.INNER_PRODUCT, Metric.L2
    flat = faiss.IndexIDMap(faiss.IndexFlat(8, faiss.METRIC_INNER_PRODUCT))
    hnsw = faiss.IndexHNSWFlat(8, 16, faiss.METRIC_INNER_PRODUCT)
    ivf_pq = faiss.index_factory(8, "IVF4,PQ4x4", faiss.METRIC_INNER_PRODUCT)
    hnsw_sq = faiss.index_factory(8, "HNSW16_SQ8", faiss.METRIC_INNER_PRODUCT)
    assert ix.distances_are_scores(flat, ip) and ix.distances_are_scores(hnsw, Metric.COSINE)
    assert not ix.distances_are_scores(flat, l2)
    assert not ix.distances_are_scores(ivf_pq, ip) and not ix.distances_are_scores(hnsw_sq, ip)


def test_use_threads_sets_openmp_and_blas_only_to_what_the_batch_needs() -> None:
    before = faiss.omp_get_max_threads(), faiss.cvar.distance_compute_blas_threshold
    try:
        faiss.omp_set_num_threads(2)
        faiss.cvar.distance_compute_blas_threshold = 7
        srch.use_threads(1, 16)  # one query: one thread
        assert faiss.omp_get_max_threads() == 1
        assert faiss.cvar.distance_compute_blas_threshold == srch.BLAS_MIN_QUERIES * 16
        srch.use_threads(8, 32)
        assert faiss.omp_get_max_threads() == srch._OMP_THREADS
        assert faiss.cvar.distance_compute_blas_threshold == srch.BLAS_MIN_QUERIES * 32
    finally:
        faiss.omp_set_num_threads(before[0])
        faiss.cvar.distance_compute_blas_threshold = before[1]


@pytest.mark.parametrize("metric", list(Metric))
def test_exact_and_pairwise_scores_are_the_metrics_formulas(metric: Metric) -> None:
    rng = np.random.default_rng(4)
    q = rng.standard_normal((3, 8)).astype(np.float32)
    if metric is Metric.COSINE:
        q /= np.linalg.norm(q, axis=1, keepdims=True)
    keys = rng.standard_normal((5, 8)).astype(np.float32)
    keys[4] = 0.0  # a zero key: cosine scores it 0, not NaN

    def one(qv: np.ndarray, kv: np.ndarray) -> float:
        qv, kv = qv.astype(np.float64), kv.astype(np.float64)
        if metric is Metric.L2:
            return -float(((qv - kv) ** 2).sum())
        norm = float(np.linalg.norm(kv)) if metric is Metric.COSINE else 1.0
        return float(qv @ kv) / (norm or 1.0)

    expected = np.array([[one(qv, kv) for kv in keys] for qv in q])  # (3, 5)
    np.testing.assert_allclose(scores.pairwise_scores(metric, q, keys), expected, atol=1e-4)
    per_row = np.broadcast_to(keys, (3, 5, 8))  # (B, K, Dk): every row's candidates
    np.testing.assert_allclose(scores.exact_scores(metric, q, per_row), expected, atol=1e-4)


def test_a_softmax_tail_without_members_has_no_mass() -> None:
    empty = np.full((2, 3), -np.inf)  # every sampled member is in its row's result
    log_mass, value = scores.softmax_tail(
        empty, scale=1.0, sample_values=np.ones((3, 4), np.float32), mean_value=lambda: np.ones(4)
    )
    assert np.isneginf(log_mass).all() and value.shape == (2, 4) and not value.any()
