"""Sentence and time encoders (Sukhbaatar et al. 2015, §4.1)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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


def position_terms(
    lengths: torch.Tensor, T: int, D: int, form: PositionForm, J: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The position weights factored as l_kj = α_j + β_k γ_j.

    paper:      α_j = 1 - j/J_s, γ_j = 2j/J_s - 1, β_k = k/d (J_s the sentence's length);
    reference:  α_j = 1, γ_j = (j - (J+1)/2)/J, β_k = 4(k - (d+1)/2)/d (one J for all).
    α and γ are 0 past each sentence's length. lengths (N,) int64 -> α (N, T),
    γ (N, T), β (D,), all float32; equal to ``position_encoding`` /
    ``reference_position_encoding`` as l = α[..., None] + β γ[..., None].
    """
    j = torch.arange(1, T + 1, dtype=torch.float32)  # (T,)
    k = torch.arange(1, D + 1, dtype=torch.float32)  # (D,)
    own = lengths.clamp(min=1).to(torch.float32).unsqueeze(-1)  # (N, 1)
    inside = (j <= own).to(torch.float32)  # (N, T)
    if form == "reference":
        alpha = inside
        gamma = inside * (j - (J + 1) / 2) / J
        beta = 4 * (k - (D + 1) / 2) / D
    else:
        ratio = j / own  # (N, T)
        alpha = inside * (1 - ratio)
        gamma = inside * (2 * ratio - 1)
        beta = k / D
    return alpha, gamma, beta


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
        *lead, T = tokens.shape
        weight = self.embedding.weight  # (V, D)
        out_shape = (*lead, weight.shape[1])  # (..., D)
        if T == 0:  # no words: the empty sum (embedding_bag needs T >= 1)
            return weight.new_zeros(out_shape)
        flat = tokens.reshape(math.prod(lead), T)  # (N, T)
        if not self.position:
            return F.embedding_bag(flat, weight, mode="sum", padding_idx=0).reshape(out_shape)
        # Both forms are l_kj = α_j + β_k γ_j, so Σ_j l_j ⊙ E[w_j] is two weighted
        # bags, Σ_j α_j E[w_j] + β ⊙ Σ_j γ_j E[w_j], without a (..., T, D) tensor.
        lengths = (flat > 0).sum(-1)  # (N,)
        alpha, gamma, beta = position_terms(
            lengths, T, weight.shape[1], self.position_form, self.position_length
        )
        a = F.embedding_bag(flat, weight, per_sample_weights=alpha, mode="sum", padding_idx=0)
        g = F.embedding_bag(flat, weight, per_sample_weights=gamma, mode="sum", padding_idx=0)
        return (a + beta * g).reshape(out_shape)


class TemporalEncoding(nn.Module):
    """T[i] for the i-th most recent memory; ranks past the last bucket share it."""

    def __init__(self, buckets: int, dim: int, *, init_std: float) -> None:
        super().__init__()
        self.table = nn.Embedding(buckets, dim)
        nn.init.normal_(self.table.weight, std=init_std)

    def forward(self, recency: torch.Tensor) -> torch.Tensor:
        """recency (...,) int64, 0 = newest, -1 padding -> (..., D)."""
        return self.table(recency.clamp(0, self.table.num_embeddings - 1))
