"""Softmax-tail estimates over a Milvus bank's searched memories.

Scores come from ``memnet.store.scores``, the formulas the FAISS store uses too: the
same memories get the same scores, and a model the same attention weights, on either
store. Milvus's own distances only rank the candidates; L2 comes back squared and
cosine as a similarity.
"""

from __future__ import annotations

import numpy as np

from memnet.store.scores import pairwise_scores, softmax_tail
from memnet.store.types import Metric


def tail_estimate(
    metric: Metric,
    q: np.ndarray,
    in_result: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    *,
    n_samples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The softmax tail of each row: the (N,) searched memories outside the row's result.

    ``in_result`` (B, N) bool marks, per row, the memories in its top-k; ``keys`` (N, Dk)
    and ``values`` (N, Dv) are the whole population. With at least N samples every
    member is scored: the (B,) log Σ exp(score) is exact and the (B, Dv) tail value is
    the exp(score)-weighted mean value. Otherwise ``n_samples`` members drawn uniformly
    with replacement estimate Σ exp(score) (scaled by N / n_samples) and the tail value
    is the population's mean value. -inf and zeros for an empty tail.
    """
    n = keys.shape[0]
    B, Dv = q.shape[0], values.shape[1]
    if n == 0:
        return np.full(B, -np.inf), np.zeros((B, Dv), np.float32)
    exact = n_samples >= n
    if exact:
        sample, scale = np.arange(n), 1.0
    else:
        sample, scale = rng.integers(0, n, n_samples), n / n_samples
    scores = pairwise_scores(metric, q, keys[sample]).astype(np.float64)  # (B, S)
    scores[in_result[:, sample]] = -np.inf  # a member of the row's result is not its tail
    return softmax_tail(
        scores,
        scale=scale,
        sample_values=values if exact else None,
        mean_value=lambda: values.astype(np.float64).mean(0).astype(np.float32),  # (Dv,)
    )
