"""Attention of one hop over K candidate memories: scoring, heads and modes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from memnet.core.enums import AttentionMode
from memnet.model.config import ModelConfig


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis where ``mask``; rows without a candidate are all 0."""
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return F.softmax(filled, dim=-1) * mask


def hard_weights(weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """All weight on the argmax candidate (one memory); rows without a candidate stay 0."""
    best = weights.masked_fill(~mask, -1.0).argmax(-1)  # (B,)
    one_hot = F.one_hot(best, weights.shape[-1]).to(weights.dtype)  # (B, K)
    return one_hot * mask.any(-1, keepdim=True)


class Attention(nn.Module):
    """p = softmax(score(W_h u, m_i)) per head h, averaged over heads.

    Scoring: dot uᵀm (Sukhbaatar et al. 2015, eq. 1), scaled dot uᵀm/√D (Vaswani et al.
    2017), or cosine with a learned temperature τ·cos(u, m). With ``heads`` > 1 each
    head projects the query with its own W_h (initialised to the identity) and all heads
    share the candidates; o = Σ_i p̄_i c_i with p̄ the mean of the heads' weights, so the
    reported weights are exactly the ones the readout used.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.scoring = cfg.scoring
        self.heads = cfg.heads
        self.query_proj: nn.Parameter | None = None
        if cfg.heads > 1:
            eye = torch.eye(cfg.dim).expand(cfg.heads, cfg.dim, cfg.dim)
            noise = torch.randn(cfg.heads, cfg.dim, cfg.dim) * (cfg.init_std / cfg.dim)
            self.query_proj = nn.Parameter(eye + noise)  # (Hd, D, D)
        self.log_temperature: nn.Parameter | None = None
        if cfg.scoring == "cosine":
            self.log_temperature = nn.Parameter(torch.tensor(math.log(10.0)))

    def head_scores(self, u: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """u (B, D), keys (B, K, D) -> (B, Hd, K) attention logits."""
        D = keys.shape[-1]
        q = u.unsqueeze(1)  # (B, 1, D)
        if self.query_proj is not None:
            q = torch.einsum("hde,be->bhd", self.query_proj, u)  # (B, Hd, D)
        if self.scoring == "cosine":
            assert self.log_temperature is not None
            q, keys = F.normalize(q, dim=-1), F.normalize(keys, dim=-1)
            return self.log_temperature.exp() * torch.einsum("bhd,bkd->bhk", q, keys)
        s = torch.einsum("bhd,bkd->bhk", q, keys)  # (B, Hd, K)
        return s / math.sqrt(D) if self.scoring == "scaled_dot" else s

    def forward(
        self,
        u: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor,
        *,
        mode: AttentionMode = AttentionMode.SOFT,
        linear: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """u (B, D), keys (B, K, D), mask (B, K) -> scores (B, K), weights (B, K).

        SOFT and SPARSE normalise over the candidates they are given (SPARSE callers
        pass the top-k only); HARD puts weight 1 on the argmax. ``linear`` drops the
        softmax, as in the linear-start phase of training (Sukhbaatar et al. 2015, §4.2).
        """
        s = self.head_scores(u, keys)  # (B, Hd, K)
        m = mask.unsqueeze(1)  # (B, 1, K)
        w = s * m if linear else masked_softmax(s, m)  # (B, Hd, K)
        scores = s.mean(1).masked_fill(~mask, float("-inf"))  # (B, K)
        weights = w.mean(1)  # (B, K)
        if mode is AttentionMode.HARD and not linear:
            weights = hard_weights(weights, mask)
        return scores, weights


def metric_scores(u: torch.Tensor, keys: torch.Tensor, *, cosine: bool) -> torch.Tensor:
    """The score a bank index ranks candidates by: uᵀm or cos(u, m). (B, D), (B, M, D) -> (B, M)."""
    if cosine:
        u, keys = F.normalize(u, dim=-1), F.normalize(keys, dim=-1)
    return torch.einsum("bd,bmd->bm", u, keys)


def top_k_mask(scores: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """(B, M) bool: the k best-scoring valid candidates of each row (all of them if k >= M)."""
    M = scores.shape[-1]
    if k >= M:
        return mask
    idx = scores.masked_fill(~mask, float("-inf")).topk(k, dim=-1).indices  # (B, k)
    chosen = torch.zeros_like(mask).scatter_(-1, idx, True)
    return chosen & mask
