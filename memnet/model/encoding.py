"""Sentence and time encoders (Sukhbaatar et al. 2015, §4.1)."""

from __future__ import annotations

import torch
from torch import nn

from memnet.model.config import PositionForm


def position_encoding(lengths: torch.Tensor, T: int, D: int) -> torch.Tensor:
    """Position weights l_j for sentences of ``lengths`` words padded to ``T``.

    l_kj = (1 - j/J) - (k/d)(1 - 2j/J), with j = 1..J the word position, k = 1..d the
    embedding dimension and J the sentence's own length (Sukhbaatar et al. 2015, §4.1).
    lengths: (...,) int64 -> (..., T, D) float32; positions past J are 0.
    """
    J = lengths.clamp(min=1).to(torch.float32).unsqueeze(-1)  # (..., 1)
    j = torch.arange(1, T + 1, dtype=torch.float32)  # (T,)
    k = torch.arange(1, D + 1, dtype=torch.float32) / D  # (D,)
    ratio = (j / J).unsqueeze(-1)  # (..., T, 1)
    weights = (1 - ratio) - k * (1 - 2 * ratio)  # (..., T, D)
    return weights * (j.unsqueeze(-1) <= J.unsqueeze(-1)).to(weights.dtype)


def reference_position_encoding(lengths: torch.Tensor, T: int, D: int, J: int) -> torch.Tensor:
    """The authors' code's position weights (MemN2N-babi-matlab), not the paper's formula.

    l_kj = 1 + 4 (k - (d+1)/2)(j - (J+1)/2) / (d J), with one J for every sentence (the
    padded sentence length of the reference code, 12 on bAbI) instead of each sentence's
    own length. lengths: (...,) int64 -> (..., T, D) float32; positions past a
    sentence's length are 0.
    """
    j = torch.arange(1, T + 1, dtype=torch.float32)  # (T,)
    k = torch.arange(1, D + 1, dtype=torch.float32)  # (D,)
    weights = 1 + 4 * (k - (D + 1) / 2) * (j - (J + 1) / 2).unsqueeze(-1) / (D * J)  # (T, D)
    inside = j.unsqueeze(-1) <= lengths.clamp(min=1).to(torch.float32)[..., None, None]
    return weights * inside.to(weights.dtype)  # (..., T, D)


class SentenceEncoder(nn.Module):
    """Bag of words, optionally position-weighted: m = Σ_j l_j ⊙ E[w_j]. Row 0 (nil) stays 0.

    position_form "paper" uses ``position_encoding``; "reference" uses
    ``reference_position_encoding`` with J = ``position_length``.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        position: bool,
        init_std: float,
        position_form: PositionForm = "paper",
        position_length: int = 12,
    ) -> None:
        super().__init__()
        self.position = position
        self.position_form = position_form
        self.position_length = position_length
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=init_std)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (..., T) int64, words packed left, 0 = nil -> (..., D)."""
        T = tokens.shape[-1]
        e = self.embedding(tokens)  # (..., T, D)
        if self.position:
            lengths = (tokens > 0).sum(-1)  # (...,)
            D = e.shape[-1]
            if self.position_form == "reference":
                e = e * reference_position_encoding(lengths, T, D, self.position_length)
            else:
                e = e * position_encoding(lengths, T, D)
        return e.sum(-2)


class TemporalEncoding(nn.Module):
    """T[i] for the i-th most recent memory; ranks past the last bucket share it."""

    def __init__(self, buckets: int, dim: int, *, init_std: float) -> None:
        super().__init__()
        self.table = nn.Embedding(buckets, dim)
        nn.init.normal_(self.table.weight, std=init_std)

    def forward(self, recency: torch.Tensor) -> torch.Tensor:
        """recency (...,) int64, 0 = newest, -1 padding -> (..., D)."""
        return self.table(recency.clamp(0, self.table.num_embeddings - 1))
