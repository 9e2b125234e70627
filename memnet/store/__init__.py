"""Durable memory banks: FAISS index + write-ahead log + snapshots."""

from memnet.store.bank import Bank
from memnet.store.store import MemoryStore
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
