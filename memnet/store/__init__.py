"""Durable memory banks: FAISS index + write-ahead log + snapshots.

``Bank`` and ``MemoryStore`` (which need faiss) are imported on first use, so that
the types of ``memnet.store.types`` cost no faiss import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memnet.store.types import (
    BankConfig,
    CapacityPolicy,
    FsyncPolicy,
    IndexKind,
    IndexSpec,
    MemoryBatch,
    MemoryContent,
    MemoryRecord,
    Metric,
    RecoveryReport,
    SearchResult,
    StoreLimits,
    StoreSettings,
    WriteMode,
    WriteResult,
)

if TYPE_CHECKING:
    from memnet.store.bank import Bank
    from memnet.store.store import MemoryStore

_LAZY = {"Bank": "memnet.store.bank", "MemoryStore": "memnet.store.store"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Bank",
    "BankConfig",
    "CapacityPolicy",
    "FsyncPolicy",
    "IndexKind",
    "IndexSpec",
    "MemoryBatch",
    "MemoryContent",
    "MemoryRecord",
    "MemoryStore",
    "Metric",
    "RecoveryReport",
    "SearchResult",
    "StoreLimits",
    "StoreSettings",
    "WriteMode",
    "WriteResult",
]
