"""Recency ranks on the milvus store: the newest memories' seqs, read once per bank state.

A rank is a memory's place among the bank's live memories by seq, 0 = newest. The
store keeps the seqs of the newest ``RECENCY_EXACT`` live memories, read from Milvus
with a few range queries and reused while the bank's version (the writers' committed
seqs, as this process last read them, plus its own writes) is unchanged: a text
model's hops, and every query between two writes, cost no further request. A result
the cached window cannot place (a memory written since, by another replica) makes
it read the window again. Memories older than the window rank ``RECENCY_EXACT``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

RECENCY_EXACT = 1024  # ranks below this are exact; older memories report this rank

Query = Callable[[str], list[int]]  # filter -> seqs of the live memories it matches


@dataclass(frozen=True)
class Window:
    version: Hashable
    rank: dict[int, int]  # seq → rank, for the newest RECENCY_EXACT live memories
    floor: int  # the oldest seq in the window
    whole: bool  # the window holds every live memory


def read_window(seqs_where: Query, *, top_seq: int, version: Hashable) -> Window:
    """The newest RECENCY_EXACT live seqs: widen ``seq > top_seq - width`` downwards until
    it holds that many or reaches the first seq (a newer top only adds rows)."""
    width = 2 * RECENCY_EXACT
    while True:
        low = top_seq - width
        seqs = seqs_where(f"seq > {low}")
        if len(seqs) >= RECENCY_EXACT or low <= 0:
            break
        width *= 4
    newest = np.sort(np.asarray(seqs, np.int64))[::-1][:RECENCY_EXACT]  # (R,) newest first
    rank = {int(s): i for i, s in enumerate(newest.tolist())}
    whole = low <= 0 and len(seqs) <= RECENCY_EXACT
    return Window(version, rank, int(newest[-1]) if len(newest) else 0, whole)


def _place(window: Window, seqs: list[int]) -> dict[int, int] | None:
    """Ranks of ``seqs`` from ``window``; None when one of them is newer than it knows."""
    out = {}
    for s in seqs:
        rank = window.rank.get(s)
        if rank is None:
            if window.whole or s > window.floor:
                return None  # written after the window was read
            rank = RECENCY_EXACT
        out[s] = rank
    return out


class RecencyCache:
    """One bank's window of newest seqs (thread-safe; a stale read is only re-read)."""

    def __init__(self) -> None:
        self._window: Window | None = None
        self._lock = threading.Lock()

    def ranks(
        self, seqs: np.ndarray, seqs_where: Query, *, top_seq: int, version: Hashable
    ) -> dict[int, int]:
        wanted = [int(s) for s in seqs.tolist()]
        if not wanted:
            return {}
        with self._lock:
            window = self._window
        if window is not None and window.version == version:
            placed = _place(window, wanted)
            if placed is not None:
                return placed
        window = read_window(seqs_where, top_seq=top_seq, version=version)
        with self._lock:
            self._window = window
        placed = _place(window, wanted)
        if placed is None:  # deleted since, or written between the search and this read
            placed = {s: window.rank.get(s, RECENCY_EXACT) for s in wanted}
        return placed
