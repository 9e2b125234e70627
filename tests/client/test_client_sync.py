"""Every RPC through the synchronous SDK against a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from client_support import QA1_STORY, one_hot_keys

from memnet_client import IndexSpec, MemnetClient, errors

DIM = 8


def _vector_bank(client: MemnetClient, name: str, **options: object) -> None:
    client.create_bank(name, model="vector", key_dim=DIM, value_dim=DIM, **options)  # type: ignore[arg-type]


def test_models_are_listed_and_described(client: MemnetClient) -> None:
    models = {m.name: m for m in client.list_models()}
    assert "vector" in models
    assert sum(m.is_default for m in models.values()) == 1
    vector = client.get_model("vector")
    assert vector == models["vector"]
    assert vector.input_kind == "vector"
    assert "sparse" in vector.attention_modes
    with pytest.raises(errors.NotFound):
        client.get_model("no-such-model")


def test_bank_lifecycle_round_trips_the_spec(
    client: MemnetClient, bank_name: Callable[[], str]
) -> None:
    name = bank_name()
    created = client.create_bank(
        name,
        model="vector",
        key_dim=DIM,
        value_dim=4,
        metric="l2",
        index=IndexSpec(kind="hnsw", hnsw_m=16, ef_search=50),
        capacity=100,
        capacity_policy="evict_oldest",
        description="round trip",
    )
    spec = created.spec
    assert (spec.name, spec.model, spec.key_dim, spec.value_dim) == (name, "vector", DIM, 4)
    assert (spec.metric, spec.index.kind, spec.index.hnsw_m, spec.index.ef_search) == (
        "l2",
        "hnsw",
        16,
        50,
    )
    assert (spec.capacity, spec.capacity_policy, spec.description) == (
        100,
        "evict_oldest",
        "round trip",
    )
    assert created.memory_count == 0 and created.key_space
    assert client.get_bank(name) == created
    assert name in {b.name for b in client.list_banks()}
    client.delete_bank(name)
    assert name not in {b.name for b in client.list_banks()}
    with pytest.raises(errors.NotFound):
        client.get_bank(name)


def test_vector_memories_write_get_list_count_delete(
    client: MemnetClient, bank_name: Callable[[], str]
) -> None:
    name = bank_name()
    _vector_bank(client, name)
    keys = one_hot_keys(10, DIM)
    values = np.random.default_rng(0).normal(size=(10, DIM))  # float64, sent as float32
    ids = [f"m{i}" for i in range(10)]
    result = client.write(
        name,
        [f"memory {i}" for i in range(10)],
        keys=keys,
        values=values,
        ids=ids,
        metadata=[{"i": i, "even": i % 2 == 0} for i in range(10)],
    )
    assert result.ids == ids and result.inserted == 10 and result.replaced == 0
    assert result.requests == 1 and result.seq >= 10

    found = client.get(name, ["m3", "missing", "m1"], include_vectors=True)
    assert [m.id for m in found] == ["m3", "m1"]
    assert found[0].text == "memory 3" and found[0].metadata == {"i": 3, "even": False}
    assert found[0].key is not None and found[0].value is not None
    np.testing.assert_array_equal(found[0].key, keys[3])
    np.testing.assert_allclose(found[0].value, values[3].astype(np.float32))
    assert found[0].written_at is not None
    assert client.get(name, ["m3"])[0].key is None

    page = client.list_page(name, page_size=4)
    assert [m.id for m in page.memories] == ids[:4] and page.next_page_token
    listed = list(client.list(name, page_size=3))
    assert [m.id for m in listed] == ids
    assert [m.seq for m in listed] == sorted(m.seq for m in listed)
    assert client.count(name) == 10

    replaced = client.write(name, keys=keys[:2], values=values[:2], ids=ids[:2])
    assert replaced.replaced == 2 and client.count(name) == 10
    assert client.delete(name, ["m0", "m1", "missing"]) == 2
    assert client.count(name) == 8
    assert client.get_bank(name).memory_count == 8


def test_vector_query_attends_to_the_matching_key(
    client: MemnetClient, bank_name: Callable[[], str]
) -> None:
    name = bank_name()
    _vector_bank(client, name)
    keys = one_hot_keys(DIM, DIM)
    values = np.eye(DIM, dtype=np.float32)
    client.write(
        name,
        [f"memory {i}" for i in range(DIM)],
        keys=keys,
        values=values,
        ids=[f"m{i}" for i in range(DIM)],
    )
    queries = np.eye(DIM, dtype=np.float32)[[2, 5]]  # (B=2, Dk)
    response = client.query(name, query_vectors=queries, k=4, hops=1, include_vectors=True)
    assert response.model == "vector" and response.bank_seq >= DIM
    assert len(response.results) == 2
    for expected, result in zip(["m2", "m5"], response.results, strict=True):
        assert len(result.hops) == 1
        hop = result.hops[0]
        assert hop.hop == 1 and len(hop.memories) == 4
        assert hop.memories[0].id == expected and hop.memories[0].weight > 0.99
        assert sum(m.weight for m in hop.memories) == pytest.approx(1.0, abs=1e-5)
        assert hop.memories[0].key is not None
        np.testing.assert_array_equal(hop.memories[0].key, keys[int(expected[1])])
        assert result.readout.shape == (DIM,) and result.readout.dtype == np.float32

    arrays = client.query_arrays(name, query_vectors=queries, k=4, hops=1)
    assert (arrays.model, arrays.bank_seq) == (response.model, response.bank_seq)
    assert arrays.ids.shape == arrays.weights.shape == arrays.scores.shape == (2, 1, 4)
    assert arrays.weights.dtype == np.float32 and arrays.readouts.shape == (2, DIM)
    for b, result in enumerate(response.results):
        assert list(arrays.ids[b, 0]) == [m.id for m in result.hops[0].memories]
        np.testing.assert_array_equal(
            arrays.weights[b, 0], [m.weight for m in result.hops[0].memories]
        )
        np.testing.assert_array_equal(arrays.readouts[b], result.readout)
    assert arrays.tail_weights is None and arrays.answers == [] and arrays.probabilities.size == 0

    two_hops = client.query(name, query_vectors=queries[:1], k=3, hops=2, attention="hard")
    assert [h.hop for h in two_hops.results[0].hops] == [1, 2]
    assert all(max(m.weight for m in h.memories) == 1.0 for h in two_hops.results[0].hops)


def test_query_metadata_filter_keeps_only_matching_memories(
    client: MemnetClient, bank_name: Callable[[], str]
) -> None:
    name = bank_name()
    _vector_bank(client, name)
    client.write(
        name,
        keys=one_hot_keys(6, DIM),
        values=np.ones((6, DIM)),
        ids=[f"m{i}" for i in range(6)],
        metadata=[{"story": i % 2} for i in range(6)],
    )
    response = client.query(
        name, query_vectors=np.ones((1, DIM)), k=6, metadata_filter={"story": 1}
    )
    assert {m.id for m in response.results[0].hops[0].memories} == {"m1", "m3", "m5"}


def test_tail_samples_reach_the_server_and_tail_weight_comes_back(
    client: MemnetClient, bank_name: Callable[[], str]
) -> None:
    name = bank_name()
    _vector_bank(client, name)
    rng = np.random.default_rng(0)
    keys = 0.3 * rng.standard_normal((64, DIM))
    client.write(name, keys=keys, values=keys, ids=[f"m{i}" for i in range(64)])
    query = rng.standard_normal((1, DIM))
    scores = keys @ query[0]
    p = np.exp(scores - scores.max())
    p /= p.sum()  # softmax over all 64 memories
    top = np.argsort(-p)[:4]

    hop = client.query(name, query_vectors=query, k=4, tail_samples=64).results[0].hops[0]
    assert [m.id for m in hop.memories] == [f"m{i}" for i in top]
    assert [m.weight for m in hop.memories] == pytest.approx(p[top], rel=1e-4)
    assert hop.tail_weight == pytest.approx(1 - p[top].sum(), abs=1e-5) and hop.tail_weight > 0
    plain = client.query(name, query_vectors=query, k=4).results[0].hops[0]
    assert plain.tail_weight == 0.0
    assert sum(m.weight for m in plain.memories) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(errors.InvalidArgument, match="tail_samples"):
        client.query(name, query_vectors=query, k=4, attention="soft", tail_samples=64)


def test_stream_write_sends_one_message_per_chunk(
    client: MemnetClient, bank_name: Callable[[], str]
) -> None:
    name = bank_name()
    _vector_bank(client, name)
    n = 50
    result = client.stream_write(
        name,
        keys=np.ones((n, DIM)),
        values=np.ones((n, DIM)),
        ids=[f"s{i}" for i in range(n)],
        max_chunk_memories=20,
    )
    assert (result.written, result.messages) == (n, 3)
    assert client.count(name) == n
    assert [m.id for m in client.get(name, ["s0", "s49"])] == ["s0", "s49"]


def test_text_bank_answers_the_babi_story(
    client: MemnetClient, bank_name: Callable[[], str], text_model: str
) -> None:
    name = bank_name()
    bank = client.create_bank(name, model=text_model)
    assert bank.spec.model == text_model and bank.spec.key_dim > 0
    written = client.write(name, QA1_STORY)
    assert len(written.ids) == len(QA1_STORY) and written.unknown_words == []
    result = client.query(name, "Where is Mary?", top_answers=3).results[0]
    assert result.answer == "bathroom"
    assert 0.0 < result.probability <= 1.0
    assert result.alternatives[0].answer == "bathroom"
    assert len(result.alternatives) == 3
    assert result.hops and all(len(h.memories) == len(QA1_STORY) for h in result.hops)
    # the supporting fact carries the largest weight of at least one hop
    attended = [max(h.memories, key=lambda m: m.weight).text for h in result.hops]
    assert "Mary journeyed to the bathroom." in attended, attended
    arrays = client.query_arrays(name, questions=["Where is Mary?", "Where is Zaphod?"])
    assert arrays.answers[0] == "bathroom" and arrays.probabilities.shape == (2,)
    assert arrays.probabilities[0] == pytest.approx(result.probability)
    assert arrays.unknown_words == ["zaphod"] and arrays.ids.shape[:2] == (2, len(result.hops))
    unknown = client.query(name, "Where is Zaphod?").results[0]
    assert "zaphod" in [w.lower() for w in unknown.unknown_words]
