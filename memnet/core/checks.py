"""Checks of a model query's arguments, shared by every served model (numpy only).

The rules about ``SearchOptions`` themselves live in ``memnet.core.search_options``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from memnet.core.enums import AttentionMode
from memnet.core.search_options import MAX_K, SearchOptions
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


def per_hop_options(options: SearchOptions, memory: SizedMemory) -> SearchOptions:
    """The options each hop searches with: k = the bank size for soft attention."""
    if options.mode is not AttentionMode.SOFT:
        return options
    size = memory.size()
    if size > MAX_K:
        raise InvalidArgument(
            f"ATTENTION_MODE_SOFT attends over all {size} memories; the limit is {MAX_K}",
            field="attention_mode",
        )
    return options.with_k(max(1, size))
