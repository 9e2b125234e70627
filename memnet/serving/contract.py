"""The contract between a served model and the server's query engine.

The server never touches torch: it asks a ``ServedModel`` to encode text and to
answer queries against a ``MemorySource`` (a bank's search, adapted). Both the
text models (MemN2N / KV-MemNN checkpoints) and the pass-through vector model
implement this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from memnet.core.card import ModelCard
from memnet.core.enums import AttentionMode, InputKind, Metric
from memnet.core.search_options import SearchOptions
from memnet.store.types import SearchResult

__all__ = [
    "AttentionMode",
    "EncodedMemories",
    "EncodedTexts",
    "HopAttention",
    "InputKind",
    "MemorySource",
    "ModelInfo",
    "QueryOutput",
    "SearchOptions",
    "ServedModel",
    "check_options",
]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    input_kind: InputKind
    key_dim: int | None  # None: any (pass-through model, the bank decides)
    value_dim: int | None
    default_hops: int
    max_hops: int
    metric: Metric  # the bank metric whose candidates match this model's attention scores
    scoring: str  # "dot", "scaled_dot" or "cosine"
    heads: int
    attention_modes: tuple[AttentionMode, ...]
    vocab_size: int  # 0 for vector models
    answer_vocab: tuple[str, ...]  # empty when the model has no answer head
    temporal_buckets: int  # recency ranks >= this share the last time embedding; 0 = none
    card: ModelCard | None = None  # how a trained checkpoint was made; None: no card


@dataclass(frozen=True)
class EncodedTexts:
    vectors: np.ndarray  # (N, D) float32
    unknown_words: list[list[str]]  # per text, words not in the vocabulary (ignored)


@dataclass(frozen=True)
class EncodedMemories:
    keys: np.ndarray  # (N, Dk) float32
    values: np.ndarray  # (N, Dv) float32
    unknown_words: list[list[str]]


class MemorySource(Protocol):
    """Where a model's hops look for memories: one bank, or one story in tests."""

    def retrieve(
        self, queries: np.ndarray, options: SearchOptions, *, with_keys: bool = True
    ) -> SearchResult:
        """Top ``options.k`` candidates for (B, Dk) float32 queries, searched with
        ``options``, with values filled in, and keys unless ``with_keys`` is False (a
        source may return them anyway)."""
        ...

    def size(self) -> int:
        """Number of live memories (the k for AttentionMode.SOFT)."""
        ...


@dataclass(frozen=True)
class HopAttention:
    ids: list[list[str]]  # B lists of K memory ids ("" for padding)
    scores: np.ndarray  # (B, K) float32 attention logits (before softmax)
    weights: np.ndarray  # (B, K) float32 attention weights, 0 for padding
    # Weight the softmax gave to the memories outside the K, estimated from a sample
    # (vector models with tail_samples); None otherwise. weights.sum(1) + tail = 1.
    tail_weights: np.ndarray | None = None  # (B,) float32


@dataclass(frozen=True)
class QueryOutput:
    readout: np.ndarray  # (B, D) float32, the final controller state u_H
    hops: list[HopAttention]  # one per hop, in order
    answer_probs: np.ndarray | None  # (B, A) float32 softmax over info.answer_vocab, or None


class ServedModel(Protocol):
    info: ModelInfo

    def encode_memories(self, texts: list[str]) -> EncodedMemories:
        """Text → key and value vectors. Raises FailedPrecondition for vector models."""
        ...

    def encode_queries(self, texts: list[str]) -> EncodedTexts:
        """Question text → (B, D) query vectors u₀. Raises FailedPrecondition for vector models."""
        ...

    def query(
        self, queries: np.ndarray, memory: MemorySource, options: SearchOptions
    ) -> QueryOutput:
        """Attend over ``memory`` for (B, D) float32 queries u₀, hop by hop, with
        ``options`` (k, hops, attention mode and the search knobs each hop passes on)."""
        ...


def check_options(info: ModelInfo, options: SearchOptions) -> None:
    """InvalidArgument if the model described by ``info`` cannot run ``options``."""
    options.for_model(
        name=info.name,
        max_hops=info.max_hops,
        modes=info.attention_modes,
        estimates_tail=info.input_kind is InputKind.VECTOR,
    )
