"""A store bank as a model's ``MemorySource``, typed against a Protocol of our own."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from memnet.core.search_options import SearchOptions
from memnet.store.types import SearchResult


class SearchableBank(Protocol):
    """The part of a store bank a model needs."""

    def search(
        self, queries: np.ndarray, k: SearchOptions, *, with_vectors: bool = False
    ) -> SearchResult: ...

    def count(self) -> int: ...


class BankMemorySource:
    """Top-k candidates of one bank, with their exact keys and values, for each hop."""

    def __init__(self, bank: SearchableBank) -> None:
        self.bank = bank

    def retrieve(self, queries: np.ndarray, options: SearchOptions) -> SearchResult:
        """(B, Dk) float32 queries -> the top ``options.k`` candidates with keys and values."""
        return self.bank.search(queries, options, with_vectors=True)

    def size(self) -> int:
        return self.bank.count()
