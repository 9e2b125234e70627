"""Where handlers run: short queries on the server's event loop, everything else in the pool.

A query runs on the loop only when it is short and never waits (``Engine.placement``):
at most 8 queries, no write holding the bank's lock, no network, and a graph or list
index or a small bank; queries to a text bank with batching on are answered together
with those that reached the loop at the same time. A handler that blocks in the pool
never stops the loop from answering.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from server_support import Running, StartServer

from memnet.api.tensors import from_tensor, to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, query_pb2
from memnet.errors import InvalidArgument
from memnet_server.loop import LoopBatcher
from memnet_server.placement import INLINE_MAX_QUERIES, Placement
from memnet_server.servicers.query import QueryServicer

STORY = "Mary moved to the bathroom."
STORY_LINES = [
    "Mary moved to the bathroom.",
    "John went to the hallway.",
    "Sandra journeyed to the garden.",
    "Mary went back to the kitchen.",
    "John moved to the office.",
]
QUESTION = "Where is Mary?"
DIM = 8
HNSW = bank_pb2.IndexSpec(kind=bank_pb2.INDEX_KIND_HNSW)
LOOP_THREAD = "memnet-grpc"


def _fill(server: Running, name: str, **spec: Any) -> np.ndarray:
    keys = np.random.default_rng(3).standard_normal((200, DIM)).astype(np.float32)
    server.vector_bank(name, dim=DIM, **spec)
    server.write_vectors(name, keys, ids=[f"{name}{i}" for i in range(200)])
    return keys


def _threads_of(server: Running, method: str) -> list[str]:
    """Record the name of the thread that runs each call of ``engine.<method>``."""
    engine = server.service.engine
    real: Callable[..., Any] = getattr(engine, method)
    names: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        names.append(threading.current_thread().name)
        return real(*args, **kwargs)

    setattr(engine, method, spy)
    return names


def _query(keys: np.ndarray, bank: str) -> query_pb2.QueryRequest:
    return query_pb2.QueryRequest(bank=bank, query_vectors=to_tensor(keys), k=4)


def test_short_queries_run_on_the_loop_and_the_rest_in_the_pool(
    start_server: StartServer,
) -> None:
    server = start_server(batching_enabled=True)
    keys = _fill(server, "graph", index=HNSW)
    _fill(server, "flat")  # a flat vector scan is batched in the pool's thread batcher
    server.banks.CreateBank(bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name="story")))
    story = memory_pb2.MemoryBatch(memories=[memory_pb2.MemoryInput(text=STORY)])
    server.memories.WriteMemories(memory_pb2.WriteMemoriesRequest(bank="story", batch=story))
    queries = _threads_of(server, "query")
    writes = _threads_of(server, "write")
    server.queries.Query(_query(keys[:1], "graph"))
    server.queries.Query(_query(keys[:INLINE_MAX_QUERIES], "graph"))
    server.queries.Query(query_pb2.QueryRequest(bank="story", questions=[QUESTION], k=1))
    server.queries.Query(_query(keys[: INLINE_MAX_QUERIES + 1], "graph"))
    server.queries.Query(_query(keys[:1], "flat"))
    server.write_vectors("graph", keys[:2], ids=["new0", "new1"])
    assert queries[:3] == [LOOP_THREAD] * 3
    assert all(name.startswith("rpc") for name in queries[3:]), queries
    assert len(writes) == 1 and writes[0].startswith("rpc")


def test_queries_on_loop_off_sends_every_query_to_the_pool(start_server: StartServer) -> None:
    server = start_server(queries_on_loop=False)
    keys = _fill(server, "graph", index=HNSW)
    queries = _threads_of(server, "query")
    answer = server.queries.Query(_query(keys[:1], "graph"))
    assert len(answer.results[0].hops[0].memories) == 4
    assert len(queries) == 1 and queries[0].startswith("rpc"), queries


def test_placement_follows_the_bank_its_lock_and_the_store(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server(batching_enabled=True)
    _fill(server, "graph", index=HNSW)
    _fill(server, "flat")
    server.banks.CreateBank(bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name="story")))
    engine = server.service.engine
    assert engine.placement("graph", 1) is Placement.LOOP
    assert engine.placement("graph", INLINE_MAX_QUERIES + 1) is Placement.POOL
    assert engine.placement("flat", 1) is Placement.POOL  # vector scans share a batch
    assert engine.placement("story", 1) is Placement.LOOP_BATCHED  # text: batched on the loop
    assert engine.placement("no-such-bank", 1) is Placement.LOOP  # fails at once, on the loop
    with engine.bank("graph")._rw.write():  # a write committing: a search would wait
        assert engine.placement("graph", 1) is Placement.POOL
    assert engine.placement("graph", 1) is Placement.LOOP
    monkeypatch.setattr(type(engine.store), "in_process", False)  # a store like Milvus
    assert engine.placement("graph", 1) is Placement.POOL


def test_a_handler_blocked_in_the_pool_leaves_the_loop_answering(
    start_server: StartServer,
) -> None:
    server = start_server()
    keys = _fill(server, "graph", index=HNSW)
    engine = server.service.engine
    real_write = engine.write
    entered, release = threading.Event(), threading.Event()

    def blocked_write(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        return real_write(*args, **kwargs)

    engine.write = blocked_write  # type: ignore[method-assign]
    batch = memory_pb2.MemoryBatch(
        memories=[memory_pb2.MemoryInput(id="late")],
        keys=to_tensor(keys[:1]),
        values=to_tensor(keys[:1]),
    )
    pending = server.memories.WriteMemories.future(
        memory_pb2.WriteMemoriesRequest(bank="graph", batch=batch), timeout=60
    )
    try:
        assert entered.wait(10)
        check = server.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert check.status == health_pb2.HealthCheckResponse.SERVING
        answer = server.queries.Query(_query(keys[:1], "graph"), timeout=5)
        assert len(answer.results[0].hops[0].memories) == 4
        assert not pending.done()
        # A cancelled call whose handler still runs in its thread counts as running.
        assert pending.cancel()
        interceptor = server.service._interceptor
        assert not interceptor.wait_idle(0.3)
    finally:
        release.set()
    assert interceptor.wait_idle(30)
    assert [m.id for m in server.service.engine.bank("graph").get(["late"]) if m] == ["late"]


def test_requests_reaching_the_loop_together_share_one_answer() -> None:
    calls: list[list[object]] = []

    def answer(requests: list[object]) -> list[object]:
        calls.append(list(requests))
        return [ValueError("bad") if r == "bad" else r * 2 for r in requests]  # type: ignore[operator]

    batcher = LoopBatcher(answer)

    async def main() -> tuple[object, list[object]]:
        lone = await batcher.submit(1)  # nothing else queued: answered alone, at once
        together = await asyncio.gather(
            batcher.submit(2), batcher.submit(3), batcher.submit("bad"), return_exceptions=True
        )
        return lone, together

    lone, together = asyncio.run(main())
    assert lone == 2
    assert together[:2] == [4, 6] and isinstance(together[2], ValueError)
    assert calls == [[1], [2, 3, "bad"]]


def _waits(batcher: LoopBatcher, submits: list[int]) -> list[float]:
    """Seconds each submit took: one request at a time for a 1, k at once for a k."""

    async def main() -> list[float]:
        waits = []
        for together in submits:
            t0 = time.perf_counter()
            answers = await asyncio.gather(*(batcher.submit(i) for i in range(together)))
            assert answers == list(range(together))
            waits.append(time.perf_counter() - t0)
        return waits

    return asyncio.run(main())


def test_the_window_closes_for_a_lone_caller_for_longer_each_time() -> None:
    window_s = 0.05
    batcher = LoopBatcher(list, window_s=window_s, misses=2, skip=3, max_skip=6)
    waits = _waits(batcher, [1] * 21)
    waited = [w >= window_s * 0.9 for w in waits]
    lone, probe = [False], [True]
    # Two windows that gathered only their own request, three answered at once, two
    # probe windows (lone again), then six at once, twice over (six is max_skip).
    expected = probe * 2 + lone * 3 + probe * 2 + lone * 6 + probe * 2 + lone * 6
    assert waited == expected, waits


def test_company_without_a_window_opens_it_again() -> None:
    window_s = 0.05
    batcher = LoopBatcher(list, window_s=window_s, misses=2, skip=100)
    # Two lone windows close it; a pair arriving together while it is closed shows
    # concurrent callers, so the next request waits for company again.
    waits = _waits(batcher, [1, 1, 1, 2, 1])
    waited = [w >= window_s * 0.9 for w in waits]
    assert waited == [True, True, False, False, True], waits


def test_an_adaptive_window_stays_open_while_callers_arrive_up_to_its_limit() -> None:
    batches: list[list[int]] = []

    def answer(requests: list[int]) -> list[int]:
        batches.append(list(requests))
        return requests

    window_s, max_window_s = 0.1, 0.3
    batcher = LoopBatcher(answer, window_s=window_s, max_window_s=max_window_s)
    small = LoopBatcher(answer, window_s=window_s, max_batch=4)

    async def arrivals(first: int, count: int, every_s: float) -> float:
        """``count`` requests ``every_s`` apart; seconds until the last is answered."""
        t0 = time.perf_counter()
        calls = []
        for i in range(count):
            calls.append(asyncio.ensure_future(batcher.submit(first + i)))
            await asyncio.sleep(every_s)
        await asyncio.gather(*calls)
        return time.perf_counter() - t0

    async def main() -> tuple[float, float]:
        # 3 arrivals 50 ms apart: each keeps the window open 100 ms more (one batch).
        spaced = await arrivals(0, 3, 0.05)
        # 8 arrivals 50 ms apart (350 ms): the window closes 300 ms after it opened.
        await arrivals(10, 8, 0.05)
        # 4 at once with max_batch 4: answered without waiting for the window.
        t0 = time.perf_counter()
        await asyncio.gather(*(small.submit(20 + i) for i in range(4)))
        return spaced, time.perf_counter() - t0

    spaced, full = asyncio.run(main())
    assert batches[0] == [0, 1, 2], batches
    assert spaced >= 0.1 + window_s * 0.9, spaced  # held past the first window
    assert 5 <= len(batches[1]) <= 7 and batches[1][0] == 10, batches  # cut at 300 ms
    assert [r for batch in batches[1:-1] for r in batch] == list(range(10, 18)), batches
    assert batches[-1] == [20, 21, 22, 23] and full < window_s * 0.5, (batches, full)


def test_text_queries_answered_together_get_what_each_gets_alone(
    start_server: StartServer,
) -> None:
    server = start_server(batching_enabled=True, batching_max_batch=3)
    server.banks.CreateBank(bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name="story")))
    story = memory_pb2.MemoryBatch(memories=[memory_pb2.MemoryInput(text=t) for t in STORY_LINES])
    server.memories.WriteMemories(memory_pb2.WriteMemoriesRequest(bank="story", batch=story))
    servicer = QueryServicer(server.service.engine)
    arrays = query_pb2.RESULT_LAYOUT_ARRAYS
    requests = [
        query_pb2.QueryRequest(bank="story", questions=["Where is Mary?"], k=3),
        query_pb2.QueryRequest(bank="story", questions=["Where is John?"], k=3),
        query_pb2.QueryRequest(bank="story", questions=["Where is Sandra?", "Where is Mary?"], k=3),
        query_pb2.QueryRequest(bank="story", questions=["Where is John?"], k=2),  # other options
        query_pb2.QueryRequest(bank="story", questions=["Where is Mary?"], k=3, layout=arrays),
        query_pb2.QueryRequest(bank="story", questions=["Where is Mary?"], k=10**9),  # bad k
        query_pb2.QueryRequest(  # vectors to a text bank: refused alone, as a lone call is
            bank="story", query_vectors=to_tensor(np.zeros((1, 8), np.float32)), k=3
        ),
    ]
    asked = _questions_per_engine_call(server)
    together = servicer.query_together(requests)
    # max_batch 3: the k=3 memories group (1 + 1 + 2 questions) runs as 2 + 2; k=2, the
    # arrays layout, k=10**9 and the vectors (both refused by the engine) run alone.
    assert sorted(asked) == [0, 1, 1, 1, 2, 2], asked
    assert isinstance(together[-2], InvalidArgument) and together[-2].field == "k"
    assert isinstance(together[-1], InvalidArgument) and together[-1].field == "questions"
    for request, answer in zip(requests[:-2], together[:-2], strict=True):
        assert isinstance(answer, query_pb2.QueryResponse)
        alone = servicer.Query(request, _NoDeadline())  # type: ignore[arg-type]
        _assert_same_answer(answer, alone)


def _questions_per_engine_call(server: Running) -> list[int]:
    engine = server.service.engine
    real = engine.query
    asked: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(len(kwargs["questions"] or ()))
        return real(*args, **kwargs)

    engine.query = spy  # type: ignore[method-assign]
    return asked


class _NoDeadline:
    def time_remaining(self) -> None:
        return None


def _assert_same_answer(got: query_pb2.QueryResponse, want: query_pb2.QueryResponse) -> None:
    assert got.model_version == want.model_version and got.bank_seq == want.bank_seq
    if want.HasField("arrays"):
        assert list(got.arrays.ids) == list(want.arrays.ids)
        assert list(got.arrays.answers) == list(want.arrays.answers)
        for name in ("weights", "scores", "readouts", "probabilities"):
            np.testing.assert_allclose(
                from_tensor(getattr(got.arrays, name), field=name),
                from_tensor(getattr(want.arrays, name), field=name),
                rtol=1e-5,
                atol=1e-6,
            )
        return
    assert len(got.results) == len(want.results)
    for a, b in zip(got.results, want.results, strict=True):
        assert a.answer == b.answer and list(a.unknown_words) == list(b.unknown_words)
        assert [x.answer for x in a.alternatives] == [x.answer for x in b.alternatives]
        for hop_a, hop_b in zip(a.hops, b.hops, strict=True):
            assert [m.id for m in hop_a.memories] == [m.id for m in hop_b.memories]
            np.testing.assert_allclose(
                [m.weight for m in hop_a.memories], [m.weight for m in hop_b.memories], rtol=1e-5
            )
