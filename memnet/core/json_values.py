"""JSON values from callers (metadata, metadata filters): nesting limit and canonical form."""

from __future__ import annotations

import json
from typing import Any

from memnet.errors import InvalidArgument

MAX_JSON_DEPTH = 32  # nesting of metadata and metadata filters, as the server enforces
MAX_JSON_BYTES = 64 * 1024  # a metadata object or a metadata filter, as UTF-8 JSON


def _too_deep(value: object, limit: int) -> bool:
    """True if ``value`` nests dicts and lists (or tuples) deeper than ``limit``; no recursion.

    A scalar is depth 0, ``{}`` is 1. Stops at the first container past the limit, so a
    self-referencing object terminates too.
    """
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, (list, tuple)):
            if depth + 1 > limit:
                return True
            pending.extend((child, depth + 1) for child in item)
    return False


def json_too_deep(field: str) -> InvalidArgument:
    return InvalidArgument(
        f"{field} nests objects and arrays deeper than {MAX_JSON_DEPTH} levels", field=field
    )


def check_json_depth(value: object, *, field: str) -> None:
    """InvalidArgument naming ``field`` if ``value`` nests deeper than MAX_JSON_DEPTH."""
    if _too_deep(value, MAX_JSON_DEPTH):
        raise json_too_deep(field)


def canonical_json(value: dict[str, Any], *, field: str, max_bytes: int = MAX_JSON_BYTES) -> str:
    """``value`` as canonical JSON text (sorted keys, no spaces, UTF-8 as is).

    InvalidArgument naming ``field`` if it is not a JSON object, nests too deep, holds
    something JSON cannot say (NaN, a set, a lone surrogate) or is longer than
    ``max_bytes`` as UTF-8.
    """
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object", field=field)
    check_json_depth(value, field=field)
    try:
        text = json.dumps(
            value, ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
        )
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError) as err:  # UnicodeEncodeError is a ValueError
        raise InvalidArgument(f"{field} is not valid JSON: {err}", field=field) from None
    if size > max_bytes:
        raise InvalidArgument(f"{field} is longer than {max_bytes} bytes as JSON", field=field)
    return text
