"""An inverted index of top-level metadata values, for metadata-filtered searches.

For every top-level key it maps a *bucket* of the value to the live slots holding a
value in that bucket. Buckets are coarse on purpose: two JSON-equal values always
share one (``1`` and ``1.0`` do; ``True`` and ``1`` do not), and lists and objects
share one bucket per kind. A lookup therefore returns a superset of the matching
slots, which the caller checks exactly with ``json_equal``; it never misses one.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

Bucket = Hashable


def json_equal(a: object, b: object) -> bool:
    """JSON equality: ``True`` is not ``1`` and ``1`` equals ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def bucket_of(value: object) -> Bucket:
    """The bucket of a JSON value: equal for any two ``json_equal`` values."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        try:
            return ("number", float(value))
        except OverflowError:  # an int beyond float range equals no float
            return ("int", value)
    if isinstance(value, str):
        return ("str", value)
    if value is None:
        return ("null",)
    return ("container", type(value).__name__)


class MetadataIndex:
    """key → bucket → live slots. Kept in step with a table's ``append`` and ``kill``."""

    def __init__(self) -> None:
        self._slots: dict[str, dict[Bucket, set[int]]] = {}

    @classmethod
    def build(cls, slots: Iterable[int], metadata: Sequence[Mapping[str, Any]]) -> MetadataIndex:
        index = cls()
        for slot in slots:
            index.add(slot, metadata[slot])
        return index

    def add(self, slot: int, metadata: Mapping[str, Any]) -> None:
        for key, value in metadata.items():
            self._slots.setdefault(key, {}).setdefault(bucket_of(value), set()).add(slot)

    def remove(self, slot: int, metadata: Mapping[str, Any]) -> None:
        for key, value in metadata.items():
            buckets = self._slots.get(key)
            if buckets is None:
                continue
            bucket = bucket_of(value)
            held = buckets.get(bucket)
            if held is not None:
                held.discard(slot)
                if not held:
                    del buckets[bucket]
            if not buckets:
                del self._slots[key]

    def candidates(self, metadata_filter: Mapping[str, Any]) -> set[int]:
        """Slots whose metadata may match every key of a non-empty filter (a superset)."""
        held = [
            self._slots.get(key, {}).get(bucket_of(value), set())
            for key, value in metadata_filter.items()
        ]
        held.sort(key=len)  # intersect from the smallest set
        out = set(held[0])
        for other in held[1:]:
            out &= other
            if not out:
                break
        return out
