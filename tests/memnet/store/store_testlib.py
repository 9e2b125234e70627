"""Shared helpers of the store tests: seeded clustered data, a brute-force oracle, and
the store backends the contract tests run against (``Backend``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memnet.store import (
    BankConfig,
    IndexSpec,
    MemoryBatch,
    MemoryStore,
    Metric,
    StoreSettings,
    logstate,
)
from memnet.store.frames import MAGIC
from memnet.store.interface import BankStore

FAISS, MILVUS = "faiss", "milvus"


@dataclass
class Backend:
    """One store backend under test: ``open(**StoreSettings fields)`` opens a store over
    the same data each time (a second ``open`` after ``close`` is a reopen)."""

    name: str
    open: Callable[..., BankStore]

    @property
    def faiss(self) -> bool:
        """FAISS-only assertions (log, snapshots, slots) run when this is True."""
        return self.name == FAISS


def clustered(
    rng: np.random.Generator, n: int, d: int, *, clusters: int = 40, spread: float = 0.15
) -> np.ndarray:
    """(n, d) float32 points around ``clusters`` Gaussian centres (realistic for recall tests)."""
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    which = rng.integers(0, clusters, n)
    return (centres[which] + spread * rng.standard_normal((n, d))).astype(np.float32)


def batch(
    keys: np.ndarray, *, value_dim: int = 8, ids: list[str] | None = None, seed: int = 0
) -> MemoryBatch:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((len(keys), value_dim)).astype(np.float32)
    return MemoryBatch(keys=keys, values=values, ids=list(ids) if ids is not None else None)  # type: ignore[arg-type]


def oracle_scores(metric: Metric, queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(B, M) exact scores in float64, higher is better."""
    q = queries.astype(np.float64)
    k = keys.astype(np.float64)
    if metric is Metric.L2:
        return -(((q[:, None, :] - k[None, :, :]) ** 2).sum(axis=2))
    if metric is Metric.COSINE:
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        k = k / np.linalg.norm(k, axis=1, keepdims=True)
    return q @ k.T


def open_store(path: Path, **settings: object) -> MemoryStore:
    return MemoryStore(path, StoreSettings(**settings))  # type: ignore[arg-type]


def make_bank_config(
    name: str = "b", *, key_dim: int = 32, value_dim: int = 8, **kw: object
) -> BankConfig:
    index = kw.pop("index", IndexSpec())
    return BankConfig(name=name, key_dim=key_dim, value_dim=value_dim, index=index, **kw)  # type: ignore[arg-type]


def as_after_a_kill(bank_dir: Path) -> None:
    """Make ``log-state.json`` say what a killed process leaves: the active log was known
    to be fsynced only as far as its header (as when the bank was created or opened)."""
    state = logstate.read(bank_dir)
    assert state is not None
    logstate.write(bank_dir, logstate.LogState(state.log, state.created_ns, len(MAGIC)))
