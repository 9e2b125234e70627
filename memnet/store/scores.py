"""Exact scores and softmax tails from stored float32 keys: one formula for every store.

Scores are higher-is-better: inner product, cosine (queries unit-norm already), or
-squared L2. Both bank stores (FAISS, Milvus) compute exact scores and tail estimates
here, so the same memories get the same scores and a model the same attention weights
on either store.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from memnet.core.enums import Metric


def exact_scores(metric: Metric, q: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(B, K) scores of (B, Dk) queries against their (B, K, Dk) candidate keys."""
    if metric is Metric.L2:
        diff = keys - q[:, None, :]  # (B, K, Dk)
        return -np.einsum("bkd,bkd->bk", diff, diff)
    dots = np.matmul(keys, q[:, :, None])[:, :, 0]  # (B, K)
    if metric is Metric.COSINE:
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
    if metric is Metric.COSINE:
        norms = np.linalg.norm(keys, axis=1)  # (S,)
        return dots / np.where(norms > 0, norms, 1.0)[None, :]
    return dots


def softmax_tail(
    scores: np.ndarray,
    *,
    scale: float,
    sample_values: np.ndarray | None,
    mean_value: Callable[[], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The (B,) log Σ exp(score) of a softmax's tail and the (B, Dv) value it reads as.

    ``scores`` (B, S) float64: the tail's sampled members, -inf where a member is in the
    row's result. ``scale`` = population / samples (1.0 when every member is scored).
    ``sample_values`` (S, Dv): with every member scored, the tail value is their
    exp(score)-weighted mean; None (a sample): ``mean_value()``, the population's (Dv,)
    mean value. An empty tail has log mass -inf.
    """
    top = scores.max(axis=1)  # (B,)
    shift = np.where(np.isfinite(top), top, 0.0)[:, None]  # (B, 1)
    e = np.exp(scores - shift)  # (B, S)
    mass = e.sum(axis=1)  # (B,)
    with np.errstate(divide="ignore"):
        log_mass = np.log(mass * scale) + shift[:, 0]
    if sample_values is not None:
        weighted = e @ sample_values.astype(np.float64)  # (B, Dv)
        value = weighted / np.where(mass > 0, mass, 1.0)[:, None]
    else:
        mean = mean_value()  # (Dv,)
        value = np.broadcast_to(mean, (scores.shape[0], mean.shape[0]))
    return log_mass, np.ascontiguousarray(value, np.float32)
