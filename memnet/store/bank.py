"""One memory bank: validated writes logged then applied, searches under a read lock.

Write path (serialised per bank by ``_write_mutex``): validate → plan ids, replacements
and evictions (and, when this write makes an untrained index trainable, train a new
index: a failure refuses the write before anything is logged) → append to the log
and fsync (searches keep running) → take the exclusive lock only to commit the record
to the state → maintenance (fill the trained index, compact, snapshot). Searches,
gets and gathers take the shared lock and read the current ``BankState``.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import faiss
import numpy as np

from memnet.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
)
from memnet.store import reindex, validation
from memnet.store import state as st
from memnet.store.bank_reads import BankReads, check_batch_key_space
from memnet.store.diskfull import disk_full_as_resource_exhausted
from memnet.store.lifecycle import BankFiles
from memnet.store.locks import DirLock, RWLock
from memnet.store.records import ClearRecord, DeleteRecord, Record, WriteRecord
from memnet.store.recovery import maintained, recover
from memnet.store.reindex import ReindexSession
from memnet.store.types import (
    BankConfig,
    CapacityPolicy,
    MemoryBatch,
    RecoveryReport,
    StoreSettings,
    WriteMode,
    WriteResult,
)
from memnet.store.vectors import generate_missing_ids

LOG = logging.getLogger(__name__)

CONFIG_FILE = "config.json"


class Bank(BankReads):
    """A named set of memories: FAISS index + float32 arrays + write-ahead log + snapshots.

    Its reads (``get``, ``contents``, ``gather``, ``list``, ``search``) are in ``BankReads``.
    """

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
        self.config = recovered.config
        self._state = recovered.state
        self._reindex: ReindexSession | None = None  # the running reindex's tap
        self.interrupted_reindex = reindex.read_intent(directory)  # target, if one was cut off
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

    def searchable_now(self) -> bool:
        """Whether a search would start without waiting for a write to commit (a hint)."""
        return self._rw.readable_now()

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
        config = self.config
        clean = validation.batch(batch, config, self._limits)
        with self._write_mutex:
            self._check_open()
            check_batch_key_space(batch.key_space, self.config)
            if self.config is not config:  # a reindex switched the bank meanwhile
                clean = validation.batch(batch, self.config, self._limits)
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
        if self._reindex is not None:
            self._reindex.queue(record)

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
            self._files.try_snapshot(self._state, self.config, "after a long log")

    def snapshot_if_due(self) -> None:
        """Snapshot when the log is past its size or age limit (the store's timer calls this)."""
        with self._write_mutex:
            if not self._closed and self._files.wants_snapshot():
                self._files.try_snapshot(self._state, self.config, "after an old log")

    def rebuild_index(self) -> None:
        """Rebuild arrays and index from the live memories (compaction)."""
        with self._write_mutex:
            self._check_open()
            fresh = st.rebuilt(self._state, self.config)
            with self._rw.write():
                self._state = fresh

    def snapshot(self) -> None:
        """Write a snapshot and start a new, empty log."""
        with self._write_mutex:
            self._check_open()
            self._files.snapshot(self._state, self.config)

    def flush(self) -> None:
        """fsync the log if anything is unsynced (the INTERVAL policy's timer calls this)."""
        if not self._closed:
            self._files.sync()

    # ---- reindex ----------------------------------------------------------------------

    def start_reindex(self, target: BankConfig) -> ReindexSession:
        """Begin re-encoding into ``target`` (another model version): copy the live
        memories, queue every later record to the session, record the intent durably.
        FailedPrecondition if one is already running or ``target`` changes more than the
        model."""
        reindex.check_target(self.config, target)
        with self._write_mutex:
            self._check_open()
            if self._reindex is not None:
                raise FailedPrecondition(
                    f"bank {self.name!r} is already being reindexed", field="bank"
                )
            with disk_full_as_resource_exhausted(f"cannot start a reindex of {self.name!r}"):
                reindex.write_intent(self.directory, target)
            with self._rw.read():
                rows = reindex.LiveRows.of(self._state.table)
            session = ReindexSession(target=target, rows=rows, start_seq=self._state.last_seq)
            self._reindex = session
            self.interrupted_reindex = None
            return session

    def finish_reindex(
        self,
        session: ReindexSession,
        reencode: Callable[[builtins.list[Record]], builtins.list[Record]],
    ) -> None:
        """Switch the bank to the session's state: apply the last queued records
        (``reencode`` turns them into the target's key space), make a snapshot of the new
        state and configuration durable, then swap them in. On any failure the bank
        stays as it was and the session ends."""
        with self._write_mutex:
            self._check_open()
            if self._reindex is not session or session.cancelled.is_set():
                raise FailedPrecondition(
                    f"the reindex of {self.name!r} was cancelled", field="bank"
                )
            try:
                for record in reencode(session.take_queued()):
                    session.apply(record)
                self._files.snapshot(session.state, session.target)
            except BaseException:
                self._end_reindex(session)
                raise
            with self._rw.write():
                self._state, self.config = session.state, session.target
            self._end_reindex(session)
            LOG.info("bank %s: switched to %s", self.name, self.config.key_space)

    def cancel_reindex(self, session: ReindexSession | None = None) -> bool:
        """Stop the running reindex (``session``, or whichever runs); False if none ran."""
        with self._write_mutex:
            running = self._reindex
            if running is None or (session is not None and running is not session):
                return False
            self._end_reindex(running)
            return True

    def _end_reindex(self, session: ReindexSession) -> None:
        """Detach the session and forget its intent (write mutex held)."""
        session.cancelled.set()
        self._reindex = None
        try:
            reindex.clear_intent(self.directory)
        except OSError as err:
            LOG.error("bank %s: cannot remove the reindex intent file: %s", self.name, err)

    def forget_interrupted_reindex(self) -> None:
        """Drop the intent of a reindex a restart cut off (it will not be resumed)."""
        with self._write_mutex:
            if self._reindex is None:
                reindex.clear_intent(self.directory)
            self.interrupted_reindex = None

    # ---- lifecycle --------------------------------------------------------------------

    def close(self, *, snapshot_if_needed: bool = True, dropped: bool = False) -> None:
        """Snapshot if the log holds records (and settings allow; a failed snapshot is
        logged, the log stays), fsync and close the log, release the lock. Idempotent."""
        with self._write_mutex:
            if self._closed:
                return
            if self._reindex is not None:
                self._reindex.cancelled.set()
                self._reindex = None  # the intent file stays: a restart resumes it
            try:
                self._files.close(self._state if snapshot_if_needed else None, self.config)
            finally:
                with self._rw.write():
                    self._closed = True
                    self._dropped = dropped
