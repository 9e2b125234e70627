"""The write-ahead log: framed, checksummed records; append with fsync policy; replay with tail cut.

File layout: an 8-byte magic, then frames ``<I length><I crc32(payload)> payload``.
A frame is whole when its header and ``length`` payload bytes are present and
the CRC matches. Replay stops at the first frame that is not whole and cuts the
file back to the end of the last whole frame (a torn write from a crash, or
garbage); the cut is reported and logged with its byte count.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from memnet.store.diskfull import disk_full_error, is_disk_full
from memnet.store.records import Record, RecordError, decode, encode
from memnet.store.types import FsyncPolicy

LOG = logging.getLogger(__name__)

MAGIC = b"MNWAL\x00\x01\n"
_FRAME = struct.Struct("<II")
MAX_RECORD_BYTES = 1 << 31


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class ReplayResult:
    records: list[Record]
    starts: list[int]  # byte offset of each record's frame
    valid_bytes: int  # end of the last whole frame
    bytes_cut: int
    reason: str


def read_log(path: Path) -> ReplayResult:
    """Decode every whole record of ``path``; report (but do not cut) a torn or corrupt tail."""
    data = path.read_bytes()
    if len(data) < len(MAGIC):
        reason = "torn log header" if data else ""
        return ReplayResult([], [], 0, len(data), reason)
    if data[: len(MAGIC)] != MAGIC:
        return ReplayResult([], [], 0, len(data), "bad log magic")
    view = memoryview(data)
    pos = len(MAGIC)
    records: list[Record] = []
    starts: list[int] = []
    reason = ""
    while pos < len(data):
        if pos + _FRAME.size > len(data):
            reason = f"torn frame header at byte {pos}"
            break
        length, crc = _FRAME.unpack_from(view, pos)
        start = pos + _FRAME.size
        if length > MAX_RECORD_BYTES or start + length > len(data):
            reason = f"torn record at byte {pos} (length {length}, {len(data) - start} bytes left)"
            break
        payload = view[start : start + length]
        if zlib.crc32(payload) != crc:
            reason = f"checksum mismatch at byte {pos}"
            break
        try:
            records.append(decode(payload))
            starts.append(pos)
        except RecordError as err:
            reason = f"undecodable record at byte {pos}: {err}"
            break
        pos = start + length
    return ReplayResult(records, starts, pos, len(data) - pos, reason)


def cut_log(path: Path, valid_bytes: int) -> None:
    """Truncate ``path`` to ``valid_bytes`` (re-writing the header if it was torn) and fsync."""
    with open(path, "r+b") as f:
        f.truncate(valid_bytes)
        if valid_bytes == 0:
            f.write(MAGIC)
        f.flush()
        os.fsync(f.fileno())


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
        new = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if new or os.fstat(self._fd).st_size == 0:
            try:
                os.write(self._fd, MAGIC)
                os.fsync(self._fd)
                fsync_dir(path.parent)
            except BaseException:
                os.close(self._fd)
                if new:
                    path.unlink(missing_ok=True)
                raise
        self.size_bytes = os.fstat(self._fd).st_size
        self._dirty = False
        self._last_sync_s = time.monotonic()
        self._sync_lock = threading.Lock()

    @property
    def record_bytes(self) -> int:
        """Bytes of records (not counting the header)."""
        return self.size_bytes - len(MAGIC)

    def append(self, record: Record) -> None:
        payload = encode(record)
        length = sum(len(p) for p in payload)
        crc = 0
        for p in payload:
            crc = zlib.crc32(p, crc)
        buffers: list[bytes | memoryview] = [_FRAME.pack(length, crc), *payload]
        total = _FRAME.size + length
        start = self.size_bytes
        try:
            written = os.writev(self._fd, buffers)
            while written < total:  # a short write: send the rest
                rest = b"".join(bytes(b) for b in buffers)[written:]
                written += os.write(self._fd, rest)
            self.size_bytes = start + total
            self._dirty = True
            if self.policy is FsyncPolicy.ALWAYS or (
                self.policy is FsyncPolicy.INTERVAL
                and time.monotonic() - self._last_sync_s >= self.interval_s
            ):
                self.sync()
        except BaseException as err:
            # Not acknowledged, so it must not be replayed: drop the frame (whole or half)
            # before anything is appended after it.
            os.ftruncate(self._fd, start)
            self.size_bytes = start
            if isinstance(err, OSError) and is_disk_full(err):
                raise disk_full_error(err, f"cannot append to {self.path.name}") from err
            raise

    def sync(self) -> None:
        """fsync if anything was appended since the last fsync."""
        with self._sync_lock:
            if self._dirty and self._fd >= 0:
                self._dirty = False
                os.fsync(self._fd)
                self._last_sync_s = time.monotonic()

    def close(self) -> None:
        """fsync what is unsynced, then close the file, even if the fsync fails."""
        try:
            self.sync()
        finally:
            with self._sync_lock:  # the flusher thread may be about to fsync this file
                if self._fd >= 0:
                    os.close(self._fd)
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
