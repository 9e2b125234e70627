"""A bank's files: its directory lock, its write-ahead log, and taking snapshots.

A snapshot that fails for lack of disk space (or any other ``OSError``) is not fatal
where the log already holds everything: after an automatic snapshot and on close it
is logged and the bank goes on (or closes) with its log as the durable copy.
"""

from __future__ import annotations

import logging
from pathlib import Path

from memnet.errors import ResourceExhausted
from memnet.store import snapshot
from memnet.store.diskfull import disk_full_as_resource_exhausted
from memnet.store.locks import DirLock
from memnet.store.records import Record
from memnet.store.state import BankState
from memnet.store.types import StoreSettings
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
    ) -> None:
        self.directory = directory
        self.name = name
        self._lock = lock
        self._wal = wal
        self._settings = settings
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

    def sync(self) -> None:
        """fsync the log if anything is unsynced (the INTERVAL policy's timer calls this)."""
        if not self._closed:
            self._wal.sync()

    def wants_snapshot(self) -> bool:
        return self._wal.record_bytes >= self._settings.snapshot_after_log_bytes

    def snapshot(self, state: BankState) -> None:
        """Write a snapshot of ``state``, start a new empty log, drop older logs and snapshots."""
        seq = state.last_seq
        directory = self.directory
        snapshot.write(directory, seq, state.table, state.index, trained=state.trained)
        path = log_path(directory, seq)
        if self._wal.path != path:
            old = self._wal
            s = self._settings
            with disk_full_as_resource_exhausted(f"cannot start log {path.name} of {self.name}"):
                self._wal = WriteAheadLog(path, policy=s.fsync, interval_ms=s.fsync_interval_ms)
            old.close()
        for p in directory.glob("wal-*.log"):
            if p != path:
                p.unlink()
        snapshot.remove_older(directory, seq)

    def try_snapshot(self, state: BankState, when: str) -> bool:
        """``snapshot``, logging (not raising) a failure to write; True if it was taken."""
        try:
            self.snapshot(state)
        except (OSError, ResourceExhausted) as err:
            LOG.error(
                "bank %s: snapshot %s failed, the log alone keeps the data durable: %s",
                self.name,
                when,
                err,
            )
            return False
        return True

    def close(self, state: BankState | None) -> None:
        """Snapshot ``state`` if given and the log holds records (and settings allow), then
        always close the log and release the directory lock, even if either step fails."""
        try:
            if (
                state is not None
                and self._settings.snapshot_on_close
                and self._wal.record_bytes > 0
            ):
                self.try_snapshot(state, "on close")
        finally:
            self._closed = True
            try:
                self._wal.close()
            finally:
                self._lock.release()
