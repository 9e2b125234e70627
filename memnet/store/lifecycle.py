"""Snapshotting and closing a bank (its write mutex held), apart from the read/write paths.

A snapshot that fails for lack of disk space (or any other ``OSError``) is not fatal
where the log already holds everything: after an automatic snapshot and on close it
is logged and the bank goes on (or closes) with its log as the durable copy.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from memnet.errors import ResourceExhausted
from memnet.store import snapshot
from memnet.store.diskfull import disk_full_as_resource_exhausted
from memnet.store.wal import WriteAheadLog, log_path

if TYPE_CHECKING:
    from memnet.store.bank import Bank

LOG = logging.getLogger(__name__)


def snapshot_locked(bank: Bank) -> None:
    """Write a snapshot at ``bank.last_seq``, start a new empty log, drop older logs."""
    seq = bank._last_seq
    directory = bank.directory
    snapshot.write(directory, seq, bank._table, bank._index, trained=bank._trained)
    old = bank._wal
    path = log_path(directory, seq)
    if old is None or old.path != path:
        settings = bank._settings
        with disk_full_as_resource_exhausted(f"cannot start log {path.name} of {bank.name}"):
            bank._wal = WriteAheadLog(
                path, policy=settings.fsync, interval_ms=settings.fsync_interval_ms
            )
        if old is not None:
            old.close()
    for p in directory.glob("wal-*.log"):
        if p != path:
            p.unlink()
    snapshot.remove_older(directory, seq)


def try_snapshot_locked(bank: Bank, when: str) -> bool:
    """``snapshot_locked``, logging (not raising) a failure to write; True if it was taken."""
    try:
        snapshot_locked(bank)
    except (OSError, ResourceExhausted) as err:
        LOG.error(
            "bank %s: snapshot %s failed, the log alone keeps the data durable: %s",
            bank.name,
            when,
            err,
        )
        return False
    return True


def close_locked(bank: Bank, *, snapshot_if_needed: bool, dropped: bool) -> None:
    """Snapshot if the log holds records (and settings allow), then always mark the bank
    closed, close its log and release its lock, even if the snapshot or the fsync fails."""
    try:
        wal = bank._wal
        if (
            snapshot_if_needed
            and bank._settings.snapshot_on_close
            and wal is not None
            and wal.record_bytes > 0
        ):
            try_snapshot_locked(bank, "on close")
    finally:
        with bank._rw.write():
            bank._closed = True
            bank._dropped = dropped
        try:
            if bank._wal is not None:
                bank._wal.close()
        finally:
            bank._lock.release()
