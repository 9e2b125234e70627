"""The inference forward of a MemN2N / KV-MemNN in numpy, for served queries.

A served query runs one question (or a small batch) through H hops over K ≤ a few
hundred candidates: tensors of a few thousand floats, where torch spends more time
dispatching each of the ~25 operations of a hop than computing it. This module holds
a trained ``MemN2N``'s weights as float32 arrays and runs the same equations with
numpy (docs/server.md, "What one query RPC costs"): question encoding, the hops'
temporal terms, attention (dot, scaled dot or cosine; one or more heads; soft, sparse
or hard), readout, hop update and answer head. Training and memory encoding stay in
torch (``memnet.model.memn2n``); ``tests/memnet/model/test_model_served.py`` checks
this forward against the training-time one for every served configuration.

Shapes: B queries, K candidates, D the model's dimension, T words per question.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from memnet.core.enums import AttentionMode
from memnet.model.config import ModelConfig

if TYPE_CHECKING:  # torch stays out of this module's imports
    from memnet.model.memn2n import MemN2N

F32_MIN = float(np.finfo(np.float32).min)


def _f32(x: object) -> np.ndarray:
    """A torch parameter or tensor as a contiguous float32 numpy array (a copy)."""
    return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Linear:
    """y = x Wᵀ + b."""

    weight_t: np.ndarray  # (in, out), Wᵀ
    bias: np.ndarray | None  # (out,)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.weight_t
        return y if self.bias is None else y + self.bias

    @classmethod
    def of(cls, module: object) -> Linear:
        bias = getattr(module, "bias", None)
        return cls(_f32(module.weight).T.copy(), None if bias is None else _f32(bias))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Relational:
    """The relation-network head (``memnet.model.heads.RelationalHead``) at inference."""

    first_i: Linear
    first_j: Linear
    first_q: Linear
    rest: list[Linear | None]  # the hidden layers in order; None = ReLU
    out: Linear

    def __call__(self, readouts: np.ndarray, u0: np.ndarray) -> np.ndarray:
        """readouts (B, H, D), u0 (B, D) -> (B, A) logits."""
        a = self.first_i(readouts)[:, :, None, :]  # (B, H, 1, R)
        b = self.first_j(readouts)[:, None, :, :]  # (B, 1, H, R)
        q = self.first_q(u0)[:, None, None, :]  # (B, 1, 1, R)
        g = a + b + q  # (B, H, H, R)
        for layer in self.rest:
            g = np.maximum(g, 0.0) if layer is None else layer(g)
        return self.out(g.sum(axis=(1, 2)))  # (B, A)


@dataclass(frozen=True)
class HopResult:
    u: np.ndarray  # (B, D) u_{h+1}
    scores: np.ndarray  # (B, K) float32 attention logits, -inf where masked
    weights: np.ndarray  # (B, K) float32 attention weights, 0 where masked
    readout: np.ndarray  # (B, D) o_h


class ServedForward:
    """A trained model's inference forward over retrieved candidates (numpy, float32)."""

    def __init__(self, model: MemN2N) -> None:
        cfg: ModelConfig = model.cfg
        self.cfg = cfg
        question = model.question_encoder or model.memory_encoders[0]
        embedding = _f32(question.embedding.weight)  # type: ignore[union-attr]  # (V, D)
        embedding[0] = 0.0  # the nil word adds nothing (torch's padding_idx=0)
        self.question_embedding = embedding
        # T_A / T_C per encoder slot (key slot 0, value slot 1 for the served tyings).
        self.time_tables = [  # (buckets, D) each
            _f32(t.table.weight)  # type: ignore[union-attr]
            for t in model.time_encoders
        ]
        self.key_slots = [model.key_slot(h) for h in range(cfg.hops)]
        self.value_slots = [model.value_slot(h) for h in range(cfg.hops)]
        att = model.attention
        self.query_proj = None if att.query_proj is None else _f32(att.query_proj)  # (Hd, D, D)
        self.temperature = (
            None if att.log_temperature is None else float(att.log_temperature.detach().exp())
        )
        self.updates = [Linear.of(m) for m in model.hop_updates]
        self.gates = [Linear.of(m) for m in model.hop_gates]
        self.answer = Linear.of(model.answer)
        self.relational: Relational | None = None
        if model.relational is not None:
            r = model.relational
            rest: list[Linear | None] = []
            for layer in r.rest:
                kind = type(layer).__name__
                if kind == "Linear":
                    rest.append(Linear.of(layer))
                elif kind == "ReLU":
                    rest.append(None)
                elif kind != "Dropout":  # identity at inference
                    raise TypeError(f"relational head layer {kind} has no served form")
            self.relational = Relational(
                Linear.of(r.first_i), Linear.of(r.first_j), Linear.of(r.first_q), rest,
                Linear.of(r.out),
            )  # fmt: skip

    # --- question ------------------------------------------------------------------
    def encode_question(self, tokens: np.ndarray) -> np.ndarray:
        """tokens (B, T) int64, words packed left, 0 = nil -> u_0 (B, D)."""
        E = self.question_embedding
        T = tokens.shape[1]
        rows = E[tokens]  # (B, T, D); row 0 (nil) is zero
        if not self.cfg.position_encoding:
            return rows.sum(axis=1, dtype=np.float32)
        alpha, gamma, beta = self._position_terms((tokens > 0).sum(-1), T, E.shape[1])
        a = np.matmul(alpha[:, None, :], rows)[:, 0]  # (B, D) Σ_j α_j E[w_j]
        g = np.matmul(gamma[:, None, :], rows)[:, 0]  # (B, D) Σ_j γ_j E[w_j]
        return (a + beta * g).astype(np.float32, copy=False)

    def _position_terms(
        self, lengths: np.ndarray, T: int, D: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """α (B, T), γ (B, T), β (D,): l_kj = α_j + β_k γ_j (``encoding.position_terms``)."""
        j = np.arange(1, T + 1, dtype=np.float32)  # (T,)
        k = np.arange(1, D + 1, dtype=np.float32)  # (D,)
        own = np.maximum(lengths, 1).astype(np.float32)[:, None]  # (B, 1)
        inside = (j <= own).astype(np.float32)  # (B, T)
        if self.cfg.position_form == "reference":
            J = self.cfg.position_length
            return inside, inside * ((j - (J + 1) / 2) / J), 4 * (k - (D + 1) / 2) / D
        ratio = j / own  # (B, T)
        return inside * (1 - ratio), inside * (2 * ratio - 1), k / D

    # --- one hop -------------------------------------------------------------------
    def hop(
        self,
        u: np.ndarray,
        keys: np.ndarray,
        values: np.ndarray,
        *,
        recency: np.ndarray,
        mask: np.ndarray,
        hop: int,
        mode: AttentionMode,
    ) -> HopResult:
        """u (B, D); keys, values (B, K, D) without time terms; recency (B, K) int64
        (0 = newest, -1 padding); mask (B, K) bool -> u_{h+1} and the hop's attention."""
        if self.time_tables:
            last = self.time_tables[0].shape[0] - 1
            ranks = np.maximum(np.minimum(recency, last), 0)  # (B, K)
            keys = keys + self.time_tables[self.key_slots[hop]][ranks]
            values = values + self.time_tables[self.value_slots[hop]][ranks]
        s = self._head_scores(u, keys)  # (B, Hd, K)
        full = bool(mask.all())  # the usual case: k candidates found for every row
        filled = s if full else np.where(mask[:, None, :], s, F32_MIN)
        e = np.exp(filled - filled.max(axis=-1, keepdims=True))
        w = e / e.sum(axis=-1, keepdims=True)  # (B, Hd, K)
        if not full:
            w *= mask[:, None, :]
        if s.shape[1] == 1:
            scores, weights = s[:, 0], w[:, 0]
        else:
            scores, weights = s.mean(axis=1), w.mean(axis=1)
        if not full:
            scores = np.where(mask, scores, -np.inf)
        scores = scores.astype(np.float32, copy=False)
        if mode is AttentionMode.HARD:
            best = np.where(mask, weights, -1.0).argmax(-1)  # (B,)
            weights = np.zeros_like(weights)
            weights[np.arange(len(best)), best] = mask.any(-1)
        weights = weights.astype(np.float32, copy=False)
        o = np.matmul(weights[:, None, :], values)[:, 0]  # (B, D) Σ_i p_i c_i
        return HopResult(self._update(u, o, hop), scores, weights, o)

    def _head_scores(self, u: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """u (B, D), keys (B, K, D) -> (B, Hd, K) logits (``Attention.head_scores``)."""
        if self.query_proj is None:
            q = u[:, None, :]  # (B, 1, D)
        else:
            q = np.einsum("hde,be->bhd", self.query_proj, u)  # (B, Hd, D)
        if self.temperature is not None:  # cosine
            q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
            keys = keys / np.maximum(np.linalg.norm(keys, axis=-1, keepdims=True), 1e-12)
            return np.float32(self.temperature) * np.matmul(q, keys.transpose(0, 2, 1))
        s = np.matmul(q, keys.transpose(0, 2, 1))  # (B, Hd, K)
        if self.cfg.scoring == "scaled_dot":
            return s / np.float32(math.sqrt(keys.shape[-1]))
        return s

    def _update(self, u: np.ndarray, o: np.ndarray, hop: int) -> np.ndarray:
        """u_{h+1} from u_h and the readout o_h (``MemN2N.update``). (B, D) each."""
        cfg = self.cfg
        carried = self.updates[0](u) if cfg.tying == "layerwise" else u
        if self.gates:
            g = 1.0 / (1.0 + np.exp(-self.gates[hop](u)))  # (B, D)
            mixed = g * o + (1.0 - g) * carried
        else:
            mixed = carried + o
        nxt = self.updates[hop](mixed) if cfg.transforms_update else mixed
        if cfg.activation == "half_relu":
            half = nxt.shape[-1] // 2
            nxt = np.concatenate([nxt[..., :half], np.maximum(nxt[..., half:], 0.0)], axis=-1)
        return nxt.astype(np.float32, copy=False)

    # --- answer --------------------------------------------------------------------
    def answer_probs(self, u0: np.ndarray, u: np.ndarray, readouts: list[np.ndarray]) -> np.ndarray:
        """softmax(W u_H [+ relational]) over the answer vocabulary. (B, A) float32."""
        logits = self.answer(u)  # (B, A)
        if self.relational is not None:
            logits = logits + self.relational(np.stack(readouts, axis=1), u0)
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32, copy=False)
