"""One memory bank: validated writes logged then applied, searches under a read lock.

Write path (serialised per bank by ``_write_mutex``): validate → plan ids, replacements
and evictions (and, when this write makes an untrained index trainable, train a new
index: a failure refuses the write before anything is logged) → append to the log
and fsync (searches keep running) → take the exclusive lock only to commit the record
to the state → maintenance (fill the trained index, compact, snapshot). Searches,
gets and gathers take the shared lock and read the current ``BankState``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from memnet.core.search_options import SearchOptions
from memnet.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from memnet.store import search as srch
from memnet.store import state as st
from memnet.store import validation
from memnet.store.lifecycle import BankFiles
from memnet.store.locks import DirLock, RWLock
from memnet.store.records import ClearRecord, DeleteRecord, Record, WriteRecord
from memnet.store.recovery import maintained, recover
from memnet.store.types import (
    BankConfig,
    CapacityPolicy,
    MemoryBatch,
    MemoryContent,
    MemoryRecord,
    RecoveryReport,
    SearchResult,
    StoreSettings,
    WriteMode,
    WriteResult,
)
from memnet.store.vectors import generate_missing_ids

LOG = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


class Bank:
    """A named set of memories: FAISS index + float32 arrays + write-ahead log + snapshots."""

    def __init__(self, directory: Path, config: BankConfig, settings: StoreSettings) -> None:
        """Open the bank in ``directory``: lock it, load its snapshot, replay its log."""
        self.config = config
        self.directory = directory
        self._limits = settings.limits
        self._settings = settings
        self._rw = RWLock()
        self._write_mutex = threading.Lock()
        self._closed = False
        self._dropped = False
        self._tail_rng = np.random.default_rng()  # samples for tail estimates (thread-safe)
        lock = DirLock(directory, what=f"bank {config.name!r}")
        try:
            recovered = recover(directory, config, settings)
        except BaseException:
            lock.release()
            raise
        self._state = recovered.state
        self._files = BankFiles(
            directory,
            name=config.name,
            lock=lock,
            wal=recovered.wal,
            settings=settings,
            log_records=recovered.report.records_replayed,
        )
        self.recovery: RecoveryReport = recovered.report
        with self._write_mutex:
            self._maintain()

    # ---- properties -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def last_seq(self) -> int:
        return self._state.last_seq

    @property
    def index_error(self) -> str:
        """Why the index is not in use although it should be ("" when all is well)."""
        return self._state.index_error

    @property
    def state(self) -> st.BankState:
        """The current in-memory state, for inspection only (the bank alone changes it)."""
        return self._state

    @property
    def files(self) -> BankFiles:
        """The bank's log and snapshots (for inspection; the bank serialises changes)."""
        return self._files

    def count(self) -> int:
        with self._rw.read():
            self._check_open()
            return self._state.table.n_live

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
            state = self._state
            t = state.table
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
                first_seq=state.last_seq + 1,
                written_at_ns=time.time_ns(),
                ids=ids,
                keys=clean.keys,
                values=clean.values,
                sources=clean.sources,
                texts=clean.texts,
                metadata=clean.metadata,
                evicted=evicted,
            )
            prepared = st.prepare(state, record, self.config)
            index = self._train_for(state, prepared, n_new - len(evicted))
            self._commit(prepared)
            self._maintain(trained_index=index)
        return WriteResult(ids, record.last_seq, n_new, len(existing), evicted)

    def _plan_eviction(self, n_new: int, replacing: set[str]) -> list[str]:
        cap = self.config.capacity
        t = self._state.table
        if cap is None or t.n_live + n_new <= cap:
            return []
        what = f"bank {self.name!r} holds {t.n_live} of capacity {cap}; {n_new} new memories"
        if self.config.capacity_policy is CapacityPolicy.REJECT or n_new > cap:
            raise ResourceExhausted(f"{what} would exceed capacity {cap}", field="capacity")
        return t.oldest_ids(t.n_live + n_new - cap, exclude=replacing)

    def _train_for(
        self, state: st.BankState, prepared: st.Prepared, added_live: int
    ) -> faiss.Index | None:
        """A trained empty index when this write makes the bank big enough to train one.

        Training runs before the write is logged: if the index cannot be trained, the
        write is refused and nothing is stored.
        """
        if not st.needs_training(state, self.config, extra_live=added_live):
            return None
        t = state.table
        keep = t.alive[: t.n_slots].copy()
        keep[prepared.dead] = False
        assert prepared.new_keys is not None
        keys = np.concatenate(
            [st.index_keys(self.config, t.keys[: t.n_slots][keep]), prepared.new_keys]
        )  # (M', Dk): the live keys after this write
        try:
            return st.trained_index(self.config, keys)
        except Exception as err:  # FAISS raises RuntimeError
            raise FailedPrecondition(
                f"bank {self.name!r}: its index ({self.config.index.kind.value}) cannot be "
                f"trained on {len(keys)} memories ({err}); nothing was written",
                field="index",
            ) from err

    def delete(self, ids: Sequence[str]) -> int:
        """Delete memories by id; unknown ids are ignored. Returns how many were deleted."""
        wanted = validation.id_list(ids, limits=self._limits)
        with self._write_mutex:
            self._check_open()
            state = self._state
            present = list(dict.fromkeys(i for i in wanted if i in state.table.slot_of))
            if not present:
                return 0
            record = DeleteRecord(state.last_seq + 1, time.time_ns(), present)
            self._commit(st.prepare(state, record, self.config))
            self._maintain()
            return len(present)

    def clear(self) -> None:
        """Delete every memory (the bank, its config and its index training remain)."""
        with self._write_mutex:
            self._check_open()
            record = ClearRecord(self._state.last_seq + 1, time.time_ns())
            self._commit(st.prepare(self._state, record, self.config))

    def _commit(self, prepared: st.Prepared) -> None:
        """Log ``prepared.record`` (durable per the fsync policy), then apply it under the
        exclusive lock (write mutex held)."""
        record: Record = prepared.record
        self._files.append(record)
        with self._rw.write():
            self._state = st.commit(self._state, prepared)

    # ---- maintenance ------------------------------------------------------------------

    def _maintain(self, *, trained_index: faiss.Index | None = None) -> None:
        """Fill a newly trained index, train or compact when due, snapshot a long log
        (write mutex held). New states are built off to the side and swapped in."""
        state = self._state
        if trained_index is not None:
            fresh = st.rebuilt(state, self.config, index=trained_index)
        else:
            fresh = maintained(state, self.config, self._settings)
        if fresh is not state:
            with self._rw.write():
                self._state = fresh
        if self._files.wants_snapshot():
            self._files.try_snapshot(self._state, "after a long log")

    def rebuild_index(self) -> None:
        """Rebuild arrays and index from the live memories (compaction)."""
        with self._write_mutex:
            self._check_open()
            fresh = st.rebuilt(self._state, self.config)
            with self._rw.write():
                self._state = fresh

    def snapshot_if_due(self) -> None:
        """Snapshot when the log is past its size or age limit (the store's timer calls this)."""
        with self._write_mutex:
            if not self._closed and self._files.wants_snapshot():
                self._files.try_snapshot(self._state, "after an old log")

    def snapshot(self) -> None:
        """Write a snapshot and start a new, empty log."""
        with self._write_mutex:
            self._check_open()
            self._files.snapshot(self._state)

    def flush(self) -> None:
        """fsync the log if anything is unsynced (the INTERVAL policy's timer calls this)."""
        if not self._closed:
            self._files.sync()

    # ---- reads ------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[MemoryRecord | None]:
        wanted = validation.id_list(ids, limits=self._limits)
        with self._rw.read():
            self._check_open()
            t = self._state.table
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
            t = self._state.table
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
            t = self._state.table
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
            t = self._state.table
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
        k: int | SearchOptions,
        *,
        ef_search: int | None = None,
        nprobe: int | None = None,
        metadata_filter: dict[str, Any] | None = None,
        with_vectors: bool = False,
        tail_samples: int | None = None,
    ) -> SearchResult:
        """Top-k memories for (B, Dk) float32 queries, exactly re-scored, best first.

        ``k`` is either the number of memories per query, with the search knobs as
        keywords, or a ``SearchOptions`` that carries them all (then give no knobs).
        ``tail_samples`` also estimates, per query, log Σ exp(score) over the searched
        memories outside its top-k from that many uniformly sampled ones (exact when it
        covers them all), and the value they read as: what a softmax over the top-k
        needs to account for the rest (``SearchResult.tail_log_mass``, ``tail_value``).
        """
        options = srch.options_of(
            k, ef_search=ef_search, nprobe=nprobe, metadata_filter=metadata_filter,
            tail_samples=tail_samples,
        )  # fmt: skip
        q = validation.search_args(queries, options, self.config, self._limits)
        with self._rw.read():
            self._check_open()
            return srch.search(
                self._state,
                self.config,
                q,
                options.k,
                ef_search=options.ef_search,
                nprobe=options.nprobe,
                metadata_filter=options.filter_dict,
                tail_samples=options.tail_samples,
                with_vectors=with_vectors,
                rng=self._tail_rng,
            )

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
            try:
                self._files.close(self._state if snapshot_if_needed else None)
            finally:
                with self._rw.write():
                    self._closed = True
                    self._dropped = dropped
