"""Checks of a model query's arguments, shared by every served model (numpy only)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from memnet.core.enums import AttentionMode
from memnet.errors import InvalidArgument

ALL_MODES = (AttentionMode.SOFT, AttentionMode.SPARSE, AttentionMode.HARD)


class SizedMemory(Protocol):
    def size(self) -> int:
        """Number of live memories."""
        ...


def check_queries(queries: np.ndarray, dim: int | None) -> np.ndarray:
    """(B, D) float32, finite, D = ``dim`` when given."""
    q = np.asarray(queries)
    if q.ndim != 2 or q.shape[0] < 1 or (dim is not None and q.shape[1] != dim):
        want = f"(B, {dim})" if dim is not None else "(B, D)"
        raise InvalidArgument(f"queries must have shape {want}, got {q.shape}", field="queries")
    if not np.isfinite(q).all():
        raise InvalidArgument("queries must be finite", field="queries")
    return np.ascontiguousarray(q, dtype=np.float32)


def check_k(k: int, memory: SizedMemory, mode: AttentionMode) -> int:
    """Candidates per hop: the bank size for SOFT, ``k`` (>= 1) for SPARSE and HARD."""
    if mode is AttentionMode.SOFT:
        return max(1, memory.size())
    if k < 1:
        raise InvalidArgument(f"k must be >= 1, got {k}", field="k")
    return k


def check_hops(hops: int | None, default: int, maximum: int) -> int:
    h = default if hops is None else hops
    if not 1 <= h <= maximum:
        raise InvalidArgument(f"hops must be in 1..{maximum}, got {h}", field="hops")
    return h
