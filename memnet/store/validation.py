"""Checks of every caller-supplied argument, before anything is logged or changed.

Each failure raises a ``memnet.errors`` exception that names the field and the
limit, so a rejected call leaves the bank untouched.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memnet.core.json_values import check_json_depth
from memnet.core.search_options import SearchOptions
from memnet.errors import InvalidArgument
from memnet.store.types import (
    BankConfig,
    JsonObject,
    MemoryBatch,
    Metric,
    StoreLimits,
)

MAX_ECHO_CHARS = 80  # of a caller's value quoted in an error message


def shown(value: object, *, max_chars: int = MAX_ECHO_CHARS) -> str:
    """``repr(value)`` for an error message, cut to ``max_chars`` with the full length noted.

    A message never copies a huge input: gRPC sends it in a header, and a client refuses
    headers past its limit (a 5 MiB bank name became RESOURCE_EXHAUSTED, not NOT_FOUND).
    """
    if isinstance(value, str | bytes) and len(value) > max_chars:
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:max_chars]!r}… ({len(value):,} {unit})"
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300-digit conversion limit
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= max_chars else f"{text[:max_chars]}… ({len(text):,} characters)"


def utf8_size(text: str, *, field: str) -> int:
    """Bytes of ``text`` in UTF-8; InvalidArgument naming ``field`` for a lone surrogate
    (which JSON escapes like ``"\\ud800"`` and Python strings can hold, UTF-8 cannot)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as err:
        raise InvalidArgument(
            f"{field} holds a lone surrogate "
            f"({text[err.start : err.end].encode('unicode_escape').decode()}), "
            "which is not valid Unicode",
            field=field,
        ) from None


@dataclass(frozen=True)
class CleanBatch:
    """A validated write: float32 C-contiguous arrays and checked columns."""

    ids: list[str | None]  # None = generate
    keys: np.ndarray  # (N, Dk) float32
    values: np.ndarray  # (N, Dv) float32
    texts: list[str | None] | None
    sources: np.ndarray | None  # (N, Ds) float32
    metadata: list[JsonObject] | None

    @property
    def n(self) -> int:
        return int(self.keys.shape[0])


def matrix(array: object, *, field: str, cols: int | None, max_rows: int) -> np.ndarray:
    """A finite 2-D float32 C-contiguous matrix with ``cols`` columns and 1..max_rows rows."""
    if not isinstance(array, np.ndarray):
        raise InvalidArgument(
            f"{field} must be a numpy array, got {type(array).__name__}", field=field
        )
    if array.ndim != 2:
        raise InvalidArgument(f"{field} must be 2-D (N, D), got shape {array.shape}", field=field)
    if array.dtype.kind not in "fiu":
        raise InvalidArgument(f"{field} must hold floats, got dtype {array.dtype}", field=field)
    rows, width = array.shape
    if rows == 0:
        raise InvalidArgument(f"{field} is empty: at least 1 row is required", field=field)
    if rows > max_rows:
        raise InvalidArgument(f"{field} has {rows} rows, the limit is {max_rows}", field=field)
    if cols is not None and width != cols:
        raise InvalidArgument(f"{field} has dimension {width}, expected {cols}", field=field)
    if width == 0:
        raise InvalidArgument(f"{field} has dimension 0", field=field)
    out = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(out).all():
        row = int(np.argmin(np.isfinite(out).all(axis=1)))
        raise InvalidArgument(
            f"{field} row {row} holds NaN or Inf (or overflows float32)", field=field
        )
    return out


def _column(column: Sequence[Any] | None, n: int, *, field: str) -> None:
    if column is not None and len(column) != n:
        raise InvalidArgument(
            f"{field} has {len(column)} entries, expected {n} (one per memory)", field=field
        )


def memory_id(value: object, *, field: str, limits: StoreLimits) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(
            f"{field} entries must be non-empty strings, got {shown(value)}", field=field
        )
    if utf8_size(value, field=field) > limits.max_id_bytes:
        raise InvalidArgument(
            f"{field} entry is longer than {limits.max_id_bytes} bytes", field=field
        )
    return value


def id_list(ids: Sequence[str], *, limits: StoreLimits, field: str = "ids") -> list[str]:
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise InvalidArgument(f"{field} must be a sequence of strings", field=field)
    if len(ids) > limits.max_batch:
        raise InvalidArgument(
            f"{field} has {len(ids)} entries, the limit is {limits.max_batch}", field=field
        )
    return [memory_id(i, field=field, limits=limits) for i in ids]


def json_object(value: object, *, field: str, max_bytes: int) -> JsonObject:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} entries must be JSON objects (dict)", field=field)
    check_json_depth(value, field=field)
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        reason = shown(str(err), max_chars=200)
        raise InvalidArgument(f"{field} is not JSON-serialisable: {reason}", field=field) from None
    if utf8_size(encoded, field=field) > max_bytes:
        raise InvalidArgument(f"{field} entry exceeds {max_bytes} bytes as JSON", field=field)
    decoded: JsonObject = json.loads(encoded)  # a private copy: the caller may mutate theirs
    return decoded


def batch(b: MemoryBatch, config: BankConfig, limits: StoreLimits) -> CleanBatch:
    """Validate a write batch against the bank's dimensions and the store's limits."""
    keys = matrix(b.keys, field="keys", cols=config.key_dim, max_rows=limits.max_batch)
    n = int(keys.shape[0])
    values = matrix(b.values, field="values", cols=config.value_dim, max_rows=limits.max_batch)
    if values.shape[0] != n:
        raise InvalidArgument(f"values has {values.shape[0]} rows, keys has {n}", field="values")
    if config.metric is Metric.COSINE:
        zero = np.einsum("nd,nd->n", keys, keys) == 0.0
        if zero.any():
            raise InvalidArgument(
                f"keys row {int(np.argmax(zero))} has zero norm (metric cosine)", field="keys"
            )
    _column(b.ids, n, field="ids")
    _column(b.texts, n, field="texts")
    _column(b.metadata, n, field="metadata")
    ids: list[str | None] = [None] * n
    if b.ids is not None:
        ids = [None if i is None else memory_id(i, field="ids", limits=limits) for i in b.ids]
        seen: set[str] = set()
        for i in ids:
            if i is not None and i in seen:
                raise InvalidArgument(f"ids repeats {shown(i)} within one batch", field="ids")
            if i is not None:
                seen.add(i)
    texts = None
    if b.texts is not None:
        texts = list(b.texts)
        for t in texts:
            if t is not None and not isinstance(t, str):
                raise InvalidArgument("texts entries must be strings or None", field="texts")
            if t is not None and utf8_size(t, field="texts") > limits.max_text_bytes:
                raise InvalidArgument(
                    f"texts entry exceeds {limits.max_text_bytes} bytes", field="texts"
                )
    sources = None
    if b.source_vectors is not None:
        sources = matrix(
            b.source_vectors, field="source_vectors", cols=None, max_rows=limits.max_batch
        )
        if sources.shape[0] != n:
            raise InvalidArgument(
                f"source_vectors has {sources.shape[0]} rows, keys has {n}", field="source_vectors"
            )
        if sources.shape[1] * 4 > limits.max_text_bytes:
            raise InvalidArgument(
                f"source_vectors rows exceed {limits.max_text_bytes} bytes", field="source_vectors"
            )
    metadata = None
    if b.metadata is not None:
        metadata = [
            json_object(m, field="metadata", max_bytes=limits.max_metadata_bytes)
            for m in b.metadata
        ]
    return CleanBatch(ids, keys, values, texts, sources, metadata)


def search_args(
    queries: object, options: SearchOptions, config: BankConfig, limits: StoreLimits
) -> np.ndarray:
    """Check a search against the bank and the store's limits (``SearchOptions`` checked
    everything else); returns (B, Dk) float32 queries (unit-norm for cosine banks)."""
    q = matrix(queries, field="queries", cols=config.key_dim, max_rows=limits.max_queries)
    if options.k > limits.max_k:
        raise InvalidArgument(f"k must be 1..{limits.max_k}, got {options.k}", field="k")
    flt = options.metadata_filter
    if flt is not None and len(flt.text.encode("utf-8")) > limits.max_metadata_bytes:
        raise InvalidArgument(
            f"metadata_filter exceeds {limits.max_metadata_bytes} bytes as JSON",
            field="metadata_filter",
        )
    if config.metric is Metric.COSINE:
        norms = np.linalg.norm(q, axis=1, keepdims=True)  # (B, 1)
        if (norms == 0.0).any():
            row = int(np.argmax(norms[:, 0] == 0.0))
            raise InvalidArgument(
                f"queries row {row} has zero norm (metric cosine)", field="queries"
            )
        q = np.ascontiguousarray(q / norms, dtype=np.float32)
    return q


def page_size(value: object, limits: StoreLimits) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= limits.max_page_size
    ):
        raise InvalidArgument(
            f"page_size must be in [1, {limits.max_page_size}], got {shown(value)}",
            field="page_size",
        )
    return value


def make_page_token(after_seq: int) -> str:
    """An opaque token for the page after the memory with seq ``after_seq``."""
    return base64.urlsafe_b64encode(f"after:{after_seq}".encode()).decode()


def page_token(token: str | None) -> int:
    """The seq a page token continues after (0 for the first page)."""
    if token is None or token == "":
        return 0
    try:
        prefix, value = base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)
        if prefix != "after":
            raise ValueError(prefix)
        return int(value)
    except (ValueError, UnicodeError) as err:
        raise InvalidArgument(
            f"page_token {shown(token)} is not a token this bank returned", field="page_token"
        ) from err
