"""Columnar memory storage: float32 key/value arrays plus per-slot id, text, metadata, seq.

A memory lives in a *slot*. Slots are appended and never reused until compaction,
so slot order is write (seq) order, and the slot number is the FAISS label. A
deleted or replaced memory leaves a dead slot (``alive`` False) until
``compacted`` copies the live slots into a fresh table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from memnet.store.metadata_index import MetadataIndex, json_equal
from memnet.store.types import JsonObject, MemoryRecord

EMPTY_METADATA: JsonObject = {}  # shared by every memory without metadata; never mutated


@dataclass(frozen=True)
class TailSample:
    """Live slots drawn uniformly with replacement, with a contiguous copy of their keys."""

    slots: np.ndarray  # (S,) int64
    keys: np.ndarray  # (S, Dk) float32


@dataclass(frozen=True)
class NewRows:
    ids: list[str]
    keys: np.ndarray  # (N, Dk) float32
    values: np.ndarray  # (N, Dv) float32
    texts: list[str | None] | None
    sources: np.ndarray | None  # (N, Ds) float32
    metadata: list[JsonObject] | None
    first_seq: int
    written_at_ns: int
    # Per-row seqs and write times (a rebuilt copy of existing memories); None: the rows
    # are one write, seqs first_seq.. and all written at written_at_ns.
    seqs: np.ndarray | None = None  # (N,) int64, ascending
    written_ns: np.ndarray | None = None  # (N,) int64


class SlotTable:
    def __init__(self, key_dim: int, value_dim: int, capacity: int = 1024) -> None:
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.keys = np.zeros((capacity, key_dim), np.float32)  # (cap, Dk)
        self.values = np.zeros((capacity, value_dim), np.float32)  # (cap, Dv)
        self.seqs = np.zeros(capacity, np.int64)
        self.written_ns = np.zeros(capacity, np.int64)
        self.alive = np.zeros(capacity, bool)
        self.ids: list[str | None] = []
        self.texts: list[str | None] = []
        self.metadata: list[JsonObject] = []
        self.sources: list[np.ndarray | None] = []
        self.slot_of: dict[str, int] = {}
        self.n_slots = 0
        self._live: np.ndarray | None = None  # cached sorted live slots
        self._value_sum: np.ndarray | None = None  # (Dv,) float64 over live slots, once asked
        self._tail_sample: TailSample | None = None  # kept until the next append or kill
        self._metadata_index: MetadataIndex | None = None  # built by the first filtered search
        self._content: bool | None = None  # some slot holds text or metadata; None: not known

    @property
    def n_live(self) -> int:
        return len(self.slot_of)

    @property
    def n_dead(self) -> int:
        return self.n_slots - self.n_live

    def _reserve(self, extra: int) -> None:
        need = self.n_slots + extra
        cap = self.keys.shape[0]
        if need <= cap:
            return
        new_cap = max(need, 2 * cap, 1024)
        for name in ("keys", "values", "seqs", "written_ns", "alive"):
            old = getattr(self, name)
            if old.flags.owndata:
                # realloc in place (mremap for large blocks: no copy). Callers hold the bank's
                # exclusive lock and no view of these arrays outlives a call.
                old.resize((new_cap, *old.shape[1:]), refcheck=False)
            else:  # e.g. loaded from a snapshot file: copy once into an owned array
                grown = np.zeros((new_cap, *old.shape[1:]), old.dtype)
                grown[: self.n_slots] = old[: self.n_slots]
                setattr(self, name, grown)

    def append(self, rows: NewRows) -> np.ndarray:
        """Store ``rows`` in new slots; returns the (N,) int64 slot numbers."""
        n = len(rows.ids)
        self._reserve(n)
        start = self.n_slots
        sl = slice(start, start + n)
        self.keys[sl] = rows.keys
        self.values[sl] = rows.values
        if rows.seqs is not None:
            self.seqs[sl] = rows.seqs
        else:
            self.seqs[sl] = np.arange(rows.first_seq, rows.first_seq + n, dtype=np.int64)
        self.written_ns[sl] = rows.written_ns if rows.written_ns is not None else rows.written_at_ns
        self.alive[sl] = True
        if self._value_sum is not None:
            self._value_sum += rows.values.sum(0, dtype=np.float64)
        self.ids.extend(rows.ids)
        self.texts.extend(rows.texts if rows.texts is not None else [None] * n)
        self.metadata.extend(
            [m if m else EMPTY_METADATA for m in rows.metadata]
            if rows.metadata is not None
            else [EMPTY_METADATA] * n
        )
        if rows.sources is not None:
            self.sources.extend(np.array(rows.sources, np.float32, copy=True))
        else:
            self.sources.extend([None] * n)
        for i, mid in enumerate(rows.ids):
            self.slot_of[mid] = start + i
        if self._content is False:
            self._content = any(rows.texts or ()) or any(rows.metadata or ())
        if self._metadata_index is not None and rows.metadata is not None:
            for i, meta in enumerate(rows.metadata):
                if meta:
                    self._metadata_index.add(start + i, meta)
        self.n_slots += n
        self._forget_derived()
        return np.arange(start, start + n, dtype=np.int64)

    def kill(self, slots: np.ndarray) -> None:
        """Mark ``slots`` dead and forget their ids and payloads."""
        if self._value_sum is not None:
            dying = np.unique(slots[self.alive[slots]])
            self._value_sum -= self.values[dying].sum(0, dtype=np.float64)
        index = self._metadata_index
        for s in slots.tolist():
            mid = self.ids[s]
            if mid is not None:
                del self.slot_of[mid]
                if index is not None and self.metadata[s]:
                    index.remove(s, self.metadata[s])
            self.ids[s] = None
            self.texts[s] = None
            self.metadata[s] = EMPTY_METADATA
            self.sources[s] = None
        self.alive[slots] = False
        self._forget_derived()

    def _forget_derived(self) -> None:
        """Drop what is derived from the set of live slots (the value sum and the metadata
        index are updated in place by ``append`` and ``kill`` instead)."""
        self._live = None
        self._tail_sample = None

    def has_content(self) -> bool:
        """False when no slot holds text or metadata (searches then attach none).

        Found by one pass over the columns the first time it is asked (a table loaded
        from a snapshot has its columns set directly), then kept by ``append``; a kill
        leaves it True, which only costs a lookup that finds nothing.
        """
        if self._content is None:
            self._content = any(self.texts) or any(self.metadata)
        return self._content

    def live_slots(self) -> np.ndarray:
        """(M,) int64 live slots in ascending order (= ascending seq)."""
        live = self._live
        if live is None:
            live = np.flatnonzero(self.alive[: self.n_slots]).astype(np.int64)
            self._live = live
        return live

    def tail_sample(self, size: int, rng: np.random.Generator) -> TailSample:
        """``size`` live slots drawn uniformly with replacement, and their keys.

        Drawn once and reused until the table changes: every query's tail estimate is
        still unbiased, and no query pays for ``size`` random reads from the key array.
        """
        cached = self._tail_sample
        if cached is None or len(cached.slots) != size:
            live = self.live_slots()
            slots = live[rng.integers(0, len(live), size)]
            cached = TailSample(slots=slots, keys=np.ascontiguousarray(self.keys[slots]))
            self._tail_sample = cached
        return cached

    def value_mean(self) -> np.ndarray:
        """(Dv,) float32 mean value of the live memories (zeros when there are none).

        The sum is computed once (a pass over the values) and then kept up to date by
        ``append`` and ``kill``.
        """
        if self._value_sum is None:
            n = self.n_slots
            alive = self.alive[:n].astype(np.float32)  # (n,)
            self._value_sum = (alive @ self.values[:n]).astype(np.float64)  # (Dv,)
        return (self._value_sum / max(1, self.n_live)).astype(np.float32)

    def recency(self, slots: np.ndarray) -> np.ndarray:
        """Rank of each slot among live memories by seq, 0 = newest (same shape as ``slots``)."""
        if self.n_dead == 0:  # every slot is live: the rank is the distance from the end
            return (self.n_slots - 1 - slots).astype(np.int64)
        live = self.live_slots()
        return (len(live) - 1 - np.searchsorted(live, slots)).astype(np.int64)

    def slots_of(self, ids: list[str]) -> list[int | None]:
        return [self.slot_of.get(i) for i in ids]

    def record(self, slot: int) -> MemoryRecord:
        mid = self.ids[slot]
        assert mid is not None, "record() of a dead slot"
        src = self.sources[slot]
        return MemoryRecord(
            id=mid,
            key=self.keys[slot].copy(),
            value=self.values[slot].copy(),
            text=self.texts[slot],
            source_vector=None if src is None else src.copy(),
            metadata=dict(self.metadata[slot]),
            seq=int(self.seqs[slot]),
            written_at_ns=int(self.written_ns[slot]),
        )

    def oldest_ids(self, count: int, *, exclude: set[str]) -> list[str]:
        """Ids of the ``count`` lowest-seq live memories not in ``exclude``."""
        out: list[str] = []
        for s in self.live_slots().tolist():  # ascending seq: oldest first
            mid = self.ids[s]
            if mid is not None and mid not in exclude:
                out.append(mid)
                if len(out) == count:
                    break
        return out

    def matching(self, metadata_filter: JsonObject) -> np.ndarray:
        """(M',) int64 live slots, ascending, whose metadata has every filter key with an
        equal value (``json_equal``).

        The first call builds an inverted index of the top-level values (one pass over
        the live memories); later calls look the filter up in it and check only its
        candidates, so a filtered search costs about the number of memories matched.
        """
        items = list(metadata_filter.items())
        if not items:
            return self.live_slots()
        index = self._metadata_index
        if index is None:
            index = MetadataIndex.build(self.live_slots().tolist(), self.metadata)
            self._metadata_index = index
        meta = self.metadata
        keep = [
            s
            for s in index.candidates(metadata_filter)
            if all(json_equal(meta[s].get(k, _MISSING), v) for k, v in items)
        ]
        keep.sort()
        return np.asarray(keep, dtype=np.int64)

    def compacted(self) -> SlotTable:
        """A new table holding only the live slots, in the same (seq) order."""
        live = self.live_slots()
        out = SlotTable(self.key_dim, self.value_dim, capacity=max(1024, len(live)))
        n = len(live)
        out.keys[:n] = self.keys[live]
        out.values[:n] = self.values[live]
        out.seqs[:n] = self.seqs[live]
        out.written_ns[:n] = self.written_ns[live]
        out.alive[:n] = True
        lst = live.tolist()
        out.ids = [self.ids[s] for s in lst]
        out.texts = [self.texts[s] for s in lst]
        out.metadata = [self.metadata[s] for s in lst]
        out.sources = [self.sources[s] for s in lst]
        out.slot_of = {mid: i for i, mid in enumerate(out.ids) if mid is not None}
        out.n_slots = n
        return out


_MISSING = object()


def generate_missing_ids(ids: list[str | None]) -> list[str]:
    """Replace each None with a random 32-hex-digit id (128 bits from os.urandom)."""
    missing = sum(1 for i in ids if i is None)
    if not missing:
        return [i for i in ids if i is not None]
    raw = os.urandom(16 * missing).hex()
    fresh = iter([raw[32 * j : 32 * (j + 1)] for j in range(missing)])
    return [i if i is not None else next(fresh) for i in ids]
