"""A bank's files: its directory lock, its write-ahead log, and taking snapshots.

A snapshot that fails for lack of disk space (or any other ``OSError``) is not fatal
where the log already holds everything: after an automatic snapshot and on close it
is logged and the bank goes on (or closes) with its log as the durable copy.
"""

from __future__ import annotations

import logging
from pathlib import Path

from memnet.errors import ResourceExhausted
from memnet.store import fs, logstate, snapshot
from memnet.store.diskfull import disk_full_as_resource_exhausted
from memnet.store.locks import DirLock
from memnet.store.records import Record
from memnet.store.state import BankState
from memnet.store.types import BankConfig, StoreSettings
from memnet.store.wal import WriteAheadLog, log_path

LOG = logging.getLogger(__name__)


class BankFiles:
    """The durable side of one bank. Its owner serialises calls (the bank's write mutex),
    except ``sync``, which the store's flusher thread may call at any time."""

    def __init__(
        self,
        directory: Path,
        *,
        name: str,
        lock: DirLock,
        wal: WriteAheadLog,
        settings: StoreSettings,
        log_records: int = 0,
    ) -> None:
        """``log_records``: records the log already holds (replayed when the bank opened)."""
        self.directory = directory
        self.name = name
        self._lock = lock
        self._wal = wal
        self._settings = settings
        self._log_records = log_records
        self._closed = False

    @property
    def wal(self) -> WriteAheadLog:
        """The log being appended to (replaced when a snapshot rotates it)."""
        return self._wal

    @property
    def log_record_bytes(self) -> int:
        """Bytes of records in the current log (0 right after a snapshot)."""
        return self._wal.record_bytes

    @property
    def log_path(self) -> Path:
        return self._wal.path

    @property
    def log_size_bytes(self) -> int:
        return self._wal.size_bytes

    def append(self, record: Record) -> None:
        """Append ``record`` to the log, durable per the fsync policy when this returns."""
        self._wal.append(record)
        self._log_records += 1

    def sync(self) -> None:
        """fsync the log if anything is unsynced (the INTERVAL policy's timer calls this)."""
        if not self._closed:
            self._wal.sync()

    def wants_snapshot(self) -> bool:
        """True when the log passed ``snapshot_after_log_bytes`` or
        ``snapshot_after_log_records``, or has held records for ``snapshot_after_log_age_s``
        (each bounds how long reopening the bank takes)."""
        wal, s = self._wal, self._settings
        if (
            wal.record_bytes >= s.snapshot_after_log_bytes
            or self._log_records >= s.snapshot_after_log_records
        ):
            return True
        age_s = wal.oldest_record_age_s()
        return age_s is not None and age_s >= s.snapshot_after_log_age_s

    def snapshot(self, state: BankState, config: BankConfig) -> None:
        """Write a snapshot of ``state`` (and the bank's ``config``), start a new empty
        log, drop older logs and snapshots."""
        seq = state.last_seq
        directory = self.directory
        snapshot.write(
            directory, seq, state.table, state.index, trained=state.trained, config=config
        )
        path = log_path(directory, seq)
        if self._wal.path != path:
            old = self._wal
            s = self._settings
            with disk_full_as_resource_exhausted(f"cannot start log {path.name} of {self.name}"):
                self._wal = WriteAheadLog(path, policy=s.fsync, interval_ms=s.fsync_interval_ms)
                logstate.write(directory, logstate.for_new_log(path, self._wal.synced_bytes))
            old.close()
        self._log_records = 0
        for p in directory.glob("wal-*.log"):
            if p != path:
                fs.get().unlink(p)
        snapshot.remove_older(directory, seq)

    def try_snapshot(self, state: BankState, config: BankConfig, when: str) -> bool:
        """``snapshot``, logging (not raising) a failure to write; True if it was taken."""
        try:
            self.snapshot(state, config)
        except (OSError, ResourceExhausted) as err:
            LOG.error(
                "bank %s: snapshot %s failed, the log alone keeps the data durable: %s",
                self.name,
                when,
                err,
            )
            return False
        return True

    def close(self, state: BankState | None, config: BankConfig) -> None:
        """Snapshot ``state`` if given and the log holds records (and settings allow), then
        always close the log and release the directory lock, even if either step fails."""
        try:
            if (
                state is not None
                and self._settings.snapshot_on_close
                and self._wal.record_bytes > 0
            ):
                self.try_snapshot(state, config, "on close")
        finally:
            self._closed = True
            try:
                self._wal.close()
                self._record_synced_size()
            finally:
                self._lock.release()

    def _record_synced_size(self) -> None:
        """Note in ``log-state.json`` how much of the (closed, fsynced) log is on disk."""
        wal = self._wal
        try:
            current = logstate.read(self.directory)
        except logstate.LogStateError:
            current = None
        created = current.created_ns if current is not None and current.log == wal.path.name else 0
        state = logstate.for_new_log(wal.path, wal.synced_bytes)
        if created:
            state = logstate.LogState(wal.path.name, created, wal.synced_bytes)
        try:
            logstate.write(self.directory, state)
        except OSError as err:  # e.g. a full disk: the log itself is closed and whole
            LOG.warning("bank %s: could not record the log's synced size: %s", self.name, err)
