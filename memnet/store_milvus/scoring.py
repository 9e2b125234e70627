"""Exact scores and softmax-tail estimates, computed here from the stored float32 keys.

The formulas (and the numpy operations, so the float32 results) are those of the FAISS
store's ``memnet.store.search``: the same memories get the same scores, and a model
the same attention weights, on either store (tests compare them). Milvus's own
distances only rank the candidates; L2 comes back squared and cosine as a similarity.
"""

from __future__ import annotations

import numpy as np

from memnet.store.types import Metric


def exact_scores(metric: Metric, q: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(B, K) scores of (B, Dk) queries against their (B, K, Dk) candidate keys."""
    if metric is Metric.L2:
        diff = keys - q[:, None, :]  # (B, K, Dk)
        return -np.einsum("bkd,bkd->bk", diff, diff)
    dots = np.matmul(keys, q[:, :, None])[:, :, 0]  # (B, K)
    if metric is Metric.COSINE:  # q is unit-norm already
        norms = np.linalg.norm(keys, axis=2)  # (B, K)
        return dots / np.where(norms > 0, norms, 1.0)
    return dots


def pairwise_scores(metric: Metric, q: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(B, S) scores of (B, Dk) queries against one shared set of (S, Dk) keys."""
    if metric is Metric.L2:
        q2 = np.einsum("bd,bd->b", q, q)[:, None]  # (B, 1)
        k2 = np.einsum("sd,sd->s", keys, keys)[None, :]  # (1, S)
        return -(q2 - 2.0 * (q @ keys.T) + k2)
    dots = q @ keys.T  # (B, S)
    if metric is Metric.COSINE:  # q is unit-norm already
        norms = np.linalg.norm(keys, axis=1)  # (S,)
        return dots / np.where(norms > 0, norms, 1.0)[None, :]
    return dots


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
    top = scores.max(axis=1)  # (B,)
    shift = np.where(np.isfinite(top), top, 0.0)[:, None]  # (B, 1)
    e = np.exp(scores - shift)  # (B, S)
    mass = e.sum(axis=1)  # (B,)
    with np.errstate(divide="ignore"):
        log_mass = np.log(mass * scale) + shift[:, 0]
    if exact:
        weighted = e @ values.astype(np.float64)  # (B, Dv)
        value = weighted / np.where(mass > 0, mass, 1.0)[:, None]
    else:
        mean = values.astype(np.float64).mean(0).astype(np.float32)  # (Dv,)
        value = np.broadcast_to(mean, (B, Dv))
    return log_mass, np.ascontiguousarray(value, np.float32)
