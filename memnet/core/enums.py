"""The enumerations shared by the store, the models, the server and the command line."""

from __future__ import annotations

from enum import Enum


class Metric(str, Enum):  # noqa: UP042 (str() must stay as it was)
    """How the index compares a query with a key. Scores are always higher-is-better."""

    INNER_PRODUCT = "inner_product"
    L2 = "l2"  # score = -squared L2 distance
    COSINE = "cosine"  # keys and queries L2-normalised, then inner product


class AttentionMode(str, Enum):  # noqa: UP042 (str() must stay as it was)
    SOFT = "soft"  # softmax over every memory of the bank (k = bank size)
    SPARSE = "sparse"  # softmax over the top-k candidates proposed by the index
    HARD = "hard"  # all weight on the best-scoring candidate


class InputKind(str, Enum):  # noqa: UP042 (str() must stay as it was)
    TEXT = "text"  # questions and memories are text, encoded with the model's vocabulary
    VECTOR = "vector"  # callers bring their own key, value and query vectors
