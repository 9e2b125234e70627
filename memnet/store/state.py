"""A bank's in-memory state and the steps that change it, apart from any file or lock.

``BankState`` is everything a bank holds in memory: its slot table, its FAISS index
and how to use it, and the sequence number of the last record applied. Records
change a state through ``apply`` (``prepare`` needs no lock, ``commit`` runs under the
bank's exclusive lock); opening a bank is ``apply`` folded over its log. Training and
compaction build a new state off to the side (``rebuilt``), which the bank swaps in.

A clear or a rebuild returns a new state; a write or delete changes the table and the
index of the state it is given, which is why a live bank commits under its lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import faiss
import numpy as np

from memnet.store import index as ix
from memnet.store.records import ClearRecord, DeleteRecord, Record, WriteRecord
from memnet.store.types import BankConfig, Metric, StoreSettings
from memnet.store.vectors import NewRows, SlotTable

LOG = logging.getLogger(__name__)

Selector = tuple[faiss.IDSelector, np.ndarray]  # the selector and the bitmap it points into


@dataclass
class BankState:
    """What a bank holds in memory (see the module docstring for who may change it)."""

    table: SlotTable
    index: faiss.Index  # labels are slots of ``table``
    family: str  # ix.family(index): which search parameters it takes
    trained: bool  # the index is in use; False: searches scan the table's keys
    tombstones: bool  # dead slots stay in the index (HNSW): searches pass a live selector
    last_seq: int  # sequence number of the last record applied
    # The index's distances are the bank's exact scores (``ix.distances_are_scores``):
    # searches use them instead of re-scoring the candidates from the table's keys.
    distances_exact: bool = False
    index_error: str = ""  # why the index could not be trained or filled ("" = none)
    _live_selector: Selector | None = None  # cached by ``live_selector``

    @classmethod
    def of(
        cls, config: BankConfig, table: SlotTable, index: faiss.Index, *, last_seq: int
    ) -> BankState:
        """A state over ``table`` and ``index``, the index set to the bank's search defaults."""
        ix.set_defaults(index, config.index)
        return cls(
            table=table,
            index=index,
            family=ix.family(index),
            trained=bool(index.is_trained),
            tombstones=ix.uses_tombstones(index),
            last_seq=last_seq,
            distances_exact=ix.distances_are_scores(index, config.metric),
        )

    @classmethod
    def empty(cls, config: BankConfig) -> BankState:
        table = SlotTable(config.key_dim, config.value_dim)
        return cls.of(
            config, table, ix.build(config.index, config.metric, config.key_dim), last_seq=0
        )

    def live_selector(self) -> Selector | None:
        """A selector of the live slots when dead slots remain in the index, else None.

        Built once per table change (a benign race between readers builds it twice).
        """
        if not self.tombstones or self.table.n_dead == 0:
            return None
        selector = self._live_selector
        if selector is None:
            selector = ix.bitmap_selector(self.table.live_slots(), self.table.n_slots)
            self._live_selector = selector
        return selector


def index_keys(config: BankConfig, keys: np.ndarray) -> np.ndarray:
    """(N, Dk) keys as the index holds them: unit-norm for cosine banks, float32 C order."""
    if config.metric is Metric.COSINE:
        return np.ascontiguousarray(keys / np.linalg.norm(keys, axis=1, keepdims=True), np.float32)
    return np.ascontiguousarray(keys, np.float32)


@dataclass(frozen=True)
class Prepared:
    """A record with the work that needs no lock done: the slots it kills, its index keys,
    or (a clear) the empty state that replaces the bank's."""

    record: Record
    dead: np.ndarray  # (n,) int64 slots that die (deleted, replaced or evicted)
    new_keys: np.ndarray | None  # (N, Dk) float32 index keys of a write
    replacement: BankState | None  # a clear's fresh state


def prepare(state: BankState, record: Record, config: BankConfig) -> Prepared:
    """Read-only planning of ``record`` against ``state`` (shared or no lock)."""
    no_slots = np.empty(0, np.int64)
    if isinstance(record, ClearRecord):
        index = ix.empty_like(state.index, config.index, config.metric, config.key_dim)
        fresh = BankState.of(
            config, SlotTable(config.key_dim, config.value_dim), index, last_seq=record.seq
        )
        return Prepared(record, no_slots, None, fresh)
    dead_ids = record.ids if isinstance(record, DeleteRecord) else [*record.evicted, *record.ids]
    slots = {s for s in state.table.slots_of(dead_ids) if s is not None}
    dead = np.array(sorted(slots), np.int64)
    new_keys = index_keys(config, record.keys) if isinstance(record, WriteRecord) else None
    return Prepared(record, dead, new_keys, None)


def commit(state: BankState, prepared: Prepared) -> BankState:
    """Apply a prepared record; returns the state that holds it (a new one for a clear).

    A live bank calls this under its exclusive lock. A failing index update leaves the
    record applied to the table and the index out of use (``trained`` False: searches
    scan the table exactly) with ``index_error`` set, rather than half-applied.
    """
    if prepared.replacement is not None:
        return prepared.replacement
    record, dead = prepared.record, prepared.dead
    table = state.table
    table.kill(dead)
    if state.trained and len(dead) and not state.tombstones:
        _index_step(state, "remove", lambda: ix.remove(state.index, dead))
    if isinstance(record, WriteRecord):
        slots = table.append(
            NewRows(
                record.ids,
                record.keys,
                record.values,
                record.texts,
                record.sources,
                record.metadata,
                record.first_seq,
                record.written_at_ns,
            )
        )
        if state.trained:
            assert prepared.new_keys is not None
            keys = prepared.new_keys
            _index_step(state, "add", lambda: ix.add(state.index, slots, keys))
    state._live_selector = None
    state.last_seq = record.last_seq
    return state


def _index_step(state: BankState, what: str, step: Callable[[], None]) -> None:
    """Run an index update; on failure take the index out of use instead of raising."""
    try:
        step()
    except Exception as err:  # FAISS raises RuntimeError; anything else is as fatal here
        state.trained = False
        state.index_error = f"index {what} failed, searching exactly until rebuilt: {err}"
        LOG.error("%s", state.index_error)


def apply(state: BankState, record: Record, config: BankConfig) -> BankState:
    """``record`` applied to ``state`` (opening a bank folds this over its log)."""
    return commit(state, prepare(state, record, config))


def needs_training(state: BankState, config: BankConfig, *, extra_live: int = 0) -> bool:
    """True when the index is not in use and the bank (plus ``extra_live``) is big enough."""
    return not state.trained and state.table.n_live + extra_live >= ix.train_threshold(
        config.index, key_dim=config.key_dim
    )


def needs_compaction(state: BankState, settings: StoreSettings) -> bool:
    t = state.table
    return t.n_dead >= max(settings.compact_min_dead, settings.compact_dead_fraction * t.n_slots)


def trained_index(config: BankConfig, keys: np.ndarray) -> faiss.Index:
    """A new empty index of the bank's kind, trained on (N, Dk) index ``keys``.

    Raises what FAISS raises when it cannot be trained on them.
    """
    index = ix.build(config.index, config.metric, config.key_dim)
    if not index.is_trained:
        ix.train(index, keys)
    return index


def rebuilt(state: BankState, config: BankConfig, *, index: faiss.Index | None = None) -> BankState:
    """A compacted copy of ``state`` whose index holds every live memory.

    ``index``: an empty index to fill (e.g. freshly trained); by default one with the
    training of the current index. If the index cannot be trained or filled, the copy
    searches exactly (``trained`` False) and says why in ``index_error``.
    """
    t0 = time.perf_counter()
    table = state.table.compacted()
    n = table.n_slots
    keys = index_keys(config, table.keys[:n])  # (M, Dk)
    fresh = BankState.of(
        config,
        table,
        index
        if index is not None
        else ix.empty_like(state.index, config.index, config.metric, config.key_dim),
        last_seq=state.last_seq,
    )
    try:
        if not fresh.trained and n >= ix.train_threshold(config.index, key_dim=config.key_dim):
            ix.train(fresh.index, keys)
            fresh.trained = bool(fresh.index.is_trained)
        if fresh.trained:
            ix.add(fresh.index, np.arange(n, dtype=np.int64), keys)
    except Exception as err:  # FAISS raises RuntimeError
        fresh.index = ix.build(config.index, config.metric, config.key_dim)
        fresh.family, fresh.trained = ix.family(fresh.index), False
        fresh.distances_exact = ix.distances_are_scores(fresh.index, config.metric)
        fresh.index_error = f"index rebuild failed, searching exactly: {err}"
        LOG.error("bank %s: %s", config.name, fresh.index_error)
    LOG.info(
        "bank %s: rebuilt %s index over %d memories in %.1f ms",
        config.name,
        "a trained" if fresh.trained else "an unused",
        n,
        (time.perf_counter() - t0) * 1e3,
    )
    return fresh
