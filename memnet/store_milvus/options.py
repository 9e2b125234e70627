"""``SearchOptions`` from a search call's arguments, as ``memnet.store.Bank.search`` takes them."""

from __future__ import annotations

from typing import Any

import numpy as np

from memnet.core.search_options import MetadataFilter, SearchOptions
from memnet.errors import InvalidArgument


def search_options(
    k: int | SearchOptions,
    *,
    ef_search: int | None,
    nprobe: int | None,
    metadata_filter: dict[str, Any] | None,
    tail_samples: int | None,
) -> SearchOptions:
    """``k`` itself when it is a ``SearchOptions`` (then no knobs may be given), else
    options built from ``k`` and the keyword knobs."""
    if isinstance(k, SearchOptions):
        if (ef_search, nprobe, metadata_filter, tail_samples) != (None, None, None, None):
            raise InvalidArgument(
                "give the search knobs in the SearchOptions or as keywords, not both",
                field="options",
            )
        return k
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidArgument(f"k must be an integer, got {k!r}", field="k")
    return SearchOptions(
        k=int(k),
        ef_search=ef_search,
        nprobe=nprobe,
        metadata_filter=None
        if metadata_filter is None
        else MetadataFilter.of(metadata_filter, field="metadata_filter"),
        tail_samples=tail_samples,
    )
