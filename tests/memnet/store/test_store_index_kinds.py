"""Every index kind against a brute-force oracle: recall, exact scores, upsert, delete.

The oracle tests run on both backends for the kinds Milvus has (flat, hnsw, ivf)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_testlib import Backend, batch, clustered, make_bank_config, open_store, oracle_scores

from memnet.store import IndexKind, IndexSpec, Metric

N, D, B, K = 3000, 32, 40, 10

SPECS = {
    "flat": (IndexSpec(kind=IndexKind.FLAT), 1.0),
    "hnsw": (IndexSpec(kind=IndexKind.HNSW, hnsw_m=16, ef_search=64), 0.9),
    "ivf": (IndexSpec(kind=IndexKind.IVF, nlist=16, nprobe=8), 0.9),
    "ivf_pq": (IndexSpec(kind=IndexKind.IVF_PQ, nlist=16, nprobe=8, pq_m=16, pq_nbits=6), 0.7),
    "factory_hnsw": (IndexSpec(kind=IndexKind.FACTORY, factory="HNSW16"), 0.9),
    "factory_ivf": (IndexSpec(kind=IndexKind.FACTORY, factory="IVF16,Flat", train_size=1000), 0.7),
}


MILVUS_KINDS = ("flat", "hnsw", "ivf")
# Milvus Lite scans in Python: the oracle runs every metric on flat, one on each index.
MILVUS_ORACLE = {("hnsw", Metric.L2), ("ivf", Metric.COSINE)} | {("flat", m) for m in Metric}


def _skip_unmapped(backend: Backend, name: str, metric: Metric | None = None) -> None:
    if backend.faiss:
        return
    if name not in MILVUS_KINDS:
        pytest.skip(f"{name}: no Milvus index of this kind (the milvus store refuses it)")
    if metric is not None and (name, metric) not in MILVUS_ORACLE:
        pytest.skip(f"{name} with {metric.value}: covered on FAISS (Milvus Lite is slow)")


def _recall(found: list[list[str]], truth: np.ndarray, ids: np.ndarray) -> float:
    hits = sum(len(set(row) & set(ids[t].tolist())) for row, t in zip(found, truth, strict=True))
    return hits / truth.size


@pytest.mark.parametrize("metric", [Metric.INNER_PRODUCT, Metric.L2, Metric.COSINE])
@pytest.mark.parametrize("name", list(SPECS))
def test_search_matches_oracle(backend: Backend, name: str, metric: Metric) -> None:
    _skip_unmapped(backend, name, metric)
    spec, min_recall = SPECS[name]
    rng = np.random.default_rng(7)
    keys = clustered(rng, N, D)
    queries = clustered(np.random.default_rng(7), B, D)  # same centres as the data
    ids = np.array([f"m{i}" for i in range(N)])
    store = backend.open()
    bank = store.create_bank(make_bank_config(key_dim=D, metric=metric, index=spec))
    for lo in range(0, N, 1000):
        bank.write(batch(keys[lo : lo + 1000], ids=ids[lo : lo + 1000].tolist()))
    if backend.faiss:
        assert bank.state.trained, "the index must be in use (trained) at this size"  # type: ignore[attr-defined]
    res = bank.search(queries, K, with_vectors=True)
    exact = oracle_scores(metric, queries, keys)  # (B, N)
    truth = np.argsort(-exact, axis=1)[:, :K]
    assert _recall(res.ids, truth, ids) >= min_recall
    slot = {m: i for i, m in enumerate(ids.tolist())}
    for b in range(B):
        assert res.valid[b].all()
        got = np.array([exact[b, slot[m]] for m in res.ids[b]])
        np.testing.assert_allclose(res.scores[b], got, rtol=1e-4, atol=1e-4)  # exact, not PQ
        assert np.all(np.diff(res.scores[b]) <= 1e-6), "best first"
        np.testing.assert_array_equal(res.keys[b], keys[[slot[m] for m in res.ids[b]]])  # type: ignore[index]
    if name == "flat":  # exact search: top score equals the oracle's best
        np.testing.assert_allclose(res.scores[:, 0], exact.max(axis=1), rtol=1e-4, atol=1e-4)
    store.close()


@pytest.mark.parametrize("name", list(SPECS))
def test_upsert_and_delete(backend: Backend, name: str) -> None:
    _skip_unmapped(backend, name)
    spec, _ = SPECS[name]
    rng = np.random.default_rng(3)
    keys = clustered(rng, 2000, D)
    ids = [f"m{i}" for i in range(2000)]
    store = backend.open(compact_min_dead=10_000)
    bank = store.create_bank(make_bank_config(key_dim=D, metric=Metric.L2, index=spec))
    bank.write(batch(keys, ids=ids))
    # Replace 100 memories with vectors far from everything; delete 100 others.
    moved = ids[:100]
    far = (keys[:100] + 50.0).astype(np.float32)
    r = bank.write(batch(far, ids=moved, seed=9))
    assert (r.inserted, r.replaced) == (0, 100)
    gone = ids[100:200]
    assert bank.delete([*gone, "never-existed"]) == 100
    assert bank.count() == 1900
    res = bank.search(keys[:200], 5)  # queries at the old and the deleted positions
    found = {m for row in res.ids for m in row}
    assert not found & set(gone), "deleted memories must never be returned"
    for b in range(100):  # the old position of a moved memory no longer finds it
        assert moved[b] not in res.ids[b]
    res = bank.search(far[:20], 1)
    assert [row[0] for row in res.ids] == moved[:20]
    assert np.allclose(res.scores[:, 0], 0.0, atol=1e-3)
    rec = bank.get(moved[:1])[0]
    assert rec is not None
    np.testing.assert_array_equal(rec.key, far[0])
    assert bank.get(gone[:1]) == [None]
    store.close()
    reopened = backend.open()
    bank = reopened.bank("b")
    assert bank.count() == 1900
    res = bank.search(far[:20], 1)
    assert [row[0] for row in res.ids] == moved[:20]
    reopened.close()


def test_hnsw_tombstones_then_compaction(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    keys = clustered(rng, 1000, D)
    ids = [f"m{i}" for i in range(1000)]
    store = open_store(tmp_path, compact_min_dead=300, compact_dead_fraction=0.5)
    bank = store.create_bank(
        make_bank_config(key_dim=D, metric=Metric.L2, index=IndexSpec(kind=IndexKind.HNSW))
    )
    bank.write(batch(keys, ids=ids))
    assert bank.state.tombstones
    bank.delete(ids[:400])
    # 400 dead of 1000 slots: below the 50 % rule, so they stay as tombstones in the graph.
    assert bank.state.index.ntotal == 1000 and bank.state.table.n_dead == 400
    res = bank.search(keys[:400], 3)
    assert not {m for row in res.ids for m in row} & set(ids[:400])
    assert all(res.valid.ravel())
    bank.delete(ids[400:600])  # 600 dead of 1000: compaction rebuilds the graph from live slots
    assert bank.state.index.ntotal == 400 and bank.state.table.n_dead == 0
    res = bank.search(keys[600:700], 1)
    assert [row[0] for row in res.ids] == ids[600:700]
    store.close()


def test_untrained_ivf_answers_exactly_then_trains(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    keys = clustered(rng, 2000, D)
    store = open_store(tmp_path)
    spec = IndexSpec(kind=IndexKind.IVF, nlist=32, nprobe=1)  # trains at 39 * 32 = 1248
    bank = store.create_bank(make_bank_config(key_dim=D, index=spec, metric=Metric.L2))
    bank.write(batch(keys[:1000], ids=[f"m{i}" for i in range(1000)]))
    assert not bank.state.trained and bank.state.index.ntotal == 0
    res = bank.search(keys[:50], 1)  # exact scan: every memory finds itself
    assert [row[0] for row in res.ids] == [f"m{i}" for i in range(50)]
    bank.write(batch(keys[1000:], ids=[f"m{i}" for i in range(1000, 2000)]))
    assert bank.state.trained and bank.state.index.ntotal == 2000
    store.close()
