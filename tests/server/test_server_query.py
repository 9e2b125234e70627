"""QueryService over vector banks (the pass-through "vector" model), checked by brute force."""

from __future__ import annotations

import json

import grpc
import numpy as np
from server_support import Running, StartServer, rpc_error

from memnet.api.tensors import from_tensor, to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, query_pb2

DIM = 8


def _fill(server: Running, n: int = 200, seed: int = 0) -> np.ndarray:
    keys = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    server.vector_bank("b", dim=DIM)
    batch = memory_pb2.MemoryBatch(
        memories=[
            memory_pb2.MemoryInput(id=f"m{i}", text=f"fact {i}", metadata_json=f'{{"g": {i % 2}}}')
            for i in range(n)
        ],
        keys=to_tensor(keys),
        values=to_tensor(keys),
    )
    server.memories.WriteMemories(memory_pb2.WriteMemoriesRequest(bank="b", batch=batch))
    return keys


def test_vector_query_matches_brute_force(server: Running) -> None:
    keys = _fill(server)
    queries = np.random.default_rng(1).standard_normal((3, DIM)).astype(np.float32)
    response = server.queries.Query(
        query_pb2.QueryRequest(
            bank="b", query_vectors=to_tensor(queries), k=5, include_vectors=True
        )
    )
    assert (response.model, response.bank_seq, len(response.results)) == ("vector", 200, 3)
    for row, result in enumerate(response.results):
        assert result.answer == "" and not result.alternatives  # no answer head
        (hop,) = result.hops
        assert hop.hop == 1
        scores = keys @ queries[row]
        expected = {f"m{i}" for i in np.argsort(-scores)[:5]}
        assert {m.id for m in hop.memories} == expected
        weights = np.array([m.weight for m in hop.memories])
        assert np.all(np.diff(weights) <= 0) and abs(weights.sum() - 1) < 1e-5
        readout = queries[row].copy()
        for memory in hop.memories:
            i = int(memory.id[1:])
            assert memory.score == np.float32(scores[i]) or abs(memory.score - scores[i]) < 1e-4
            assert memory.text == f"fact {i}" and json.loads(memory.metadata_json) == {"g": i % 2}
            np.testing.assert_array_equal(from_tensor(memory.key, field="key"), keys[i])
            readout += memory.weight * keys[i]
        got = from_tensor(result.readout, field="readout")
        np.testing.assert_allclose(got, readout, rtol=1e-4, atol=1e-5)


def test_filters_hops_and_attention_modes(server: Running) -> None:
    _fill(server, n=40)
    query = to_tensor(np.ones((1, DIM), np.float32))
    filtered = server.queries.Query(
        query_pb2.QueryRequest(bank="b", query_vectors=query, k=10, metadata_filter_json='{"g": 1}')
    )
    attended = filtered.results[0].hops[0].memories
    assert len(attended) == 10 and all(json.loads(m.metadata_json) == {"g": 1} for m in attended)
    two_hops = server.queries.Query(query_pb2.QueryRequest(bank="b", query_vectors=query, hops=2))
    assert [hop.hop for hop in two_hops.results[0].hops] == [1, 2]
    hard = server.queries.Query(
        query_pb2.QueryRequest(
            bank="b", query_vectors=query, k=4, attention_mode=query_pb2.ATTENTION_MODE_HARD
        )
    )
    assert sorted(m.weight for m in hard.results[0].hops[0].memories) == [0, 0, 0, 1]
    soft = server.queries.Query(
        query_pb2.QueryRequest(
            bank="b", query_vectors=query, attention_mode=query_pb2.ATTENTION_MODE_SOFT
        )
    )
    assert len(soft.results[0].hops[0].memories) == 40  # every memory, not the default k=32
    tuned = server.queries.Query(
        query_pb2.QueryRequest(bank="b", query_vectors=query, k=3, ef_search=16, nprobe=2)
    )
    assert len(tuned.results[0].hops[0].memories) == 3


def test_query_errors_name_the_field_and_limit(start_server: StartServer) -> None:
    server = start_server(max_k=16, default_k=8, max_batch_queries=4, max_top_answers=10)
    _fill(server, n=20)
    one = to_tensor(np.ones((1, DIM), np.float32))
    cases = [
        (dict(query_vectors=one, k=5000), "k must be 1..16, got 5000"),
        (dict(query_vectors=one, hops=99), "hops"),
        (dict(query_vectors=to_tensor(np.ones((5, DIM), np.float32))), "max_batch_queries"),
        (dict(query_vectors=to_tensor(np.ones((1, 3), np.float32))), "query_vectors"),
        (dict(questions=["where is john?"]), "query_vectors"),
        (dict(questions=["x"], query_vectors=one), "not both"),
        (dict(), "questions or query_vectors"),
        (dict(query_vectors=one, metadata_filter_json="{bad"), "metadata_filter_json"),
        (dict(query_vectors=one, top_answers=11), "top_answers must be 0..10"),
        (dict(query_vectors=one, attention_mode=query_pb2.ATTENTION_MODE_SOFT), "max_k=16"),
        (dict(query_vectors=one, attention_mode=7), "attention_mode"),
        (dict(query_vectors=one, ef_search=0), "ef_search"),
    ]
    for fields, words in cases:
        error = rpc_error(
            lambda fields=fields: server.queries.Query(query_pb2.QueryRequest(bank="b", **fields))
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (fields, error.details())
        assert words in error.details(), (fields, error.details())
    missing = rpc_error(
        lambda: server.queries.Query(query_pb2.QueryRequest(bank="nope", query_vectors=one))
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_empty_bank_answers_with_no_attended_memories(server: Running) -> None:
    server.vector_bank("empty", dim=DIM)
    response = server.queries.Query(
        query_pb2.QueryRequest(bank="empty", query_vectors=to_tensor(np.ones((2, DIM), np.float32)))
    )
    assert len(response.results) == 2
    assert all(not hop.memories for r in response.results for hop in r.hops)


def _exact_attention(
    keys: np.ndarray, queries: np.ndarray, *, hops: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Brute-force softmax attention over every memory (values = keys), u ← u + p·V:
    the (B, M) weights of each hop and the (B, D) readout u_H, in float64."""
    u = queries.astype(np.float64)
    values = keys.astype(np.float64)
    weights = []
    for _ in range(hops):
        scores = u @ values.T  # (B, M)
        p = np.exp(scores - scores.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        weights.append(p)
        u = u + p @ values
    return weights, u


def test_tail_samples_covering_the_bank_give_the_exact_softmax(server: Running) -> None:
    keys = _fill(server)  # 200 memories
    queries = 0.3 * np.random.default_rng(2).standard_normal((3, DIM)).astype(np.float32)
    for tail_samples, hops in ((256, 1), (65536, 2)):
        response = server.queries.Query(
            query_pb2.QueryRequest(
                bank="b",
                query_vectors=to_tensor(queries),
                k=5,
                hops=hops,
                tail_samples=tail_samples,
            )
        )
        exact, readouts = _exact_attention(keys, queries, hops=hops)
        for row, result in enumerate(response.results):
            assert [hop.hop for hop in result.hops] == list(range(1, hops + 1))
            for hop, p in zip(result.hops, exact, strict=True):
                top = np.argsort(-p[row])[:5]
                assert [m.id for m in hop.memories] == [f"m{i}" for i in top]
                weights = np.array([m.weight for m in hop.memories])
                np.testing.assert_allclose(weights, p[row, top], rtol=1e-4, atol=1e-6)
                outside = 1 - p[row, top].sum()
                assert outside > 0.5  # the top 5 of 200 hold little of the softmax mass
                assert abs(hop.tail_weight - outside) < 1e-4
                assert abs(weights.sum() + hop.tail_weight - 1) < 1e-5
            got = from_tensor(result.readout, field="readout")
            np.testing.assert_allclose(got, readouts[row], rtol=1e-4, atol=1e-5)


def test_a_small_tail_sample_keeps_the_weights_and_tail_summing_to_one(server: Running) -> None:
    keys = _fill(server)
    query = 0.3 * np.random.default_rng(3).standard_normal((1, DIM)).astype(np.float32)
    request = query_pb2.QueryRequest(bank="b", query_vectors=to_tensor(query), k=5)
    plain = server.queries.Query(request).results[0].hops[0]
    assert plain.tail_weight == 0
    assert abs(sum(m.weight for m in plain.memories) - 1) < 1e-5
    request.tail_samples = 16
    (hop,) = server.queries.Query(request).results[0].hops
    assert [m.id for m in hop.memories] == [m.id for m in plain.memories]
    weights = np.array([m.weight for m in hop.memories])
    assert 0 < hop.tail_weight < 1 and abs(weights.sum() + hop.tail_weight - 1) < 1e-5
    # Same softmax over the listed memories, scaled down by the estimated tail.
    np.testing.assert_allclose(
        weights / weights.sum(), [m.weight for m in plain.memories], rtol=1e-4
    )
    scores = keys @ query[0]
    i, j = (int(m.id[1:]) for m in hop.memories[:2])
    assert abs(np.log(weights[0] / weights[1]) - (scores[i] - scores[j])) < 1e-3


def test_tail_samples_errors_name_the_field(server: Running) -> None:
    _fill(server, n=20)
    one = to_tensor(np.ones((1, DIM), np.float32))
    cases = [
        (dict(tail_samples=0), "tail_samples must be 1..65536, got 0"),  # set, so not "unset"
        (dict(tail_samples=65537), "tail_samples must be 1..65536, got 65537"),
        (dict(tail_samples=64, attention_mode=query_pb2.ATTENTION_MODE_HARD), "HARD"),
        (dict(tail_samples=64, attention_mode=query_pb2.ATTENTION_MODE_SOFT), "SOFT"),
    ]
    for fields, words in cases:
        request = query_pb2.QueryRequest(bank="b", query_vectors=one, **fields)
        error = rpc_error(lambda request=request: server.queries.Query(request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (fields, error.details())
        assert "tail_samples" in error.details() and words in error.details(), error.details()
    server.banks.CreateBank(
        bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name="story", model="babi-joint"))
    )
    text = rpc_error(
        lambda: server.queries.Query(
            query_pb2.QueryRequest(bank="story", questions=["Where is Mary?"], tail_samples=64)
        )
    )
    assert text.code() == grpc.StatusCode.INVALID_ARGUMENT, text.details()
    assert "tail_samples" in text.details() and "babi-joint" in text.details(), text.details()
