"""How a training epoch is cut into batches: order, length buckets, trimming, random noise.

Shapes: B questions in a batch, M memory slots, T words per sentence.
"""

from __future__ import annotations

import numpy as np
import torch

from memnet.data.tensors import BabiTensors


def random_time(lengths: np.ndarray, M: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Time indices with random empty memories interleaved (RN, Sukhbaatar et al. 2015, §4.2).

    For n memories, up to ceil(noise·n) empty slots are added; the n real memories take a
    sorted random subset of the n + blanks time indices. (B,) -> (B, M) int64.
    """
    n = np.asarray(lengths, dtype=np.int64)  # (B,)
    B = len(n)
    out = np.tile(np.arange(M, dtype=np.int64), (B, 1))
    if B == 0:
        return out
    blanks = rng.integers(0, np.ceil(noise * n).astype(np.int64) + 1)  # (B,), 0..ceil(noise·n)
    span = n + blanks  # (B,) time indices to choose from
    W = int(span.max())
    slots = np.arange(W)  # (W,)
    keys = np.where(slots < span[:, None], rng.random((B, W)), np.inf)  # (B, W)
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)  # (B, W) rank of each slot's key
    chosen = np.sort(np.where(rank < n[:, None], slots, W), axis=1)[:, :M]  # (B, ≤M) ascending
    take = np.arange(chosen.shape[1]) < n[:, None]  # the first n of each row are real
    out[:, : chosen.shape[1]][take] = chosen[take]
    return out


def batch_order(
    lengths: torch.Tensor, batch_size: int, bucket: int, gen: torch.Generator
) -> list[torch.Tensor]:
    """Random batches; with ``bucket``, similar story lengths share a batch.

    Each pool of ``bucket`` random batches is sorted by story length before it is cut
    into batches, and the batches are shuffled: the memory of a batch is then padded to
    a length near its stories' own instead of the longest story of the data set.
    """
    order = torch.randperm(len(lengths), generator=gen)
    if bucket > 0:
        pool = batch_size * bucket
        chunks = [order[i : i + pool] for i in range(0, len(order), pool)]
        order = torch.cat([c[lengths[c].argsort(stable=True)] for c in chunks])
    batches = list(order.split(batch_size))
    shuffle = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in shuffle]


def trim(data: BabiTensors, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stories (B, M', T'), mask (B, M') and lengths of ``idx``, cut to their longest story."""
    lengths = data.lengths[idx]
    M = max(1, int(lengths.max()))
    stories = data.stories[idx, :M]  # (B, M', T)
    T = max(1, int((stories > 0).sum(-1).max()))
    mask = torch.arange(M).unsqueeze(0) < lengths.unsqueeze(1)  # (B, M')
    return stories[..., :T], mask, lengths
