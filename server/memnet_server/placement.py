"""Where the server runs a query: on its event loop, batched on it, or in the worker pool.

docs/server.md, "Event loop and worker threads". A query runs on the loop only when
it is short and never waits: at most ``INLINE_MAX_QUERIES`` queries, on a graph or
list index or a bank of at most ``INLINE_MAX_FLAT_MEMORIES`` memories, with no write
committing to the bank, on a store in this process. Text banks with batching on are
batched on the loop; flat vector banks with batching on use the thread batcher in
the pool.
"""

from __future__ import annotations

from enum import Enum

from memnet.serving.contract import InputKind, ModelInfo
from memnet.store.interface import MemoryBank
from memnet.store.types import IndexKind
from memnet_server.batching import batching_pays

# A one-query scan of 65,536 x 128 takes ~4 ms on the 2-core benchmark machine.
INLINE_MAX_QUERIES = 8
INLINE_MAX_FLAT_MEMORIES = 65_536


class Placement(Enum):
    """Where the server runs a query (``Engine.placement``)."""

    LOOP = "loop"  # on the event loop, at once
    LOOP_BATCHED = "loop, batched"  # on the event loop, with the queries that came with it
    POOL = "pool"  # in a worker thread


def place_query(bank: MemoryBank, info: ModelInfo, *, batching: bool) -> Placement:
    """Where a query of at most ``INLINE_MAX_QUERIES`` queries to ``bank`` (of a store
    in this process, served by the model ``info`` describes) runs."""
    small = bank.config.index.kind is not IndexKind.FLAT or (
        bank.count() <= INLINE_MAX_FLAT_MEMORIES
    )
    if not small or not bank.searchable_now():
        return Placement.POOL
    if batching and batching_pays(info, bank.config):
        return Placement.LOOP_BATCHED if info.input_kind is InputKind.TEXT else Placement.POOL
    return Placement.LOOP
