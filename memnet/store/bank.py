"""One memory bank: validated writes logged then applied, searches under a read lock.

Write path (serialised per bank by ``_write_mutex``): validate → plan ids, replacements
and evictions → append to the log and fsync (searches keep running) → take the
exclusive lock only to update arrays and index → maintenance (train, compact,
snapshot). Searches, gets and gathers take the shared lock.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from memnet.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from memnet.store import index as ix
from memnet.store import lifecycle, validation
from memnet.store import search as srch
from memnet.store.locks import DirLock, RWLock
from memnet.store.records import ClearRecord, DeleteRecord, Record, WriteRecord
from memnet.store.recovery import recover
from memnet.store.types import (
    BankConfig,
    CapacityPolicy,
    MemoryBatch,
    MemoryContent,
    MemoryRecord,
    Metric,
    RecoveryReport,
    SearchResult,
    StoreSettings,
    WriteMode,
    WriteResult,
)
from memnet.store.vectors import NewRows, SlotTable, generate_missing_ids
from memnet.store.wal import WriteAheadLog

LOG = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


class Bank:
    """A named set of memories: FAISS index + float32 arrays + write-ahead log + snapshots."""

    def __init__(self, directory: Path, config: BankConfig, settings: StoreSettings) -> None:
        """Open the bank in ``directory``: lock it, load its snapshot, replay its log."""
        self.config = config
        self.directory = directory
        self._settings = settings
        self._limits = settings.limits
        self._rw = RWLock()
        self._write_mutex = threading.Lock()
        self._closed = False
        self._dropped = False
        self._selector: tuple[faiss.IDSelector, np.ndarray] | None = None
        self._tail_rng = np.random.default_rng()  # samples for tail estimates (thread-safe)
        self._lock = DirLock(directory, what=f"bank {config.name!r}")
        try:
            self._table = SlotTable(config.key_dim, config.value_dim)
            self._install(ix.build(config.index, config.metric, config.key_dim))
            self._tombstones = ix.uses_tombstones(self._index)
            self._last_seq = 0
            self._wal: WriteAheadLog | None = None
            self.recovery: RecoveryReport = recover(self)
            self._maintain()
        except BaseException:
            self._lock.release()
            raise

    # ---- properties -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def count(self) -> int:
        with self._rw.read():
            self._check_open()
            return self._table.n_live

    # ---- writes -----------------------------------------------------------------------

    def write(self, batch: MemoryBatch, *, mode: WriteMode = WriteMode.UPSERT) -> WriteResult:
        """Insert or replace ``batch`` (N memories); durable (per FsyncPolicy) before return."""
        try:
            mode = WriteMode(mode)
        except ValueError:
            raise InvalidArgument(
                f"mode must be one of {[m.value for m in WriteMode]}, got {mode!r}", field="mode"
            ) from None
        if not isinstance(batch, MemoryBatch):
            raise InvalidArgument("batch must be a MemoryBatch", field="batch")
        clean = validation.batch(batch, self.config, self._limits)
        with self._write_mutex:
            self._check_open()
            t = self._table
            ids = generate_missing_ids(clean.ids)
            existing = [i for i in ids if i in t.slot_of]
            if mode is WriteMode.INSERT and existing:
                raise AlreadyExists(
                    f"memory id {existing[0]!r} already exists in bank {self.name!r} (mode insert)",
                    field="ids",
                )
            n_new = len(ids) - len(existing)
            evicted = self._plan_eviction(n_new, set(existing))
            record = WriteRecord(
                first_seq=self._last_seq + 1,
                written_at_ns=time.time_ns(),
                ids=ids,
                keys=clean.keys,
                values=clean.values,
                sources=clean.sources,
                texts=clean.texts,
                metadata=clean.metadata,
                evicted=evicted,
            )
            self._log(record)
            self._apply(record)
            self._maintain()
        return WriteResult(ids, record.last_seq, n_new, len(existing), evicted)

    def _plan_eviction(self, n_new: int, replacing: set[str]) -> list[str]:
        cap = self.config.capacity
        t = self._table
        if cap is None or t.n_live + n_new <= cap:
            return []
        what = f"bank {self.name!r} holds {t.n_live} of capacity {cap}; {n_new} new memories"
        if self.config.capacity_policy is CapacityPolicy.REJECT or n_new > cap:
            raise ResourceExhausted(f"{what} would exceed capacity {cap}", field="capacity")
        return t.oldest_ids(t.n_live + n_new - cap, exclude=replacing)

    def delete(self, ids: Sequence[str]) -> int:
        """Delete memories by id; unknown ids are ignored. Returns how many were deleted."""
        wanted = validation.id_list(ids, limits=self._limits)
        with self._write_mutex:
            self._check_open()
            present = list(dict.fromkeys(i for i in wanted if i in self._table.slot_of))
            if not present:
                return 0
            record = DeleteRecord(self._last_seq + 1, time.time_ns(), present)
            self._log(record)
            self._apply(record)
            self._maintain()
            return len(present)

    def clear(self) -> None:
        """Delete every memory (the bank, its config and its index training remain)."""
        with self._write_mutex:
            self._check_open()
            record = ClearRecord(self._last_seq + 1, time.time_ns())
            self._log(record)
            self._apply(record)

    def _log(self, record: Record) -> None:
        assert self._wal is not None
        self._wal.append(record)

    def _install(self, index: faiss.Index) -> None:
        """Make ``index`` the bank's index (caller holds the exclusive lock, or is opening)."""
        ix.set_defaults(index, self.config.index)
        self._index = index
        self._family = ix.family(index)
        self._trained = bool(index.is_trained)

    def _index_keys(self, keys: np.ndarray) -> np.ndarray:
        if self.config.metric is Metric.COSINE:
            return np.ascontiguousarray(
                keys / np.linalg.norm(keys, axis=1, keepdims=True), np.float32
            )
        return np.ascontiguousarray(keys, np.float32)

    def _apply(self, record: Record) -> None:
        """Apply one logged record to arrays and index (the live path and replay share it)."""
        t = self._table
        if isinstance(record, ClearRecord):
            fresh = SlotTable(self.config.key_dim, self.config.value_dim)
            index = ix.empty_like(
                self._index, self.config.index, self.config.metric, self.config.key_dim
            )
            with self._rw.write():
                self._table, self._selector = fresh, None
                self._install(index)
                self._last_seq = record.seq
            return
        dead_ids = (
            record.ids if isinstance(record, DeleteRecord) else [*record.evicted, *record.ids]
        )
        dead = np.array(sorted({s for s in t.slots_of(dead_ids) if s is not None}), np.int64)
        new_keys = self._index_keys(record.keys) if isinstance(record, WriteRecord) else None
        with self._rw.write():
            t.kill(dead)
            if self._trained and len(dead) and not self._tombstones:
                ix.remove(self._index, dead)
            if isinstance(record, WriteRecord):
                slots = t.append(
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
                if self._trained:
                    assert new_keys is not None
                    ix.add(self._index, slots, new_keys)
            self._selector = None
            self._last_seq = record.last_seq

    # ---- maintenance ------------------------------------------------------------------

    def _maintain(self) -> None:
        """Train an untrained index, compact dead slots, snapshot a long log (write mutex held)."""
        t = self._table
        if not self._trained and t.n_live >= ix.train_threshold(self.config.index):
            self._rebuild(train=True)
        elif t.n_dead >= max(
            self._settings.compact_min_dead, self._settings.compact_dead_fraction * t.n_slots
        ):
            self._rebuild(train=False)
        wal = self._wal
        if wal is not None and wal.record_bytes >= self._settings.snapshot_after_log_bytes:
            lifecycle.try_snapshot_locked(self, "after a long log")

    def _rebuild(self, *, train: bool) -> None:
        """Build a compacted table and index off to the side, then swap them in under the lock."""
        t0 = time.perf_counter()
        table = self._table.compacted()
        index = ix.empty_like(
            self._index, self.config.index, self.config.metric, self.config.key_dim
        )
        n = table.n_slots
        keys = self._index_keys(table.keys[:n])  # (M, Dk)
        if train and not index.is_trained:
            ix.train(index, keys)
        trained = bool(index.is_trained)
        if trained:
            ix.add(index, np.arange(n, dtype=np.int64), keys)
        with self._rw.write():
            self._table, self._selector = table, None
            self._install(index)
        LOG.info(
            "bank %s: %s %d memories in %.1f ms",
            self.name,
            "trained index on" if train else "compacted to",
            n,
            (time.perf_counter() - t0) * 1e3,
        )

    def rebuild_index(self) -> None:
        """Rebuild arrays and index from the live memories (compaction); also used by recovery."""
        with self._write_mutex:
            self._check_open()
            self._rebuild(train=not self._trained)

    def snapshot(self) -> None:
        """Write a snapshot and start a new, empty log."""
        with self._write_mutex:
            self._check_open()
            self._snapshot_locked()

    def _snapshot_locked(self) -> None:
        lifecycle.snapshot_locked(self)

    def flush(self) -> None:
        """fsync the log if anything is unsynced (the INTERVAL policy's timer calls this)."""
        wal = self._wal
        if wal is not None and not self._closed:
            wal.sync()

    # ---- reads ------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[MemoryRecord | None]:
        wanted = validation.id_list(ids, limits=self._limits)
        with self._rw.read():
            self._check_open()
            t = self._table
            return [None if s is None else t.record(s) for s in t.slots_of(wanted)]

    def contents(self, ids: Iterable[str]) -> dict[str, MemoryContent]:
        """Text and metadata of the live memories among ``ids`` that have either, by id.

        For ids this bank returned (search results): no id validation and no vector
        copies, so attaching content to K attended memories costs a dict lookup each.
        Unknown, deleted and content-less ids are absent from the result.
        """
        out: dict[str, MemoryContent] = {}
        with self._rw.read():
            self._check_open()
            t = self._table
            slot_of, texts, metadata = t.slot_of, t.texts, t.metadata
            for mid in ids:
                s = slot_of.get(mid)
                if s is not None and (texts[s] or metadata[s]):
                    out[mid] = MemoryContent(text=texts[s], metadata=metadata[s])
        return out

    def gather(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(N, Dk) keys and (N, Dv) values of ``ids``; NotFound names the first missing id."""
        wanted = validation.id_list(ids, limits=self._limits)
        with self._rw.read():
            self._check_open()
            t = self._table
            slots = t.slots_of(wanted)
            for mid, s in zip(wanted, slots, strict=True):
                if s is None:
                    raise NotFound(f"memory {mid!r} not found in bank {self.name!r}", field="ids")
            idx = np.array(slots, np.int64)
            return t.keys[idx].copy(), t.values[idx].copy()

    def list(
        self, *, page_size: int = 100, page_token: str | None = None
    ) -> tuple[list[MemoryRecord], str | None]:
        """Live memories in seq order, ``page_size`` at a time; pass back the returned token."""
        size = validation.page_size(page_size, self._limits)
        after = validation.page_token(page_token)
        with self._rw.read():
            self._check_open()
            t = self._table
            live = t.live_slots()
            start = int(np.searchsorted(t.seqs[live], after, side="right"))
            page = live[start : start + size]
            records = [t.record(s) for s in page.tolist()]
            more = start + size < len(live)
            token = validation.make_page_token(records[-1].seq) if more and records else None
            return records, token

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        ef_search: int | None = None,
        nprobe: int | None = None,
        metadata_filter: dict[str, Any] | None = None,
        with_vectors: bool = False,
        tail_samples: int | None = None,
    ) -> SearchResult:
        """Top-k memories for (B, Dk) float32 queries, exactly re-scored, best first.

        ``tail_samples`` also estimates, per query, log Σ exp(score) over the searched
        memories outside its top-k from that many uniformly sampled ones (exact when it
        covers them all), and the value they read as: what a softmax over the top-k
        needs to account for the rest (``SearchResult.tail_log_mass``, ``tail_value``).
        """
        q = validation.search_args(
            queries,
            k,
            self.config,
            self._limits,
            ef_search=ef_search,
            nprobe=nprobe,
            metadata_filter=metadata_filter,
        )
        validation.tail_samples(tail_samples)
        k = int(k)
        with self._rw.read():
            self._check_open()
            t = self._table
            if t.n_live == 0:
                result = srch.empty_result(q.shape[0], k, self.config, with_vectors=with_vectors)
            else:
                selector = self._selector
                if self._tombstones and t.n_dead and selector is None:
                    selector = ix.bitmap_selector(t.live_slots(), t.n_slots)
                    self._selector = selector
                view = srch.IndexView(
                    self.config,
                    t,
                    self._index,
                    self._family,
                    self._trained,
                    self._tombstones,
                    selector,
                )
                allowed = t.matching(metadata_filter) if metadata_filter else None
                cands = srch.candidates(
                    view, q, k, ef_search=ef_search, nprobe=nprobe, allowed=allowed
                )
                result, slots = srch.assemble(view, q, cands, k, with_vectors=with_vectors)
                if tail_samples is not None:
                    return self._with_tail(
                        view, q, result, slots, allowed=allowed, tail_samples=tail_samples
                    )
            if tail_samples is not None:  # an empty bank: no tail
                return dataclasses.replace(
                    result,
                    tail_log_mass=np.full(q.shape[0], -np.inf),
                    tail_value=np.zeros((q.shape[0], self.config.value_dim), np.float32),
                )
            return result

    def _with_tail(
        self,
        view: srch.IndexView,
        q: np.ndarray,
        result: SearchResult,
        slots: np.ndarray,
        *,
        allowed: np.ndarray | None,
        tail_samples: int,
    ) -> SearchResult:
        """``result`` (whose (B, K) ``slots`` are given) plus the tail estimate over the
        ``allowed`` slots of a metadata filter (None: every live memory); called under
        the read lock."""
        t = view.table
        if allowed is not None:
            population = allowed

            def mean_value() -> np.ndarray:
                return t.values[population].mean(0).astype(np.float32)  # (Dv,)

            cached = None
        else:
            population, mean_value = t.live_slots(), t.value_mean
            sampled = tail_samples < len(population)
            cached = t.tail_sample(tail_samples, self._tail_rng) if sampled else None
        log_mass, value = srch.tail_estimate(
            view,
            q,
            slots,
            population,
            n_samples=tail_samples,
            rng=self._tail_rng,
            mean_value=mean_value,
            cached=cached,
        )
        return dataclasses.replace(result, tail_log_mass=log_mass, tail_value=value)

    # ---- lifecycle --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._dropped:
            raise NotFound(f"bank {self.name!r} was dropped", field="bank")
        if self._closed:
            raise FailedPrecondition(f"bank {self.name!r} is closed", field="bank")

    def close(self, *, snapshot_if_needed: bool = True, dropped: bool = False) -> None:
        """Snapshot if the log holds records (and settings allow; a failed snapshot is
        logged, the log stays), fsync and close the log, release the lock. Idempotent."""
        with self._write_mutex:
            if self._closed:
                return
            lifecycle.close_locked(self, snapshot_if_needed=snapshot_if_needed, dropped=dropped)
