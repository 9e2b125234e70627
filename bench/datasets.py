"""Seeded synthetic data for the suite: random Gaussian and clustered keys, values, queries.

Both generators produce vectors whose entries have unit variance, as the inputs of a
transformer's attention do. The softmax temperature is explicit: attention logits are
``beta * q·k`` with ``beta = logit_scale / sqrt(D)``; ``logit_scale = 1`` is the
transformer convention (Vaswani et al. 2017, scaled dot-product attention). The suite
applies beta by scaling the queries, which leaves the ranking (and so what any index
retrieves) unchanged and makes memnet's raw inner-product scores equal the logits.

* **random**: keys, values and queries i.i.d. N(0, I). Nothing is near anything, so
  exact attention is spread thin and recall is meaningless (ENVIRONMENT.md).
* **clustered**: M/256 centres c ~ N(0, I); key i = (c + sigma·n_i) / sqrt(1 + sigma²)
  with sigma = 0.3 (the spread of bench/bench_store.py's clusters), so about 256
  near-duplicate keys per cluster. Queries are stored keys perturbed the same way with
  tau = 0.1: "queries near stored keys". Values are i.i.d. N(0, I), independent of the
  keys — the least forgiving choice for a top-k readout, since a missed memory's
  value is not predicted by the ones retrieved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KEYS_PER_CLUSTER = 256
CLUSTER_SPREAD = 0.3
QUERY_NOISE = 0.1
_CHUNK = 100_000


@dataclass(frozen=True)
class Dataset:
    name: str  # "random" or "clustered"
    keys: np.ndarray  # (M, D) float32, unit-variance entries
    values: np.ndarray  # (M, D) float32
    queries: np.ndarray  # (Q, D) float32, unit-variance entries, before the temperature
    query_sources: np.ndarray  # (Q,) int64 index of the key each query perturbs; -1 for none

    @property
    def m(self) -> int:
        return int(self.keys.shape[0])

    @property
    def d(self) -> int:
        return int(self.keys.shape[1])

    def scaled_queries(self, logit_scale: float = 1.0) -> np.ndarray:
        """(Q, D) queries times beta = logit_scale / sqrt(D): their dot products are logits."""
        beta = logit_scale / math.sqrt(self.d)
        return np.ascontiguousarray(self.queries * np.float32(beta), np.float32)


def ids_for(m: int) -> list[str]:
    """Memory ids "0" .. "M-1": an id parses back to its row in the dataset."""
    return [str(i) for i in range(m)]


def random_data(m: int, d: int, n_queries: int, *, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    keys = rng.standard_normal((m, d), dtype=np.float32)
    values = rng.standard_normal((m, d), dtype=np.float32)
    queries = rng.standard_normal((n_queries, d), dtype=np.float32)
    return Dataset("random", keys, values, queries, np.full(n_queries, -1, np.int64))


def clustered_keys(
    rng: np.random.Generator, m: int, d: int, *, per_cluster: int = KEYS_PER_CLUSTER
) -> np.ndarray:
    """(M, D) keys around max(1, M // per_cluster) Gaussian centres, unit variance per entry."""
    centres = rng.standard_normal((max(1, m // per_cluster), d), dtype=np.float32)
    keys = np.empty((m, d), np.float32)
    norm = np.float32(1.0 / math.sqrt(1.0 + CLUSTER_SPREAD**2))
    for lo in range(0, m, _CHUNK):
        hi = min(m, lo + _CHUNK)
        which = rng.integers(0, len(centres), hi - lo)
        noise = rng.standard_normal((hi - lo, d), dtype=np.float32)
        keys[lo:hi] = (centres[which] + np.float32(CLUSTER_SPREAD) * noise) * norm
    return keys


def near_queries(
    rng: np.random.Generator, keys: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, D) perturbed copies of n distinct random stored keys, and those keys' rows."""
    rows = rng.choice(len(keys), size=n, replace=False).astype(np.int64)
    noise = rng.standard_normal((n, keys.shape[1]), dtype=np.float32)
    norm = np.float32(1.0 / math.sqrt(1.0 + QUERY_NOISE**2))
    return (keys[rows] + np.float32(QUERY_NOISE) * noise) * norm, rows


def clustered_data(m: int, d: int, n_queries: int, *, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    keys = clustered_keys(rng, m, d)
    values = rng.standard_normal((m, d), dtype=np.float32)
    queries, rows = near_queries(rng, keys, n_queries)
    return Dataset("clustered", keys, values, queries, rows)


def make(name: str, m: int, d: int, n_queries: int, *, seed: int = 0) -> Dataset:
    if name == "random":
        return random_data(m, d, n_queries, seed=seed)
    if name == "clustered":
        return clustered_data(m, d, n_queries, seed=seed)
    raise ValueError(f"unknown dataset {name!r}; expected 'random' or 'clustered'")


BABI_EN = Path(__file__).resolve().parents[1] / "data" / "babi" / "en"
BABI_QA1_TRAIN = BABI_EN / "qa1_single-supporting-fact_train.txt"


def babi_qa1() -> tuple[list[str], list[str]]:
    """bAbI task 1's training statements and questions, in file order (for text banks)."""
    sentences: list[str] = []
    questions: list[str] = []
    for line in BABI_QA1_TRAIN.read_text().splitlines():
        text = line.partition(" ")[2]
        (questions if "\t" in text else sentences).append(text.split("\t")[0].strip())
    return sentences, questions
