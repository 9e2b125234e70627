"""Milvus boolean expressions: metadata filters, id lists and string literals, escaped.

A metadata filter keeps the memories whose metadata has every top-level key with an
equal JSON value. Each ``key: value`` becomes ``metadata["key"] == value`` on the
collection's JSON field, joined with ``and``. What Milvus's expression language cannot
say exactly is refused with ``InvalidArgument`` naming ``metadata_filter`` rather than
answered wrongly: ``null`` (Milvus cannot tell a null value from a missing key), arrays
and objects (no equality on containers), integers beyond 64 bits, and control
characters other than tab, newline and carriage return in keys or strings.

Milvus may still match a little more than JSON equality does (Milvus Lite compares
``true`` equal to ``1``), so the store re-checks every matched memory with
``json_equal`` before it reports it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from memnet.errors import InvalidArgument

METADATA_FIELD = "metadata"
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def string_literal(text: str, *, field: str) -> str:
    """``text`` as a double-quoted Milvus string literal (backslash escapes)."""
    out = []
    for char in text:
        escaped = _ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            raise InvalidArgument(
                f"{field} holds control character U+{ord(char):04X}, which a Milvus "
                "expression cannot carry",
                field=field,
            )
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _number_literals(value: int | float, *, field: str) -> list[str]:
    """The literals a JSON number equals: an integral number matches both 2 and 2.0."""
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidArgument(
                f"{field} holds the integer {value}, beyond Milvus's 64-bit JSON integers",
                field=field,
            )
        return [str(value), f"{value}.0"] if abs(value) < (1 << 53) else [str(value)]
    if not math.isfinite(value):  # canonical JSON already refuses these
        raise InvalidArgument(f"{field} holds {value}, which JSON cannot say", field=field)
    if value.is_integer() and abs(value) < (1 << 53):
        return [repr(value), str(int(value))]
    return [repr(value)]


def _equals(path: str, value: Any, *, field: str) -> str:
    if isinstance(value, bool):
        return f"{path} == {'true' if value else 'false'}"
    if isinstance(value, int | float):
        literals = _number_literals(value, field=field)
        terms = [f"{path} == {literal}" for literal in literals]
        return terms[0] if len(terms) == 1 else "(" + " or ".join(terms) + ")"
    if isinstance(value, str):
        return f"{path} == {string_literal(value, field=field)}"
    if value is None:
        raise InvalidArgument(
            f"{field}: null values cannot be filtered on the milvus store (Milvus does not "
            "tell a null value from a missing key)",
            field=field,
        )
    kind = "an array" if isinstance(value, list) else "an object"
    raise InvalidArgument(
        f"{field}: {kind} value cannot be filtered on the milvus store (Milvus "
        "expressions have no equality on arrays or objects); filter on scalar values",
        field=field,
    )


def metadata_filter(flt: Mapping[str, Any], *, field: str = "metadata_filter") -> str:
    """The Milvus expression of a non-empty top-level equality filter."""
    terms = []
    for key, value in sorted(flt.items()):
        path = f"{METADATA_FIELD}[{string_literal(key, field=field)}]"
        terms.append(_equals(path, value, field=field))
    return " and ".join(terms)


def id_in(ids: Iterable[str], *, field: str = "ids") -> str:
    """``id in ["a", "b", ...]``."""
    return "id in [" + ", ".join(string_literal(i, field=field) for i in ids) + "]"


def both(first: str, second: str) -> str:
    """``first and second``; either may be "" (no condition)."""
    if not first:
        return second
    if not second:
        return first
    return f"({first}) and ({second})"
