"""RESULT_LAYOUT_ARRAYS: the same answers and attention as RESULT_LAYOUT_MEMORIES, packed."""

from __future__ import annotations

import grpc
import numpy as np
from server_support import Running, rpc_error

from memnet.api.tensors import from_tensor, to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, query_pb2

DIM = 8


def _fill(server: Running, n: int = 100) -> None:
    keys = 0.5 * np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
    server.vector_bank("b", dim=DIM)
    server.write_vectors("b", keys, ids=[f"m{i}" for i in range(n)])


def _both_layouts(
    server: Running, **fields: object
) -> tuple[query_pb2.QueryResponse, query_pb2.QueryArrays]:
    memories = server.queries.Query(query_pb2.QueryRequest(**fields))  # type: ignore[arg-type]
    arrays = server.queries.Query(
        query_pb2.QueryRequest(layout=query_pb2.RESULT_LAYOUT_ARRAYS, **fields)  # type: ignore[arg-type]
    )
    assert not arrays.results and arrays.HasField("arrays")
    assert (arrays.model, arrays.bank_seq) == (memories.model, memories.bank_seq)
    return memories, arrays.arrays


def test_arrays_hold_what_the_memories_layout_lists(server: Running) -> None:
    _fill(server)
    queries = np.random.default_rng(1).standard_normal((3, DIM)).astype(np.float32)
    B, H, K = 3, 2, 5
    memories, arrays = _both_layouts(
        server, bank="b", query_vectors=to_tensor(queries), k=K, hops=H, tail_samples=16
    )
    weights = from_tensor(arrays.weights, field="weights")
    scores = from_tensor(arrays.scores, field="scores")
    tails = from_tensor(arrays.tail_weights, field="tail_weights")
    readouts = from_tensor(arrays.readouts, field="readouts")
    assert weights.shape == scores.shape == (B, H, K) and tails.shape == (B, H)
    assert readouts.shape == (B, DIM) and len(arrays.ids) == B * H * K
    ids = np.array(arrays.ids, dtype=object).reshape(B, H, K)
    for b, result in enumerate(memories.results):
        np.testing.assert_array_equal(readouts[b], from_tensor(result.readout, field="readout"))
        for h, hop in enumerate(result.hops):
            assert list(ids[b, h]) == [m.id for m in hop.memories]
            np.testing.assert_array_equal(weights[b, h], [m.weight for m in hop.memories])
            np.testing.assert_array_equal(scores[b, h], [m.score for m in hop.memories])
            assert tails[b, h] == np.float32(hop.tail_weight) and tails[b, h] > 0
    assert not arrays.answers and not arrays.HasField("probabilities")  # no answer head


def test_arrays_sort_each_hop_by_weight_and_pad_short_hops(server: Running) -> None:
    server.vector_bank("small", dim=DIM)
    keys = np.eye(DIM, dtype=np.float32)[:3] * np.array([[1.0], [3.0], [2.0]], np.float32)
    server.write_vectors("small", keys, ids=["one", "three", "two"])
    query = to_tensor(np.ones((1, DIM), np.float32))
    _, hard = _both_layouts(
        server, bank="small", query_vectors=query, k=5, attention_mode=query_pb2.ATTENTION_MODE_HARD
    )
    assert list(hard.ids) == ["three", "two", "one", "", ""]
    np.testing.assert_array_equal(from_tensor(hard.weights, field="w")[0, 0], [1, 0, 0, 0, 0])
    scores = from_tensor(hard.scores, field="scores", require_finite=False)[0, 0]
    np.testing.assert_array_equal(scores[:3], [3, 2, 1])
    assert np.isneginf(scores[3:]).all() and not hard.HasField("tail_weights")


def test_arrays_carry_the_text_models_answers(server: Running) -> None:
    server.banks.CreateBank(
        bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name="story", model="babi-joint"))
    )
    story = ["Mary journeyed to the bathroom.", "John went to the hallway."]
    batch = memory_pb2.MemoryBatch(memories=[memory_pb2.MemoryInput(text=t) for t in story])
    server.memories.WriteMemories(memory_pb2.WriteMemoriesRequest(bank="story", batch=batch))
    questions = ["Where is Mary?", "Where is Zaphod?"]
    memories, arrays = _both_layouts(server, bank="story", questions=questions)
    H = len(memories.results[0].hops)  # the model's default hops
    assert H >= 2 and all(len(r.hops) == H for r in memories.results)
    assert list(arrays.answers) == [r.answer for r in memories.results]
    np.testing.assert_array_equal(
        from_tensor(arrays.probabilities, field="p"),
        np.array([r.probability for r in memories.results], np.float32),
    )
    ids = np.array(arrays.ids, dtype=object).reshape(2, H, 32)
    weights = from_tensor(arrays.weights, field="weights")
    for b, result in enumerate(memories.results):  # each hop sorted as the memories layout
        for h, hop in enumerate(result.hops):
            n = len(hop.memories)
            assert list(ids[b, h, :n]) == [m.id for m in hop.memories]
            np.testing.assert_array_equal(weights[b, h, :n], [m.weight for m in hop.memories])
    assert arrays.answers[0] == "bathroom"
    assert list(arrays.unknown_words) == ["zaphod"]
    assert len(arrays.ids) == 2 * H * 32  # B=2, the model's H hops, K = the default k
    assert sum(1 for i in arrays.ids if i) == 2 * H * len(story)  # the rest is padding


def test_arrays_layout_errors_name_the_field(server: Running) -> None:
    _fill(server, n=10)
    one = to_tensor(np.ones((1, DIM), np.float32))
    cases = [
        (dict(layout=query_pb2.RESULT_LAYOUT_ARRAYS, include_vectors=True), "include_vectors"),
        (dict(layout=99), "layout 99 is not a ResultLayout"),
    ]
    for fields, words in cases:
        request = query_pb2.QueryRequest(bank="b", query_vectors=one, **fields)  # type: ignore[arg-type]
        error = rpc_error(lambda request=request: server.queries.Query(request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert words in error.details(), error.details()
