"""What only the milvus store has: index mapping, the catalog shared by every store on one
Milvus, Milvus's own limits, the bounds of recency and tail estimates."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from lite_server_support import lite_client

from memnet.core.search_options import SearchOptions
from memnet.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from memnet.store import BankConfig, IndexKind, IndexSpec, MemoryBatch, Metric
from memnet.store.scores import pairwise_scores
from memnet.store_milvus import MilvusStore, recency, scoring
from memnet.store_milvus import search as milvus_search
from memnet.store_milvus.catalog import CLAIM_TTL_S


def _config(name: str = "b", **index: Any) -> BankConfig:
    return BankConfig(name=name, key_dim=4, value_dim=4, index=IndexSpec(**index))


def _keys(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)


@pytest.mark.parametrize(
    ("index", "field"),
    [
        ({"kind": IndexKind.IVF_PQ}, "index.kind"),
        ({"kind": IndexKind.FACTORY, "factory": "HNSW16"}, "index.kind"),
        ({"kind": IndexKind.IVF, "nlist": 100_000}, "index.nlist"),
        ({"kind": IndexKind.IVF, "train_size": 1000}, "index.train_size"),
    ],
)
def test_index_kinds_without_a_milvus_index_are_refused(
    milvus_store: MilvusStore, index: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        milvus_store.create_bank(_config(**index))
    assert caught.value.field == field
    assert list(milvus_store.banks()) == []


def test_index_build_parameters_reach_milvus(milvus_store: MilvusStore) -> None:

    hnsw = milvus_store.create_bank(
        _config("h", kind=IndexKind.HNSW, hnsw_m=12, ef_construction=50)
    )
    ivf = milvus_store.create_bank(_config("i", kind=IndexKind.IVF, nlist=7))
    client = lite_client(milvus_store.settings.uri)
    try:
        h = client.describe_index(hnsw.entry.collection, "key")
        i = client.describe_index(ivf.entry.collection, "key")
    finally:
        client.close()
    assert (h["index_type"], h["M"] if "M" in h else h["params"]["M"]) == ("HNSW", 12)
    assert (h.get("efConstruction") or h["params"]["efConstruction"]) == 50
    assert i["index_type"] == "IVF_FLAT"
    assert (i.get("nlist") or i["params"]["nlist"]) == 7


def test_a_second_store_on_the_same_milvus_sees_every_bank(
    milvus_store: MilvusStore, milvus_settings: Any
) -> None:
    bank = milvus_store.create_bank(_config("shared"))
    bank.write(MemoryBatch(keys=_keys(3), values=_keys(3), ids=["a", "b", "c"]))
    other = MilvusStore(milvus_settings)
    try:
        seen = other.bank("shared")
        assert seen.config == bank.config and seen.count() == 3 and seen.last_seq == 3
        written = seen.write(MemoryBatch(keys=_keys(1, 1), values=_keys(1, 1), ids=["d"]))
        assert written.seq == 4  # after every seq the first store committed
        assert milvus_store.bank("shared").last_seq == 4
        other.drop_bank("shared")
        assert [b.name for b in milvus_store.banks()] == []
    finally:
        other.close()


def test_concurrent_creations_of_one_name_make_one_bank(
    milvus_store: MilvusStore, milvus_settings: Any
) -> None:
    stores = [milvus_store, *(MilvusStore(milvus_settings) for _ in range(2))]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(stores))

    def create(store: MilvusStore) -> None:
        barrier.wait()
        try:
            store.create_bank(_config("race"))
            outcomes.append("created")
        except AlreadyExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(outcomes) == ["created", "exists", "exists"]
    prefix = milvus_settings.collection_prefix

    client = lite_client(milvus_settings.uri)
    try:
        collections = [c for c in client.list_collections() if c.startswith(f"{prefix}bank_")]
    finally:
        client.close()
    assert collections == [milvus_store.bank("race").entry.collection]  # no orphan left
    for store in stores[1:]:
        store.close()


def test_orphans_of_a_dead_replica_are_swept(
    milvus_store: MilvusStore, milvus_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica that died between making a collection and recording its bank leaves a
    claim and a collection: the next store to open removes both once the claim is stale."""
    from memnet.store_milvus import catalog as catalog_module

    def die_after_the_collection(collection: str) -> None:
        milvus_store._conn.call(
            "make",
            lambda c, t: c.create_collection(collection, dimension=2, timeout=t),
        )
        raise KeyboardInterrupt  # the process dies here

    real_delete = milvus_store._catalog._delete
    monkeypatch.setattr(milvus_store._catalog, "_delete", lambda keys, what: None)
    with pytest.raises(KeyboardInterrupt):
        milvus_store._catalog.create(_config("ghost"), die_after_the_collection)
    monkeypatch.setattr(milvus_store._catalog, "_delete", real_delete)
    monkeypatch.setattr(catalog_module, "CLAIM_TTL_S", 0.0)  # the claim is stale at once
    assert CLAIM_TTL_S > 0
    reopened = MilvusStore(milvus_settings)  # sweeps at open
    try:
        client = lite_client(milvus_settings.uri)
        prefix = milvus_settings.collection_prefix
        left = [c for c in client.list_collections() if c.startswith(f"{prefix}bank_")]
        client.close()
        assert left == []
        reopened.create_bank(_config("ghost"))  # the name is free again
    finally:
        reopened.close()


def test_what_milvus_cannot_store_is_refused_by_field(milvus_store: MilvusStore) -> None:
    bank = milvus_store.create_bank(_config())
    one = _keys(1)
    cases: list[tuple[MemoryBatch, str]] = [
        (MemoryBatch(keys=one, values=one, metadata=[{"n": 1 << 64}]), "metadata"),
        (MemoryBatch(keys=one, values=one, texts=["é" * 40_000]), "texts"),
        (MemoryBatch(keys=one, values=one, source_vectors=np.ones((1, 12_288), np.float32)),
         "source_vectors"),
        (MemoryBatch(keys=one, values=one, ids=["tab\x01"]), "ids"),
    ]  # fmt: skip
    for batch, field in cases:
        with pytest.raises(InvalidArgument) as caught:
            bank.write(batch)
        assert caught.value.field == field
    assert bank.count() == 0 and bank.last_seq == 0
    source = np.arange(6, dtype=np.float32)[None, :] / 7
    bank.write(MemoryBatch(keys=one, values=one, ids=["s"], source_vectors=source))
    (record,) = bank.get(["s"])
    assert record is not None and record.source_vector is not None
    np.testing.assert_array_equal(record.source_vector, source[0])


def test_recency_is_exact_for_the_newest_and_clipped_beyond(
    milvus_store: MilvusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recency, "RECENCY_EXACT", 4)
    bank = milvus_store.create_bank(BankConfig(name="r", key_dim=4, value_dim=4, metric=Metric.L2))
    keys = _keys(10)
    bank.write(MemoryBatch(keys=keys, values=keys, ids=[f"m{i}" for i in range(10)]))

    def ranks() -> dict[str, int]:
        res = bank.search(keys, 1)
        return {row[0]: int(r[0]) for row, r in zip(res.ids, res.recency, strict=True)}

    first = ranks()
    assert [first[f"m{i}"] for i in range(9, 5, -1)] == [0, 1, 2, 3]
    assert all(first[f"m{i}"] == 4 for i in range(6))
    bank.delete(["m9"])  # this process's own change: the window is read again
    assert ranks()["m8"] == 0 and ranks()["m5"] == 3


def test_the_recency_window_follows_other_replicas_writes(
    milvus_store: MilvusStore, milvus_settings: Any
) -> None:
    bank = milvus_store.create_bank(BankConfig(name="r", key_dim=4, value_dim=4, metric=Metric.L2))
    keys = _keys(6)
    bank.write(MemoryBatch(keys=keys[:5], values=keys[:5], ids=[f"m{i}" for i in range(5)]))
    assert bank.search(keys[:1], 1).recency[0, 0] == 4  # m0 of m0..m4; the window is cached
    other = MilvusStore(milvus_settings)
    try:
        other.bank("r").write(MemoryBatch(keys=keys[5:], values=keys[5:], ids=["m5"]))
    finally:
        other.close()
    same_handle = bank.search(keys[5:], 1)  # no lookup since: m5 is newer than the window
    assert same_handle.ids[0][0] == "m5" and same_handle.recency[0, 0] == 0
    looked_up = milvus_store.bank("r").search(keys[:1], 1)  # a fresh lookup: new version
    assert looked_up.recency[0, 0] == 5


def test_a_tail_over_too_many_memories_is_a_clear_failed_precondition(
    milvus_store: MilvusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(milvus_search, "TAIL_POPULATION_MAX", 5)
    bank = milvus_store.create_bank(_config())
    bank.write(MemoryBatch(keys=_keys(8), values=_keys(8)))
    with pytest.raises(FailedPrecondition) as caught:
        bank.search(_keys(1), SearchOptions(k=2, tail_samples=100))
    assert caught.value.field == "tail_samples" and "at most 5" in str(caught.value)
    assert bank.search(_keys(1), SearchOptions(k=2)).valid.all()  # without it: fine


@pytest.mark.parametrize("metric", list(Metric))
def test_an_exact_tail_is_the_softmax_over_the_memories_outside_each_result(
    metric: Metric,
) -> None:
    rng = np.random.default_rng(3)
    q = rng.standard_normal((3, 8)).astype(np.float32)
    if metric is Metric.COSINE:
        q /= np.linalg.norm(q, axis=1, keepdims=True)
    keys = rng.standard_normal((10, 8)).astype(np.float32)
    values = rng.standard_normal((10, 4)).astype(np.float32)
    in_result = np.zeros((3, 10), bool)
    for row, members in enumerate(([0, 1], [2, 9], [4, 5])):
        in_result[row, members] = True
    log_mass, value = scoring.tail_estimate(
        metric, q, in_result, keys, values, n_samples=10, rng=rng
    )
    all_scores = pairwise_scores(metric, q, keys).astype(np.float64)  # (3, 10)
    for row in range(3):
        outside = all_scores[row, ~in_result[row]]  # (8,)
        weights = np.exp(outside - outside.max())
        assert log_mass[row] == pytest.approx(np.log(weights.sum()) + outside.max(), rel=1e-9)
        expected = (weights / weights.sum()) @ values[~in_result[row]].astype(np.float64)
        np.testing.assert_allclose(value[row], expected, rtol=1e-5, atol=1e-6)
    _, sampled = scoring.tail_estimate(metric, q, in_result, keys, values, n_samples=4, rng=rng)
    np.testing.assert_allclose(sampled, np.broadcast_to(values.mean(0), (3, 4)), rtol=1e-6)


def test_status_follows_the_store(milvus_settings: Any) -> None:
    store = MilvusStore(milvus_settings)
    assert store.status().serving
    store.close()
    status = store.status()
    assert not status.serving and status.detail == "closed"
