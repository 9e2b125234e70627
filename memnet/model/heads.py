"""Answer heads: from the controller state and the hops' readouts to answer logits."""

from __future__ import annotations

import torch
from torch import nn

from memnet.model.config import ModelConfig


class RelationalHead(nn.Module):
    """W_r Σ_{i,j} g([o_i; o_j; u_0]) over the H readouts of one query.

    The relation network of the Working Memory Network (Pavez et al. 2018, §3.3): the
    readouts o_h = Σ_i p_i c_i the hops produced form a small working buffer, and g (an
    MLP) scores every ordered pair of them together with the question. It costs H² MLP
    passes per query whatever the bank's size, and the attention weights the hops
    report are still exactly the ones that made o_1..o_H.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        D, R = cfg.dim, cfg.relation_dim
        # The first layer of g is linear in [o_i; o_j; u_0], so it is applied to each
        # part once and summed per pair: H items instead of H² concatenations.
        self.first_i = nn.Linear(D, R, bias=True)
        self.first_j = nn.Linear(D, R, bias=False)
        self.first_q = nn.Linear(D, R, bias=False)
        rest: list[nn.Module] = []
        for _ in range(cfg.relation_layers - 1):
            rest += [nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(R, R)]
        rest += [nn.ReLU(), nn.Dropout(cfg.dropout)]
        self.rest = nn.Sequential(*rest)
        self.out = nn.Linear(R, cfg.answer_size, bias=False)  # W_r

    def forward(self, readouts: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
        """readouts (B, H, D), question u_0 (B, D) -> (B, A) logits."""
        a = self.first_i(readouts).unsqueeze(2)  # (B, H, 1, R)
        b = self.first_j(readouts).unsqueeze(1)  # (B, 1, H, R)
        q = self.first_q(question)[:, None, None, :]  # (B, 1, 1, R)
        g = self.rest(a + b + q)  # (B, H, H, R)
        return self.out(g.sum(dim=(1, 2)))  # (B, A)
