"""The query path's shortcuts answer exactly what the long way answers.

Vector banks searched through a graph or lists skip the batcher; hops whose weights are
already in order are not sorted; banks without text or metadata skip the content
lookup; equal requests share one decoded ``SearchOptions``; the interceptor wraps each
method once.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from server_support import Running, StartServer, run_concurrently

from memnet.api.tensors import from_tensor, to_tensor
from memnet.api.v1 import bank_pb2, query_pb2
from memnet.core.search_options import SearchOptions
from memnet.errors import InvalidArgument
from memnet.serving.bank_source import BankMemorySource
from memnet.serving.contract import HopAttention, QueryOutput
from memnet.serving.vector_model import VectorPassThroughModel
from memnet.store.types import MemoryContent
from memnet_server.batching import batching_pays
from memnet_server.engine import QueryAnswer
from memnet_server.servicers.query import decode_options, encode_result, weight_orders
from memnet_server.servicers.query_arrays import encode_arrays, hop_weight_order

DIM = 8
HNSW = bank_pb2.IndexSpec(kind=bank_pb2.INDEX_KIND_HNSW)


def _fill(server: Running, name: str, *, n: int = 300, **spec: object) -> np.ndarray:
    keys = np.random.default_rng(2).standard_normal((n, DIM)).astype(np.float32)
    server.vector_bank(name, dim=DIM, **spec)
    server.write_vectors(name, keys, ids=[f"{name}{i}" for i in range(n)])
    return keys


def test_only_banks_whose_forward_is_shared_are_batched(start_server: StartServer) -> None:
    server = start_server(batching_enabled=True)
    keys = _fill(server, "graph", index=HNSW)
    _fill(server, "flat")
    engine = server.service.engine
    text = engine.model(engine.default_model).served().info
    vector = engine.model("vector").served().info
    assert batching_pays(text, engine.bank("graph").config)  # a text model shares its forward
    assert batching_pays(vector, engine.bank("flat").config)  # a flat scan is shared
    assert not batching_pays(vector, engine.bank("graph").config)
    request = query_pb2.QueryRequest(bank="graph", query_vectors=to_tensor(keys[:3]), k=5, hops=2)
    responses = run_concurrently([lambda: server.queries.Query(request) for _ in range(6)])
    assert "graph" not in engine._batchers  # answered without the batcher
    # The same forward run through a batcher gives the same rows.
    bank = engine.bank("graph")
    options = SearchOptions(k=5, hops=2)
    model = engine.model("vector").served()
    direct = model.query(keys[:3], BankMemorySource(bank), options)
    batched = engine._batcher(bank, model).submit(options, keys[:3], deadline=None)
    np.testing.assert_array_equal(direct.readout, batched.readout)
    for response in responses:
        assert not isinstance(response, Exception)
        for b, result in enumerate(response.results):
            readout = from_tensor(result.readout, field="readout")
            np.testing.assert_array_equal(readout, batched.readout[b])
            assert [m.id for m in result.hops[1].memories] == batched.hops[1].ids[b]


def _answer(weights: np.ndarray) -> QueryAnswer:
    """Two hops of (B, K) ``weights`` (and their log as scores) as the engine returns them."""
    B, K = weights.shape
    ids = [[f"r{b}m{j}" for j in range(K)] for b in range(B)]
    scores = np.log(np.maximum(weights, 1e-30)).astype(np.float32)
    hop = HopAttention(ids=ids, scores=scores, weights=weights.astype(np.float32))
    output = QueryOutput(readout=np.ones((B, 2), np.float32), hops=[hop, hop], answer_probs=None)
    return QueryAnswer(
        output=output,
        unknown_words=[[] for _ in range(B)],
        contents={},
        records={},
        bank_seq=1,
        model=VectorPassThroughModel().info,
        model_version=1,
    )


@pytest.mark.parametrize("ordered", [True, False])
def test_hops_in_weight_order_are_listed_as_a_sort_would_list_them(ordered: bool) -> None:
    weights = np.array([[0.5, 0.3, 0.2, 0.0], [0.4, 0.4, 0.1, 0.1]], np.float32)
    if not ordered:
        weights = weights[:, ::-1].copy()
    answer = _answer(weights)
    order = hop_weight_order(answer.output.hops[0])
    assert (order is None) == ordered  # ordered weights are never sorted
    sort = np.argsort(-weights, axis=1, kind="stable").tolist()
    sorted_orders: list[list[list[int]] | None] = [sort, sort]
    for row in range(2):
        got = encode_result(answer, row, top_answers=5, include_vectors=False)
        want = encode_result(
            answer, row, top_answers=5, include_vectors=False, orders=sorted_orders
        )
        assert got == want
    assert weight_orders(answer) == ([None, None] if ordered else sorted_orders)
    arrays = encode_arrays(answer)
    listed = np.array(arrays.ids, dtype=object).reshape(2, 2, 4)
    for row in range(2):
        assert list(listed[row, 0]) == [answer.output.hops[0].ids[row][j] for j in sort[row]]
    packed = from_tensor(arrays.weights, field="weights")[:, 0]  # (B, K) of hop 1
    np.testing.assert_array_equal(packed, np.take_along_axis(weights, np.array(sort), 1))


@pytest.mark.parametrize("ordered", [True, False])
def test_memories_without_content_are_listed_as_with_content_lookups(ordered: bool) -> None:
    weights = np.array([[0.5, 0.3, 0.2, 0.0], [0.4, 0.4, 0.1, 0.1]], np.float32)
    if not ordered:
        weights = weights[:, ::-1].copy()
    bare = _answer(weights)
    bare.output.hops[0].ids[0][2] = ""  # padding (both hops share the ids): fewer than K
    # Content for an id no hop attended: the encoder takes its per-memory lookup path.
    looked_up = replace(bare, contents={"elsewhere": MemoryContent(text="x", metadata={})})
    for row in range(2):
        got = encode_result(bare, row, top_answers=5, include_vectors=False)
        assert got == encode_result(looked_up, row, top_answers=5, include_vectors=False)
        listed = [[m.id for m in hop.memories] for hop in got.hops]
        assert [len(ids) for ids in listed] == ([3, 3] if row == 0 else [4, 4])
        assert all("" not in ids for ids in listed)
    with_text = replace(bare, contents={"r1m0": MemoryContent(text="t", metadata={"a": 1})})
    hop = encode_result(with_text, 1, top_answers=5, include_vectors=False).hops[0]
    memory = next(m for m in hop.memories if m.id == "r1m0")
    assert memory.text == "t" and memory.metadata_json == '{"a":1}'


def test_equal_requests_share_their_options_and_bad_ones_fail_every_time(
    server: Running,
) -> None:
    settings = server.settings
    one = decode_options(query_pb2.QueryRequest(k=7, hops=2, ef_search=40), settings)
    two = decode_options(query_pb2.QueryRequest(k=7, hops=2, ef_search=40), settings)
    assert one is two and one == SearchOptions(k=7, hops=2, ef_search=40)
    other = decode_options(query_pb2.QueryRequest(k=7, hops=2, nprobe=3), settings)
    assert other == SearchOptions(k=7, hops=2, nprobe=3)
    filtered = decode_options(
        query_pb2.QueryRequest(k=7, hops=2, ef_search=40, metadata_filter_json='{"a": 1}'),
        settings,
    )
    assert filtered.filter_dict == {"a": 1} and filtered.k == 7 and one.metadata_filter is None
    for _ in range(2):
        with pytest.raises(InvalidArgument) as caught:
            decode_options(query_pb2.QueryRequest(k=7, hops=65), settings)
        assert caught.value.field == "hops"


def test_a_bank_without_text_answers_memories_without_text(server: Running) -> None:
    keys = _fill(server, "plain")
    request = query_pb2.QueryRequest(bank="plain", query_vectors=to_tensor(keys[:2]), k=4)
    response = server.queries.Query(request)
    assert len(response.results) == 2
    for result in response.results:
        memories = result.hops[0].memories
        assert len(memories) == 4 and all(m.id.startswith("plain") for m in memories)
        assert all(not m.text and not m.metadata_json for m in memories)


def test_the_interceptor_wraps_each_method_once(server: Running) -> None:
    keys = _fill(server, "once")
    request = query_pb2.QueryRequest(bank="once", query_vectors=to_tensor(keys[:1]), k=2)
    first = server.queries.Query(request)
    interceptor = server.service._interceptor
    wrapped = interceptor._wrapped["/memnet.api.v1.QueryService/Query"]
    assert server.queries.Query(request) == first
    assert interceptor._wrapped["/memnet.api.v1.QueryService/Query"] is wrapped
