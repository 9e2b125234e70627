"""Memories as Milvus rows and back, with the limits Milvus adds to the store's own.

Milvus's VARCHAR holds at most 65,535 bytes (one less than the store's default text
limit) and its JSON integers are 64-bit; source vectors are kept as base64 text and
so hold at most 12,287 floats. A write past any of these is refused before anything
is sent, naming the field and the limit.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from memnet.errors import InvalidArgument
from memnet.store.types import JsonObject, MemoryRecord
from memnet.store.validation import CleanBatch
from memnet.store_milvus.expressions import INT64_MAX, INT64_MIN, string_literal
from memnet.store_milvus.schema import ID_MAX_BYTES, SOURCE_MAX_FLOATS, TEXT_MAX_BYTES

UPSERT_CHUNK_BYTES = 8 << 20  # rows per Milvus upsert request, by estimated size

Row = dict[str, Any]


def _check_ints(value: object) -> bool:
    """True if every integer in a JSON value fits 64 bits (no recursion)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            return False
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def check_for_milvus(clean: CleanBatch) -> None:
    """InvalidArgument if a validated batch holds what Milvus cannot store."""
    for mid in clean.ids:
        if mid is None:
            continue
        if len(mid.encode("utf-8")) > ID_MAX_BYTES:
            raise InvalidArgument(
                f"ids entry is longer than {ID_MAX_BYTES} bytes (the milvus store's limit)",
                field="ids",
            )
        string_literal(mid, field="ids")  # ids must be expressible in a Milvus filter
    for text in clean.texts or ():
        if text is not None and len(text.encode("utf-8")) > TEXT_MAX_BYTES:
            raise InvalidArgument(
                f"texts entry exceeds {TEXT_MAX_BYTES} bytes (Milvus's VARCHAR limit)",
                field="texts",
            )
    if clean.sources is not None and clean.sources.shape[1] > SOURCE_MAX_FLOATS:
        raise InvalidArgument(
            f"source_vectors rows hold {clean.sources.shape[1]} floats; the milvus store "
            f"keeps at most {SOURCE_MAX_FLOATS}",
            field="source_vectors",
        )
    for meta in clean.metadata or ():
        if not _check_ints(meta):
            raise InvalidArgument(
                "metadata holds an integer beyond 64 bits, which Milvus's JSON cannot store",
                field="metadata",
            )


def to_rows(ids: Sequence[str], clean: CleanBatch, *, first_seq: int, written_ns: int) -> list[Row]:
    """One Milvus row per memory, seqs ``first_seq``, ``first_seq + 1``, ..."""
    rows = []
    for i, mid in enumerate(ids):
        source = ""
        if clean.sources is not None:
            raw = np.ascontiguousarray(clean.sources[i], dtype="<f4").tobytes()
            source = base64.b64encode(raw).decode("ascii")
        rows.append(
            {
                "id": mid,
                "key": clean.keys[i],
                "value": clean.values[i],
                "seq": first_seq + i,
                "written_ns": written_ns,
                "text": clean.texts[i] if clean.texts is not None else None,
                "source": source,
                "metadata": clean.metadata[i] if clean.metadata is not None else {},
            }
        )
    return rows


def chunks(rows: list[Row], *, row_bytes: int) -> Iterator[list[Row]]:
    """``rows`` in requests of at most ~UPSERT_CHUNK_BYTES each."""
    per_chunk = max(1, UPSERT_CHUNK_BYTES // max(row_bytes, 1))
    for start in range(0, len(rows), per_chunk):
        yield rows[start : start + per_chunk]


def vector(row: Row, name: str) -> np.ndarray:
    return np.asarray(row[name], dtype=np.float32)


def metadata_of(row: Row) -> JsonObject:
    meta = row.get("metadata")
    return meta if isinstance(meta, dict) else {}


def record(row: Row) -> MemoryRecord:
    source = row.get("source") or ""
    return MemoryRecord(
        id=row["id"],
        key=vector(row, "key"),
        value=vector(row, "value"),
        text=row.get("text"),
        source_vector=np.frombuffer(base64.b64decode(source), dtype="<f4").astype(np.float32)
        if source
        else None,
        metadata=dict(metadata_of(row)),
        seq=int(row["seq"]),
        written_at_ns=int(row["written_ns"]),
    )
