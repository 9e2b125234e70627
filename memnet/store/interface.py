"""The bank-store interface: what the engine, the memory source and the servicers use.

Two implementations satisfy it: ``memnet.store.MemoryStore`` (the embedded FAISS index
plus write-ahead log, the default) and a store whose banks live in an external vector
engine. Code above the store names only these protocols, never a concrete bank class.

Contract of every implementation (the store's contract tests run against each):
a write that returned is durable and visible to every later search, get, list and
count; errors are ``memnet.errors`` exceptions naming the field and the limit;
searches re-score candidates exactly from the stored float32 keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from memnet.core.search_options import SearchOptions
from memnet.store.types import (
    BankConfig,
    MemoryBatch,
    MemoryContent,
    MemoryRecord,
    RecoveryReport,
    SearchResult,
    WriteMode,
    WriteResult,
)


@dataclass(frozen=True)
class StoreStatus:
    """Whether a store can serve, and what is not (yet) available."""

    serving: bool  # False: the store as a whole cannot serve (e.g. its engine is down)
    detail: str = ""  # why not, or "" when serving
    opening: tuple[str, ...] = ()  # banks still being opened (they answer FAILED_PRECONDITION)
    failed: dict[str, str] = field(default_factory=dict)  # quarantined banks and why


class MemoryBank(Protocol):
    """One named bank of memories."""

    @property
    def config(self) -> BankConfig: ...

    @property
    def name(self) -> str: ...

    @property
    def last_seq(self) -> int:
        """Sequence number of the last write; a search that starts after it sees it."""
        ...

    def count(self) -> int: ...

    def searchable_now(self) -> bool:
        """Whether a search would run to its end without waiting: on no lock held by a
        write, and on no network (a hint for where to run it)."""
        ...

    def write(self, batch: MemoryBatch, *, mode: WriteMode = ...) -> WriteResult: ...

    def delete(self, ids: Sequence[str]) -> int: ...

    def get(self, ids: Sequence[str]) -> list[MemoryRecord | None]: ...

    def contents(self, ids: Iterable[str]) -> dict[str, MemoryContent]: ...

    def list(
        self, *, page_size: int = ..., page_token: str | None = ...
    ) -> tuple[list[MemoryRecord], str | None]: ...

    def search(
        self,
        queries: np.ndarray,
        options: SearchOptions,
        /,
        *,
        with_vectors: bool = ...,
        with_keys: bool = ...,
    ) -> SearchResult:
        """Top ``options.k`` memories for (B, Dk) float32 queries with their exact scores;
        ``with_vectors``: their values, and their keys unless ``with_keys`` is False."""
        ...


class BankStore(Protocol):
    """A set of named banks."""

    # True when the banks live in this process: reaching one is no network round trip.
    in_process: bool

    def create_bank(self, config: BankConfig) -> MemoryBank: ...

    def bank(self, name: str) -> MemoryBank: ...

    def banks(self) -> Sequence[MemoryBank]: ...

    def drop_bank(self, name: str) -> None: ...

    def recovery_reports(self) -> dict[str, RecoveryReport]: ...

    def status(self) -> StoreStatus: ...

    def close(self) -> None: ...
