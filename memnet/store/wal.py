"""The write-ahead log: append framed, checksummed records with an fsync policy.

The frame format and reading a log back (past damage) are in ``frames``; which log is
active and how much of it was fsynced is in ``logstate``; what opening a bank does
with a damaged log is in ``recovery``. Every change to a log file goes through the
file-system layer (``fs``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from memnet.store import fs
from memnet.store.diskfull import disk_full_error, is_disk_full
from memnet.store.frames import MAGIC, frame, scan
from memnet.store.records import Record
from memnet.store.types import FsyncPolicy

LOG = logging.getLogger(__name__)

monotonic = time.monotonic  # the clock of the INTERVAL policy (tests may replace it)


def fsync_dir(path: Path) -> None:
    fs.get().fsync_dir(path)


@dataclass
class ReplayResult:
    """The whole records of a log up to its first damage (if any)."""

    records: list[Record]
    starts: list[int]  # byte offset of each record's frame
    valid_bytes: int  # end of the last whole frame before the first damage
    bytes_cut: int  # bytes from there to the end of the file
    reason: str  # what the first damage is ("" = none)


def read_log(path: Path) -> ReplayResult:
    """Decode the whole records of ``path`` before its first damaged byte (if any)."""
    scanned = scan(path)
    first_bad = scanned.damage[0].start if scanned.damage else scanned.size
    frames = [f for f in scanned.frames if f.end <= first_bad]
    valid = frames[-1].end if frames else min(len(MAGIC), first_bad)
    reason = scanned.damage[0].reason if scanned.damage else ""
    return ReplayResult(
        [f.record for f in frames], [f.start for f in frames], valid, scanned.size - valid, reason
    )


def cut_log(path: Path, valid_bytes: int) -> None:
    """Truncate ``path`` to ``valid_bytes`` (re-writing the header if it was torn) and fsync."""
    layer = fs.get()
    fd = layer.open(path, os.O_WRONLY)
    try:
        layer.ftruncate(fd, valid_bytes)
        if valid_bytes < len(MAGIC):
            layer.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            fs.write_all(fd, MAGIC)
        layer.fsync(fd)
    finally:
        layer.close(fd)


class WriteAheadLog:
    """Appends records to one log file and makes them durable according to ``policy``.

    ``append`` writes the frame with one ``writev`` (the OS has it once the call
    returns, so a process crash cannot lose it) and then fsyncs: always (one
    fsync per record = group commit of the whole batch), or at most every
    ``interval_ms`` (the store's flusher thread syncs the rest), or never.
    """

    def __init__(self, path: Path, *, policy: FsyncPolicy, interval_ms: int) -> None:
        self.path = path
        self.policy = policy
        self.interval_s = interval_ms / 1000.0
        layer = fs.get()
        new = not path.exists()
        self._fd = layer.open(path, fs.APPEND_FLAGS)
        if new or os.fstat(self._fd).st_size == 0:
            try:
                fs.write_all(self._fd, MAGIC)
                layer.fsync(self._fd)
                layer.fsync_dir(path.parent)
            except BaseException:
                layer.close(self._fd)
                if new:
                    path.unlink(missing_ok=True)
                raise
        self.size_bytes = os.fstat(self._fd).st_size
        self.synced_bytes = self.size_bytes if new else 0  # fsynced as far as this object knows
        self._dirty = not new
        self._last_sync_s = monotonic()
        # when the oldest record in this log was appended (or the log was opened holding some)
        self.oldest_record_s: float | None = None if self.record_bytes == 0 else monotonic()
        self._sync_lock = threading.Lock()

    @property
    def record_bytes(self) -> int:
        """Bytes of records (not counting the header)."""
        return self.size_bytes - len(MAGIC)

    def oldest_record_age_s(self) -> float | None:
        """Seconds since the oldest record in this log was appended (None: it has none)."""
        oldest = self.oldest_record_s
        return None if oldest is None else monotonic() - oldest

    def append(self, record: Record) -> None:
        buffers = frame(record)
        total = sum(len(b) for b in buffers)
        start = self.size_bytes
        layer = fs.get()
        try:
            written = layer.writev(self._fd, buffers)
            if written < total:  # a short write: send the rest
                fs.write_all(self._fd, b"".join(bytes(b) for b in buffers)[written:])
            self.size_bytes = start + total
            self._dirty = True
            if self.oldest_record_s is None:
                self.oldest_record_s = monotonic()
            if self.policy is FsyncPolicy.ALWAYS or (
                self.policy is FsyncPolicy.INTERVAL
                and monotonic() - self._last_sync_s >= self.interval_s
            ):
                self.sync()
        except BaseException as err:
            # Not acknowledged, so it must not be replayed: drop the frame (whole or half)
            # before anything is appended after it.
            layer.ftruncate(self._fd, start)
            self.size_bytes = start
            if isinstance(err, OSError) and is_disk_full(err):
                raise disk_full_error(err, f"cannot append to {self.path.name}") from err
            raise

    def sync(self) -> None:
        """fsync if anything was appended since the last fsync."""
        with self._sync_lock:
            if self._dirty and self._fd >= 0:
                self._dirty = False
                size = self.size_bytes
                fs.get().fsync(self._fd)
                self.synced_bytes = size
                self._last_sync_s = monotonic()

    def close(self) -> None:
        """fsync what is unsynced, then close the file, even if the fsync fails."""
        try:
            self.sync()
        finally:
            with self._sync_lock:  # the flusher thread may be about to fsync this file
                if self._fd >= 0:
                    fs.get().close(self._fd)
                    self._fd = -1


def log_files(directory: Path) -> list[tuple[int, Path]]:
    """``wal-<seq>.log`` files sorted by the sequence number they start after."""
    found = []
    for p in directory.glob("wal-*.log"):
        try:
            found.append((int(p.stem.split("-", 1)[1]), p))
        except ValueError:
            continue
    return sorted(found)


def log_path(directory: Path, after_seq: int) -> Path:
    return directory / f"wal-{after_seq:020d}.log"
