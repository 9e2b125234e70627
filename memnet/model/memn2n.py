"""End-To-End Memory Network (Sukhbaatar et al. 2015) and Key-Value Memory Network
(Miller et al. 2016) in one module.

The memory is an argument of ``forward`` (the sentences of a story) or of
``hop`` (candidates a bank retrieved), never a submodule: ``state_dict()`` holds
the weights only, and the same weights run against any bank.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memnet.core.enums import AttentionMode
from memnet.model.attention import Attention, metric_scores, top_k_mask
from memnet.model.config import ModelConfig
from memnet.model.encoding import SentenceEncoder, TemporalEncoding
from memnet.model.heads import RelationalHead


@dataclass(frozen=True)
class HopOutput:
    scores: torch.Tensor  # (B, K) attention logits, -inf where masked
    weights: torch.Tensor  # (B, K) attention weights, 0 where masked
    readout: torch.Tensor  # (B, D) o_h = Σ_i p_i c_i


@dataclass(frozen=True)
class MemN2NOutput:
    logits: torch.Tensor  # (B, A) answer logits
    readout: torch.Tensor  # (B, D) final controller state u_H
    hops: list[HopOutput]


class MemN2N(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D = cfg.dim
        # Adjacent tying needs H+1 embeddings (A_1, C_1 = A_2, ..., C_H); the
        # layer-wise and key-value forms need one key (A) and one value (C) encoder.
        n = cfg.hops + 1 if cfg.tying == "adjacent" else 2
        self.memory_encoders = nn.ModuleList(self._sentence_encoder() for _ in range(n))
        self.time_encoders = nn.ModuleList(
            TemporalEncoding(cfg.temporal_buckets, D, init_std=cfg.init_std)
            for _ in range(n if cfg.temporal_buckets > 0 else 0)
        )
        # Layer-wise: a separate question embedding B; adjacent: B = A_1; kv: B = A.
        self.question_encoder = self._sentence_encoder() if cfg.tying == "layerwise" else None
        self.attention = Attention(cfg)
        # R_1..R_H (kv, adjacent with hop_transform), H (layerwise), or none (adjacent).
        self.hop_updates = nn.ModuleList(
            nn.Linear(D, D, bias=False) for _ in range(cfg.update_matrices)
        )
        for lin in self.hop_updates:
            assert isinstance(lin, nn.Linear)
            # Drawn with either init, so that a seed gives the same other weights.
            nn.init.normal_(lin.weight, std=cfg.init_std)
            if cfg.transform_init == "identity":
                nn.init.eye_(lin.weight)
        # GMemN2N transform gates, one per hop: g_h = σ(W_g,h u_h + b_g,h), (B, D).
        self.hop_gates = nn.ModuleList(nn.Linear(D, D) for _ in range(cfg.hops if cfg.gate else 0))
        for gate in self.hop_gates:
            assert isinstance(gate, nn.Linear)
            nn.init.normal_(gate.weight, std=cfg.init_std)
            nn.init.zeros_(gate.bias)
        self.answer = nn.Linear(D, cfg.answer_size, bias=False)  # W
        nn.init.normal_(self.answer.weight, std=cfg.init_std)
        self.relational = RelationalHead(cfg) if cfg.head == "relational" else None

    # --- encoders -------------------------------------------------------------------
    def _sentence_encoder(self) -> SentenceEncoder:
        cfg = self.cfg
        return SentenceEncoder(
            cfg.vocab_size,
            cfg.dim,
            position=cfg.position_encoding,
            init_std=cfg.init_std,
            position_form=cfg.position_form,
            position_length=cfg.position_length,
        )

    def key_slot(self, hop: int) -> int:
        return hop if self.cfg.tying == "adjacent" else 0

    def value_slot(self, hop: int) -> int:
        return hop + 1 if self.cfg.tying == "adjacent" else 1

    def encode_question(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, Tq) -> u_0 (B, D)."""
        if self.question_encoder is not None:
            return self.question_encoder(tokens)
        return self.memory_encoders[0](tokens)

    def encode_keys(self, tokens: torch.Tensor, hop: int = 0) -> torch.Tensor:
        """(..., T) -> (..., D) keys of ``hop`` without the temporal term."""
        return self.memory_encoders[self.key_slot(hop)](tokens)

    def encode_values(self, tokens: torch.Tensor, hop: int = 0) -> torch.Tensor:
        """(..., T) -> (..., D) values of ``hop`` without the temporal term."""
        return self.memory_encoders[self.value_slot(hop)](tokens)

    def add_time(self, x: torch.Tensor, recency: torch.Tensor, slot: int) -> torch.Tensor:
        """m_i + T(i) with i the recency rank (Sukhbaatar et al. 2015, §4.1). (B, K, D)."""
        if len(self.time_encoders) == 0:
            return x
        return x + self.time_encoders[slot](recency)

    # --- one hop --------------------------------------------------------------------
    def update(self, u: torch.Tensor, o: torch.Tensor, hop: int) -> torch.Tensor:
        """u_{h+1} from u_h and the readout o_h, both (B, D)."""
        # The carried state: H u_h for layer-wise tying (§2.2), u_h otherwise.
        carried = self.hop_updates[0](u) if self.cfg.tying == "layerwise" else u
        if self.hop_gates:
            g = torch.sigmoid(self.hop_gates[hop](u))  # (B, D)
            mixed = g * o + (1.0 - g) * carried
        else:
            mixed = carried + o  # Sukhbaatar et al. 2015, eq. (2)
        # kv (and adjacent with hop_transform): q_{j+1} = R_j(q_j + o), Miller et al. 2016, §3.
        nxt = self.hop_updates[hop](mixed) if self.cfg.transforms_update else mixed
        if self.cfg.activation == "half_relu":
            half = nxt.shape[-1] // 2
            nxt = torch.cat([nxt[..., :half], torch.relu(nxt[..., half:])], dim=-1)
        return nxt

    def hop(
        self,
        u: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        hop: int,
        *,
        mode: AttentionMode = AttentionMode.SOFT,
        linear: bool = False,
    ) -> tuple[torch.Tensor, HopOutput]:
        """u (B, D), keys/values (B, K, D) with time terms, mask (B, K) -> u_{h+1}, attention."""
        scores, weights = self.attention(u, keys, mask, mode=mode, linear=linear)  # (B, K)
        o = torch.einsum("bk,bkd->bd", weights, values)  # (B, D)
        return self.update(u, o, hop), HopOutput(scores, weights, o)

    def answer_logits(
        self, u0: torch.Tensor, u: torch.Tensor, hops: list[HopOutput]
    ) -> torch.Tensor:
        """Answer logits (B, A) from u_0 (B, D), the final state u_H (B, D) and the hops."""
        logits = self.answer(u)  # W u_H
        if self.relational is not None:
            readouts = torch.stack([h.readout for h in hops], dim=1)  # (B, H, D)
            logits = logits + self.relational(readouts, u0)
        return logits

    # --- a story as memory ----------------------------------------------------------
    def forward(
        self,
        question: torch.Tensor,
        story: torch.Tensor,
        mask: torch.Tensor,
        *,
        recency: torch.Tensor | None = None,
        k: int | None = None,
        mode: AttentionMode = AttentionMode.SOFT,
        linear: bool = False,
    ) -> MemN2NOutput:
        """question (B, Tq), story (B, M, T), mask (B, M) -> answer logits and attention.

        recency (B, M) is each memory's time index (default: its slot, slot 0 = newest).
        With ``k`` the hop attends over the k memories a bank index would propose (best
        uᵀm without the temporal term), as a served model does over a bank.
        """
        B, M, _ = story.shape  # (B, M, T)
        if recency is None:
            recency = torch.arange(M).expand(B, M)
        u0 = u = self.encode_question(question)  # (B, D)
        encoded: dict[tuple[str, int], torch.Tensor] = {}
        hops: list[HopOutput] = []
        for h in range(self.cfg.hops):
            ks, vs = self.key_slot(h), self.value_slot(h)
            if ("k", ks) not in encoded:
                encoded["k", ks] = self.encode_keys(story, h)  # (B, M, D)
            if ("v", vs) not in encoded:
                encoded["v", vs] = self.add_time(self.encode_values(story, h), recency, vs)
            raw_keys = encoded["k", ks]
            cand = mask
            if k is not None:
                proposal = metric_scores(u, raw_keys, cosine=self.cfg.scoring == "cosine")
                cand = top_k_mask(proposal, mask, k)  # (B, M)
            keys = self.add_time(raw_keys, recency, ks)
            u, out = self.hop(u, keys, encoded["v", vs], cand, h, mode=mode, linear=linear)
            hops.append(out)
        return MemN2NOutput(self.answer_logits(u0, u, hops), u, hops)

    @torch.no_grad()
    def zero_nil_(self) -> None:
        """Keep the nil word's embedding row at zero (Sukhbaatar et al. 2015, §4.2)."""
        encoders = [*self.memory_encoders]
        if self.question_encoder is not None:
            encoders.append(self.question_encoder)
        for enc in encoders:
            assert isinstance(enc, SentenceEncoder)
            enc.embedding.weight[0].zero_()
