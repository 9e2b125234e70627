"""A store bank as a model's ``MemorySource``, typed against a Protocol of our own."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from memnet.store.types import SearchResult


class SearchableBank(Protocol):
    """The part of a store bank a model needs."""

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        ef_search: int | None = None,
        nprobe: int | None = None,
        metadata_filter: Any = None,
        with_vectors: bool = True,
        tail_samples: int | None = None,
    ) -> SearchResult: ...

    def count(self) -> int: ...


class BankMemorySource:
    """Top-k candidates of one bank, with their exact keys and values, for each hop."""

    def __init__(
        self,
        bank: SearchableBank,
        *,
        ef_search: int | None = None,
        nprobe: int | None = None,
        metadata_filter: Any = None,
        tail_samples: int | None = None,
    ) -> None:
        self.bank = bank
        self.ef_search = ef_search
        self.nprobe = nprobe
        self.metadata_filter = metadata_filter
        self.tail_samples = tail_samples  # estimate the softmax mass outside the top-k

    def retrieve(self, queries: np.ndarray, k: int) -> SearchResult:
        """(B, Dk) float32 queries -> top-k candidates with keys and values."""
        return self.bank.search(
            queries,
            k,
            ef_search=self.ef_search,
            nprobe=self.nprobe,
            metadata_filter=self.metadata_filter,
            with_vectors=True,
            tail_samples=self.tail_samples,
        )

    def size(self) -> int:
        return self.bank.count()
