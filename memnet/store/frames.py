"""Log frames: how records sit in a log file, and reading a file back frame by frame,
past any damage.

Format 2 (written now): the 8-byte magic ``MNWAL\\0\\2\\n``, then frames of a 32-byte
header and a payload (``records.encode``)::

    <4s marker "\\xc3MNF"><u32 length><u64 first_seq><u64 last_seq><u32 crc32c(payload)>
    <u32 crc32c(the 28 header bytes before it)> payload

The marker lets a reader find the next frame after damage with ``bytes.find``; the
header checksum tells a real frame from a marker that happens to sit in a payload;
the sequence numbers in the header say which records a damaged payload held.

Format 1 (read only): the magic ``MNWAL\\0\\1\\n``, then ``<u32 length><u32 zlib.crc32(payload)>
payload``. After damage, candidate frame starts are found with numpy (a length that
fits, a record type byte) and confirmed by their checksum.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memnet.store.checksum import crc32c
from memnet.store.records import Record, RecordError, decode, encode, seq_range

MAGIC = b"MNWAL\x00\x02\n"
MAGIC_V1 = b"MNWAL\x00\x01\n"
MAGIC_BYTES = len(MAGIC)
MARKER = b"\xc3MNF"
_HEAD = struct.Struct("<4sIQQII")
_HEAD_V1 = struct.Struct("<II")
HEADER_BYTES = _HEAD.size
MAX_RECORD_BYTES = 1 << 31
_MIN_PAYLOAD_V1 = 17  # the smallest record (a clear): <B Q q>
_V1_CHUNK = 1 << 20  # candidate offsets examined at once (~24 MiB of numpy temporaries)


def frame(record: Record) -> list[bytes | memoryview]:
    """Header and payload buffers of ``record`` as one format-2 frame (for ``writev``)."""
    payload = encode(record)
    length = 0
    crc = 0
    for part in payload:
        crc = crc32c(part, crc)
        length += len(part)
    first, last = seq_range(record)
    head = struct.pack("<4sIQQI", MARKER, length, first, last, crc)
    return [head + struct.pack("<I", crc32c(head)), *payload]


@dataclass(frozen=True)
class Frame:
    start: int  # byte offset of its header
    end: int  # byte offset just past its payload
    record: Record


@dataclass(frozen=True)
class Damage:
    """Bytes ``[start, end)`` of a log that hold no whole frame."""

    start: int
    end: int
    reason: str
    seqs: tuple[int, int] | None = None  # the records a surviving header said it held

    @property
    def bytes(self) -> int:
        return self.end - self.start


@dataclass
class LogScan:
    """Every whole frame of one log file and every damaged byte range, in file order."""

    path: Path
    size: int
    version: int  # 1 or 2; 2 when the magic itself is damaged
    frames: list[Frame] = field(default_factory=list)
    damage: list[Damage] = field(default_factory=list)

    @property
    def tail_damage(self) -> Damage | None:
        """The damage that runs to the end of the file with no whole frame after it."""
        if self.damage and self.damage[-1].end == self.size:
            last = self.damage[-1]
            if not self.frames or self.frames[-1].end <= last.start:
                return last
        return None

    @property
    def valid_bytes(self) -> int:
        """Where a cut of the tail damage leaves the file."""
        tail = self.tail_damage
        return self.size if tail is None else tail.start


def scan(path: Path) -> LogScan:
    """Read ``path``: whole frames, and the damaged ranges between and after them."""
    return scan_bytes(path, path.read_bytes())


def scan_bytes(path: Path, data: bytes) -> LogScan:
    size = len(data)
    if size < MAGIC_BYTES and (MAGIC.startswith(data) or MAGIC_V1.startswith(data)):
        result = LogScan(path, size, 2)
        if size:
            result.damage.append(Damage(0, size, "torn log header"))
        return result
    magic = data[:MAGIC_BYTES]
    version = 1 if magic == MAGIC_V1 else 2
    result = LogScan(path, size, version)
    reader = _ReaderV1(data) if version == 1 else _ReaderV2(data)
    pos = MAGIC_BYTES
    if magic not in (MAGIC, MAGIC_V1):
        pos = reader.resync(1)
        result.damage.append(Damage(0, pos, "bad log magic"))
    while pos < size:
        got = reader.frame_at(pos)
        if isinstance(got, Frame):
            result.frames.append(got)
            pos = got.end
            continue
        reason, seqs = got
        end = reader.resync(pos + 1)
        result.damage.append(Damage(pos, end, reason, seqs))
        pos = end
    return result


_Bad = tuple[str, tuple[int, int] | None]


class _ReaderV2:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.view = memoryview(data)

    def frame_at(self, pos: int) -> Frame | _Bad:
        data, size = self.data, len(self.data)
        if pos + HEADER_BYTES > size:
            return f"torn frame header at byte {pos}", None
        marker, length, first, last, crc, head_crc = _HEAD.unpack_from(data, pos)
        if marker != MARKER or crc32c(self.view[pos : pos + HEADER_BYTES - 4]) != head_crc:
            return f"bad frame header at byte {pos}", None
        seqs = (first, last)
        start = pos + HEADER_BYTES
        if start + length > size:
            left = size - start
            return f"torn record at byte {pos} (length {length}, {left} bytes left)", seqs
        payload = self.view[start : start + length]
        if crc32c(payload) != crc:
            return f"checksum mismatch at byte {pos}", seqs
        try:
            record = decode(payload)
        except RecordError as err:
            return f"undecodable record at byte {pos}: {err}", seqs
        if seq_range(record) != seqs:
            return f"record at byte {pos} does not match its header's seqs", seqs
        return Frame(pos, start + length, record)

    def resync(self, pos: int) -> int:
        """Offset of the next whole frame at or after ``pos``, else the file size."""
        while (found := self.data.find(MARKER, pos)) >= 0:
            if isinstance(self.frame_at(found), Frame):
                return found
            pos = found + 1
        return len(self.data)


class _ReaderV1:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.view = memoryview(data)

    def frame_at(self, pos: int) -> Frame | _Bad:
        size = len(self.data)
        if pos + _HEAD_V1.size > size:
            return f"torn frame header at byte {pos}", None
        length, crc = _HEAD_V1.unpack_from(self.data, pos)
        start = pos + _HEAD_V1.size
        if length > MAX_RECORD_BYTES or start + length > size:
            return f"torn record at byte {pos} (length {length}, {size - start} bytes left)", None
        payload = self.view[start : start + length]
        if zlib.crc32(payload) != crc:
            return f"checksum mismatch at byte {pos}", None
        try:
            return Frame(pos, start + length, decode(payload))
        except RecordError as err:
            return f"undecodable record at byte {pos}: {err}", None

    def resync(self, pos: int) -> int:
        """Offset of the next whole frame at or after ``pos``, else the file size.

        Candidates: offsets whose length field fits in the file and whose payload starts
        with a record type byte (1, 2 or 3); each is confirmed by its checksum.
        """
        size = len(self.data)
        if pos + _HEAD_V1.size + _MIN_PAYLOAD_V1 > size:
            return size
        raw = np.frombuffer(self.data, np.uint8)
        limit = size - _HEAD_V1.size - _MIN_PAYLOAD_V1 + 1
        for chunk in range(pos, limit, _V1_CHUNK):
            offsets = np.arange(chunk, min(chunk + _V1_CHUNK, limit), dtype=np.int64)
            lengths = (
                raw[offsets].astype(np.int64)
                | raw[offsets + 1].astype(np.int64) << 8
                | raw[offsets + 2].astype(np.int64) << 16
                | raw[offsets + 3].astype(np.int64) << 24
            )  # (n,) the u32 length field at each offset
            kinds = raw[offsets + _HEAD_V1.size]
            fits = (lengths >= _MIN_PAYLOAD_V1) & (offsets + _HEAD_V1.size + lengths <= size)
            for candidate in offsets[fits & (kinds >= 1) & (kinds <= 3)].tolist():
                if isinstance(self.frame_at(candidate), Frame):
                    return int(candidate)
        return size
