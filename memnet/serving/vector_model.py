"""The pass-through model: attention over vectors the caller brings.

No weights and no torch: the caller's query u is compared with the candidates'
keys by the bank's own metric (the exact float32 scores of ``SearchResult``:
inner product, cosine, or minus squared L2), p = softmax over the candidates
(or all weight on the best one), o = Σ p v. With several hops, u ← u + o and the
bank is searched again, which needs Dk == Dv. The readout is u_H = u_0 + Σ o_h
when Dk == Dv, and o (B, Dv) for a single hop when they differ.

When the source's search estimated the tail (``SearchResult.tail_log_mass``: the
log Σ exp(score) of the memories outside the top-k), sparse and soft attention
normalise over the candidates plus that tail: p_i = exp(s_i) / Z with
Z = Σ_K exp(s) + tail, and the tail's share reads ``tail_value`` (the bank's mean
value when the tail was sampled, its exact softmax-weighted mean when every memory
was scored): o = Σ p v + p_tail · v_tail. Without it the softmax runs over the K alone.
"""

from __future__ import annotations

import numpy as np

from memnet.core.checks import ALL_MODES, check_queries, per_hop_options
from memnet.core.search_options import SearchOptions
from memnet.errors import FailedPrecondition, InvalidArgument
from memnet.serving.contract import (
    AttentionMode,
    EncodedMemories,
    EncodedTexts,
    HopAttention,
    InputKind,
    MemorySource,
    ModelInfo,
    QueryOutput,
    check_options,
)
from memnet.store.types import Metric

VECTOR_MODEL = "vector"
MAX_VECTOR_HOPS = 8


def _attend(scores: np.ndarray, valid: np.ndarray, mode: AttentionMode) -> np.ndarray:
    """(B, K) scores and mask -> (B, K) weights; rows without a candidate are 0."""
    if mode is not AttentionMode.HARD:  # a softmax with nothing outside the K
        return _attend_with_tail(scores, valid, np.full(len(scores), -np.inf))[0]
    s = np.where(valid, scores, -np.inf)
    w = np.zeros(s.shape, np.float32)
    w[np.arange(len(s)), s.argmax(-1)] = 1.0
    return w * valid


def _attend_with_tail(
    scores: np.ndarray, valid: np.ndarray, tail_log_mass: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax over the K candidates *and* the rest of the bank, whose log Σ exp(score)
    is ``tail_log_mass`` (B,): (B, K) weights and (B,) tail weights, summing to 1 per
    row (0 and 0 for a row with nothing at all)."""
    s = np.where(valid, scores, -np.inf).astype(np.float64)  # (B, K)
    shift = np.maximum(np.max(s, axis=-1), tail_log_mass)  # (B,) largest term, or -inf
    shift = np.where(np.isfinite(shift), shift, 0.0)[:, None]  # (B, 1)
    e = np.exp(s - shift)  # (B, K)
    e_tail = np.exp(tail_log_mass[:, None] - shift)[:, 0]  # (B,)
    z = e.sum(-1) + e_tail  # (B,)
    z = np.where(z > 0, z, 1.0)
    return (e / z[:, None] * valid).astype(np.float32), (e_tail / z).astype(np.float32)


class VectorPassThroughModel:
    def __init__(self, name: str = VECTOR_MODEL) -> None:
        self.info = ModelInfo(
            name=name,
            description=(
                "Pass-through: callers write their own key and value vectors and query with "
                "their own vector; scores are the bank metric's exact scores, o = Σ p v, "
                "u ← u + o between hops (hops > 1 needs key_dim == value_dim). No answer head."
            ),
            input_kind=InputKind.VECTOR,
            key_dim=None,
            value_dim=None,
            default_hops=1,
            max_hops=MAX_VECTOR_HOPS,
            metric=Metric.INNER_PRODUCT,
            scoring="dot",
            heads=1,
            attention_modes=ALL_MODES,
            vocab_size=0,
            answer_vocab=(),
            temporal_buckets=0,
        )

    def encode_memories(self, texts: list[str]) -> EncodedMemories:
        raise FailedPrecondition(
            f"model {self.info.name!r} takes vectors, not text: send keys and values", field="model"
        )

    def encode_queries(self, texts: list[str]) -> EncodedTexts:
        raise FailedPrecondition(
            f"model {self.info.name!r} takes vectors, not text: send a query vector", field="model"
        )

    def query(
        self, queries: np.ndarray, memory: MemorySource, options: SearchOptions
    ) -> QueryOutput:
        check_options(self.info, options)
        u = check_queries(queries, None)  # (B, Dk)
        H = options.hops or self.info.default_hops
        hop_options = per_hop_options(options, memory)
        mode = options.mode
        out: list[HopAttention] = []
        readout = u
        for _ in range(H):
            res = memory.retrieve(u, hop_options)
            if res.values is None:
                raise FailedPrecondition("the memory source returned no vectors", field="bank")
            scores, valid = np.asarray(res.scores), np.asarray(res.valid, dtype=bool)
            tail: np.ndarray | None = None  # (B,) weight of the memories outside the K
            if res.tail_log_mass is not None and mode is not AttentionMode.HARD:
                weights, tail = _attend_with_tail(scores, valid, res.tail_log_mass)
            else:
                weights = _attend(scores, valid, mode)
            o = np.einsum("bk,bkd->bd", weights, res.values).astype(np.float32)  # (B, Dv)
            if tail is not None and res.tail_value is not None:
                o += tail[:, None] * res.tail_value  # (B, Dv): what the rest of the bank reads
            out.append(HopAttention(res.ids, np.asarray(scores, np.float32), weights, tail))
            if o.shape[-1] != u.shape[-1]:
                if H > 1:
                    raise InvalidArgument(
                        f"hops > 1 needs key_dim == value_dim, the bank has {u.shape[-1]} "
                        f"and {o.shape[-1]}",
                        field="hops",
                    )
                readout = o
                break
            u = readout = u + o
        return QueryOutput(readout=readout, hops=out, answer_probs=None)
