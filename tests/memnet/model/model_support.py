"""Shared test helpers: a tiny in-memory MemorySource (no memnet.store), small models, and
training configs on the shipped qa1."""

from __future__ import annotations

from typing import Any

import numpy as np

from memnet.core.search_options import SearchOptions
from memnet.data.babi import find_default_data_dir
from memnet.data.vocab import Vocabulary
from memnet.model.checkpoint import Checkpoint
from memnet.model.config import ModelConfig
from memnet.model.memn2n import MemN2N
from memnet.store.types import SearchResult
from memnet.train.config import TrainConfig

WORDS = [
    "mary",
    "john",
    "sandra",
    "daniel",
    "moved",
    "went",
    "to",
    "the",
    "back",
    "journeyed",
    "bathroom",
    "hallway",
    "garden",
    "office",
    "kitchen",
    "bedroom",
    "where",
    "is",
]
PLACES = ("bathroom", "hallway", "garden", "office", "kitchen", "bedroom")


class ArraySource:
    """Exact top-k over float32 keys, as a FAISS flat index would return it.

    Memories are given oldest first; recency rank 0 is the newest live memory.
    """

    def __init__(
        self, ids: list[str], keys: np.ndarray, values: np.ndarray, *, cosine: bool = False
    ) -> None:
        self.ids, self.keys, self.values, self.cosine = ids, keys, values, cosine
        self.calls: list[int] = []

    def size(self) -> int:
        return len(self.ids)

    def retrieve(
        self, queries: np.ndarray, options: SearchOptions, *, with_keys: bool = True
    ) -> SearchResult:
        k = options.k
        self.calls.append(k)
        N, (B, Dk), Dv = len(self.ids), queries.shape, self.values.shape[1]
        keys, q = self.keys, queries
        if self.cosine:
            keys = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), 1e-12)
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        scores = q @ keys.T  # (B, N)
        ids = [[""] * k for _ in range(B)]
        out_scores = np.full((B, k), -np.inf, np.float32)
        valid = np.zeros((B, k), bool)
        recency = np.full((B, k), -1, np.int64)
        out_keys = np.zeros((B, k, Dk), np.float32)
        out_values = np.zeros((B, k, Dv), np.float32)
        for b in range(B):
            order = np.argsort(-scores[b], kind="stable")[:k]
            n = len(order)
            ids[b][:n] = [self.ids[i] for i in order]
            out_scores[b, :n] = scores[b, order]
            valid[b, :n] = True
            recency[b, :n] = N - 1 - order
            out_keys[b, :n] = self.keys[order]
            out_values[b, :n] = self.values[order]
        return SearchResult(ids, out_scores, valid, recency, out_keys, out_values)


def tiny_checkpoint(
    *,
    tying: str = "layerwise",
    hops: int = 3,
    scoring: str = "dot",
    heads: int = 1,
    dim: int = 16,
    activation: str = "none",
    head: str = "linear",
    gate: bool = False,
    seed: int = 0,
) -> Checkpoint:
    import torch

    torch.manual_seed(seed)
    vocab = Vocabulary.build(WORDS)
    answers = Vocabulary.build(PLACES, with_nil=False)
    cfg = ModelConfig(
        vocab_size=len(vocab),
        answer_size=len(answers),
        dim=dim,
        hops=hops,
        tying=tying,  # type: ignore[arg-type]
        scoring=scoring,  # type: ignore[arg-type]
        heads=heads,
        activation=activation,  # type: ignore[arg-type]
        head=head,  # type: ignore[arg-type]
        gate=gate,
        relation_dim=8,
        temporal_buckets=10,
    )
    model = MemN2N(cfg)
    return Checkpoint(
        model_config=cfg,
        vocab=vocab,
        answers=answers,
        memory_size=10,
        sentence_len=6,
        query_len=4,
        state_dict=model.state_dict(),
        name=f"tiny-{tying}",
        train_config={"tasks": [1]},
    )


def qa1_config(**options: Any) -> TrainConfig:
    """A training config on the shipped 1k qa1 (``data/babi/en``) with ``options`` set."""
    data_dir = find_default_data_dir()
    assert data_dir is not None, "bAbI data/babi/en is missing"
    return TrainConfig(data_dir=str(data_dir), tasks=(1,), **options)
