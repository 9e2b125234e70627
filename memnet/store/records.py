"""Log record payloads: a fixed little-endian header, a JSON block, then raw float32 bytes.

Records are logical (ids, not slots), so a log replays onto any snapshot layout.

    write:  <B type><Q first_seq><q written_at_ns><I n><I dk><I dv><I ds><I json_len>
            json {"ids", "texts", "meta", "evicted"} | keys (n*dk f4) | values | sources
    delete: <B type><Q seq><q written_at_ns><I json_len> json {"ids"}
    clear:  <B type><Q seq><q written_at_ns>
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from memnet.store.types import JsonObject

WRITE, DELETE, CLEAR = 1, 2, 3
_WRITE_HEAD = struct.Struct("<BQqIIIII")
_DELETE_HEAD = struct.Struct("<BQqI")
_CLEAR_HEAD = struct.Struct("<BQq")
_F32 = np.dtype("<f4")


class RecordError(ValueError):
    """A payload that passed its checksum but does not decode (a bug or a foreign file)."""


@dataclass(frozen=True)
class WriteRecord:
    first_seq: int
    written_at_ns: int
    ids: list[str]
    keys: np.ndarray  # (N, Dk) float32
    values: np.ndarray  # (N, Dv) float32
    sources: np.ndarray | None  # (N, Ds) float32
    texts: list[str | None] | None
    metadata: list[JsonObject] | None
    evicted: list[str]

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.ids) - 1


@dataclass(frozen=True)
class DeleteRecord:
    seq: int
    written_at_ns: int
    ids: list[str]

    @property
    def last_seq(self) -> int:
        return self.seq


@dataclass(frozen=True)
class ClearRecord:
    seq: int
    written_at_ns: int

    @property
    def last_seq(self) -> int:
        return self.seq


Record = WriteRecord | DeleteRecord | ClearRecord


def seq_range(record: Record) -> tuple[int, int]:
    """The first and last sequence numbers ``record`` takes."""
    first = record.first_seq if isinstance(record, WriteRecord) else record.seq
    return first, record.last_seq


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode(record: Record) -> list[bytes | memoryview]:
    """The payload as buffers to hand to ``os.writev`` (vectors are not copied)."""
    if isinstance(record, WriteRecord):
        n, dk = record.keys.shape
        ds = 0 if record.sources is None else int(record.sources.shape[1])
        meta = _json(
            {
                "ids": record.ids,
                "texts": record.texts,
                "meta": record.metadata,
                "evicted": record.evicted,
            }
        )
        head = _WRITE_HEAD.pack(
            WRITE,
            record.first_seq,
            record.written_at_ns,
            n,
            dk,
            record.values.shape[1],
            ds,
            len(meta),
        )
        parts: list[bytes | memoryview] = [head, meta, _raw(record.keys), _raw(record.values)]
        if record.sources is not None:
            parts.append(_raw(record.sources))
        return parts
    if isinstance(record, DeleteRecord):
        body = _json({"ids": record.ids})
        return [_DELETE_HEAD.pack(DELETE, record.seq, record.written_at_ns, len(body)), body]
    return [_CLEAR_HEAD.pack(CLEAR, record.seq, record.written_at_ns)]


def _raw(a: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(a, dtype=_F32).data).cast("B")


def decode(payload: bytes | memoryview) -> Record:
    buf = memoryview(payload)
    if len(buf) < 1:
        raise RecordError("empty payload")
    kind = buf[0]
    try:
        if kind == WRITE:
            _, first, ts, n, dk, dv, ds, jlen = _WRITE_HEAD.unpack_from(buf, 0)
            pos = _WRITE_HEAD.size
            body = json.loads(bytes(buf[pos : pos + jlen]))
            pos += jlen
            keys, pos = _matrix(buf, pos, n, dk)
            values, pos = _matrix(buf, pos, n, dv)
            sources = None
            if ds:
                sources, pos = _matrix(buf, pos, n, ds)
            if pos != len(buf) or len(body["ids"]) != n:
                raise RecordError("write record length mismatch")
            return WriteRecord(
                first,
                ts,
                body["ids"],
                keys,
                values,
                sources,
                body["texts"],
                body["meta"],
                body["evicted"],
            )
        if kind == DELETE:
            _, seq, ts, jlen = _DELETE_HEAD.unpack_from(buf, 0)
            body = json.loads(bytes(buf[_DELETE_HEAD.size : _DELETE_HEAD.size + jlen]))
            return DeleteRecord(seq, ts, body["ids"])
        if kind == CLEAR:
            _, seq, ts = _CLEAR_HEAD.unpack_from(buf, 0)
            return ClearRecord(seq, ts)
    except (struct.error, KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"undecodable record: {err}") from err
    raise RecordError(f"unknown record type {kind}")


def _matrix(buf: memoryview, pos: int, rows: int, cols: int) -> tuple[np.ndarray, int]:
    size = rows * cols * 4
    if pos + size > len(buf):
        raise RecordError("vector block past the end of the record")
    a = np.frombuffer(buf[pos : pos + size], dtype=_F32).reshape(rows, cols)  # (rows, cols)
    return a, pos + size
