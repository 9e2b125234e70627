"""What every peer in bench/peers.py is measured with: the recall target, the beam steps,
durable timed inserts, one-caller and in-flight query rates, and the result row.

bench/peers.py runs the systems (memnet, Chroma, Milvus Lite, Qdrant in-process) and
bench/peers_wire.py the servers over the wire; both stand on this module.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import numpy as np
import timing

K = 32
RECALL_TARGET = 0.95
EF_STEPS = (32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
INSERT_BATCH = 1_000
N_QUERIES = 300

Search = Callable[[np.ndarray], list[int]]  # one (D,) query -> K ids
AsyncSearch = Callable[[np.ndarray], Awaitable[list[int]]]
# Opens an asyncio client inside the measuring event loop and yields its search.
OpenAsyncSearch = Callable[[], AbstractAsyncContextManager[AsyncSearch]]


@dataclass
class PeerResult:
    system: str
    version: str
    m: int
    durability: str
    insert_per_s: float = 0.0
    searchable_per_s: float = 0.0  # M / (insert calls + time until searches see the data)
    ef: int | None = None  # None: exact search, no beam to tune
    recall: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    qps: float = 0.0
    qps_in_flight: float = 0.0  # with IN_FLIGHT callers (0: not measured)
    note: str = ""
    error: str = ""


def truth(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(keys.shape[1])
    index.add(keys)
    faiss.omp_set_num_threads(2)
    _, ids = index.search(queries, K)  # (Q, K)
    return ids


def recall(found: list[list[int]], true_ids: np.ndarray) -> float:
    hits = sum(len(set(f) & set(t.tolist())) for f, t in zip(found, true_ids, strict=True))
    return hits / true_ids.size


def measure_queries(
    search: Search, queries: np.ndarray, true_ids: np.ndarray
) -> tuple[float, float, float, float]:
    """recall, p50 ms, p99 ms, QPS of one caller issuing ``queries`` one at a time."""
    found: list[list[int]] = []
    lat_s: list[float] = []
    t0 = time.perf_counter()
    for q in queries:
        t1 = time.perf_counter()
        found.append(search(q))
        lat_s.append(time.perf_counter() - t1)
    elapsed = time.perf_counter() - t0
    lat = timing.summarize_s(lat_s)
    return recall(found, true_ids), lat.p50_ms, lat.p99_ms, len(queries) / elapsed


def tune_and_measure(
    res: PeerResult,
    make_search: Callable[[int | None], Search],
    queries: np.ndarray,
    true_ids: np.ndarray,
    *,
    efs: tuple[int | None, ...] = EF_STEPS,
) -> None:
    """Measure at each ef in turn; keep the first whose recall reaches the target (or the last)."""
    for ef in efs:
        search = make_search(ef)
        for q in queries[:5]:
            search(q)  # warm-up
        res.ef = ef
        res.recall, res.p50_ms, res.p99_ms, res.qps = measure_queries(search, queries, true_ids)
        if res.recall >= RECALL_TARGET:
            return


def timed_inserts(
    res: PeerResult,
    insert: Callable[[int, int], None],
    m: int,
    make_searchable: Callable[[], None] | None = None,
) -> None:
    """Insert M vectors in batches; then ``make_searchable`` (if the system needs it)."""
    t0 = time.perf_counter()
    for lo in range(0, m, INSERT_BATCH):
        insert(lo, min(m, lo + INSERT_BATCH))
    inserted_s = time.perf_counter() - t0
    if make_searchable is not None:
        make_searchable()
    res.insert_per_s = m / inserted_s
    res.searchable_per_s = m / (time.perf_counter() - t0)


def version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as v

    try:
        return v(dist)
    except PackageNotFoundError:
        return "not installed"


IN_FLIGHT = 8  # concurrent callers for the in-flight QPS column
IN_FLIGHT_QUERIES = 1_200  # queries answered per in-flight measurement (all callers)


def qps_in_flight(search: Search, queries: np.ndarray, callers: int = IN_FLIGHT) -> float:
    """Queries per second with ``callers`` threads each cycling through ``queries``."""
    per_caller = IN_FLIGHT_QUERIES // callers
    errors: list[BaseException] = []

    def caller(offset: int) -> None:
        try:
            for i in range(per_caller):
                search(queries[(offset + i * callers) % len(queries)])
        except BaseException as err:  # reported after the join
            errors.append(err)

    threads = [threading.Thread(target=caller, args=(c,)) for c in range(callers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return per_caller * callers / elapsed


def qps_in_flight_async(
    open_search: OpenAsyncSearch, queries: np.ndarray, callers: int = IN_FLIGHT
) -> float:
    """Queries per second with ``callers`` asyncio tasks sharing one asyncio client in one
    event loop (one thread: no client-side GIL handoffs between callers)."""
    per_caller = IN_FLIGHT_QUERIES // callers

    async def run() -> float:
        async with open_search() as search:
            for q in queries[:5]:
                await search(q)  # warm-up: the channel connects

            async def caller(offset: int) -> None:
                for i in range(per_caller):
                    await search(queries[(offset + i * callers) % len(queries)])

            t0 = time.perf_counter()
            await asyncio.gather(*(caller(c) for c in range(callers)))
            return per_caller * callers / (time.perf_counter() - t0)

    return asyncio.run(run())


def best_in_flight(res: PeerResult, by_threads: float, by_asyncio: float) -> str:
    """Keep the better of the two in-flight clients in ``res``; a note saying both."""
    res.qps_in_flight = max(by_threads, by_asyncio)
    return f"8 in flight: {by_threads:,.0f} QPS with threads, {by_asyncio:,.0f} with asyncio"
