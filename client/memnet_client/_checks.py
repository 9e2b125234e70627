"""Checks of single arguments, run before any RPC: each raises ``ValidationError`` naming the field.

Limits that a server is configured with (its ``max_k``, a model's ``max_hops``,
message sizes) stay the server's to enforce.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from memnet_client.errors import ValidationError

BANK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_ID_BYTES = 256
MAX_METADATA_BYTES = 64 * 1024


def bank_name(name: object, *, field: str = "bank") -> str:
    if not isinstance(name, str) or not BANK_NAME.match(name):
        raise ValidationError(
            f"{field} must be 1-64 letters, digits, '_', '.', '-' starting with a letter or "
            f"digit, got {name!r}",
            field=field,
        )
    return name


def nonempty_string(value: object, *, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{field} must be a non-empty string, got {value!r}", field=field)
    return value


def count(value: object, *, field: str, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer argument in [minimum, maximum]; bools and floats are rejected."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(f"{field} must be an integer, got {value!r}", field=field)
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValidationError(f"{field} must be >= {minimum}{upper}, got {number}", field=field)
    return number


def optional_count(
    value: object, *, field: str, minimum: int, maximum: int | None = None
) -> int | None:
    """``count`` for an argument where None means "the server's default"."""
    return None if value is None else count(value, field=field, minimum=minimum, maximum=maximum)


def flag(value: object, *, field: str) -> bool:
    """A bool argument (numpy bools too); 1, "yes" and other truthy values are refused."""
    if not isinstance(value, bool | np.bool_):
        raise ValidationError(f"{field} must be True or False, got {value!r}", field=field)
    return bool(value)


def choice(value: object, choices: Sequence[str], *, field: str) -> str:
    """One of a fixed set of lower-case names (an SDK ``Literal``)."""
    if not isinstance(value, str) or value not in choices:
        raise ValidationError(
            f"{field} must be one of {sorted(choices)}, got {value!r}", field=field
        )
    return value


def matrix(array: object, *, field: str) -> np.ndarray:
    """A finite real (N, D) array with N, D >= 1, as C-ordered float32."""
    try:
        values = np.asarray(array)
    except ValueError as error:  # ragged nested lists
        raise ValidationError(
            f"{field} is not a rectangular array: {error}", field=field
        ) from error
    if values.dtype.kind not in "fiu":
        raise ValidationError(
            f"{field} must hold real numbers, got dtype {values.dtype}", field=field
        )
    if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] < 1:
        raise ValidationError(
            f"{field} must have shape (N, D) with N, D >= 1, got {values.shape}", field=field
        )
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(values, dtype=np.float32)
    if not np.isfinite(converted).all():
        raise ValidationError(f"{field} contains NaN or Inf (after float32 cast)", field=field)
    return converted


def strings(values: object, *, field: str, allow_empty_items: bool = False) -> list[str]:
    """A non-empty sequence of strings (a bare str is refused: wrap it in a list)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise ValidationError(f"{field} must be a non-empty list of strings", field=field)
    out = list(values)
    for i, item in enumerate(out):
        if not isinstance(item, str) or (not allow_empty_items and not item.strip()):
            raise ValidationError(f"{field}[{i}] must be a non-empty string", field=f"{field}[{i}]")
    return out


def json_object(value: Mapping[str, Any] | None, *, field: str) -> str:
    """A dict as compact JSON of at most 64 KiB; None is ""."""
    if value is None:
        return ""
    if not isinstance(value, Mapping):
        raise ValidationError(f"{field} must be a dict, got {type(value).__name__}", field=field)
    try:
        text = json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise ValidationError(f"{field} is not JSON-serializable: {error}", field=field) from error
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise ValidationError(
            f"{field} is {len(text.encode())} bytes as JSON, limit {MAX_METADATA_BYTES}",
            field=field,
        )
    return text
