"""A text checkpoint as a ``ServedModel``: encoders and hop-by-hop attention over a bank.

Serving design (docs/model.md):
  * One key space. Every hop scores against the same key encoder A (layer-wise tying or
    the key-value form), so one FAISS index per bank serves all hops. A checkpoint whose
    hops need different key spaces (adjacent tying, H > 1) is refused.
  * Keys and values are encoded once, at write time, without the temporal term:
    k = Σ_j l_j ⊙ A[w_j], v = Σ_j l_j ⊙ C[w_j].
  * Time index = recency rank among the bank's live memories (0 = newest), clipped to
    the last trained bucket. The index proposes candidates by uᵀk (no temporal term);
    the model re-scores them exactly with T_A[rank] added to each key and T_C[rank] to
    each value. On a story-sized bank with k >= M this is the training-time forward.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from memnet.core.checks import ALL_MODES, check_queries, per_hop_options
from memnet.core.search_options import SearchOptions
from memnet.errors import FailedPrecondition
from memnet.model.checkpoint import Checkpoint, load_checkpoint
from memnet.model.memn2n import MemN2N
from memnet.model.served_forward import ServedForward
from memnet.model.text_encoding import text_tokens
from memnet.serving.contract import (
    EncodedMemories,
    EncodedTexts,
    HopAttention,
    InputKind,
    MemorySource,
    ModelInfo,
    QueryOutput,
    check_options,
)
from memnet.store.types import Metric, SearchResult

LOG = logging.getLogger(__name__)

ENCODE_CHUNK = 4096  # texts encoded per torch call


@dataclass(frozen=True)
class Candidates:
    """A hop's ``SearchResult`` checked against the model: float32 arrays, no copies
    when the source already returns them so."""

    keys: np.ndarray  # (B, K, Dk) float32
    values: np.ndarray  # (B, K, Dv) float32
    mask: np.ndarray  # (B, K) bool
    recency: np.ndarray  # (B, K) int64, 0 = newest, -1 padding

    @classmethod
    def from_search(cls, res: SearchResult, *, dim: int) -> Candidates:
        if res.keys is None or res.values is None:
            raise FailedPrecondition("the memory source returned no vectors", field="bank")
        if res.keys.shape[-1] != dim or res.values.shape[-1] != dim:
            raise FailedPrecondition(
                f"bank vectors have dims {res.keys.shape[-1]}/{res.values.shape[-1]}, "
                f"the model needs {dim}: re-encode the bank with this model",
                field="bank",
            )
        return cls(
            keys=np.asarray(res.keys, dtype=np.float32),
            values=np.asarray(res.values, dtype=np.float32),
            mask=np.asarray(res.valid, dtype=bool),
            recency=np.asarray(res.recency, dtype=np.int64),
        )


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (None: leave the setting alone).

    Measured on 2 cores (docs/results.md): a served query of B=1..64 over K=50 is
    faster on one thread. The previous setting is restored afterwards; nothing is set
    at import time.
    """
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TextMemoryModel:
    """A MemN2N / KV-MemNN checkpoint served over banks of text memories.

    ``threads``: torch threads used inside ``query`` and the encoders (None = leave
    torch's setting alone).
    """

    def __init__(
        self, ckpt: Checkpoint, *, name: str | None = None, threads: int | None = 1
    ) -> None:
        cfg = ckpt.model_config
        if not cfg.single_key_space:
            raise FailedPrecondition(
                f"checkpoint {ckpt.name!r} uses adjacent weight tying over {cfg.hops} hops: "
                "each hop has its own key space, which one bank index cannot serve",
                field="model",
            )
        self.checkpoint = ckpt
        self.threads = threads
        self.model: MemN2N = ckpt.build_model()
        # Queries run on numpy copies of the weights (memnet.model.served_forward);
        # memories are encoded in batches with torch.
        self.forward = ServedForward(self.model)
        self.info = ModelInfo(
            name=name or ckpt.name,
            description=ckpt.description or _describe(ckpt),
            input_kind=InputKind.TEXT,
            key_dim=cfg.dim,
            value_dim=cfg.dim,
            default_hops=cfg.hops,
            max_hops=cfg.hops,
            metric=Metric.COSINE if cfg.scoring == "cosine" else Metric.INNER_PRODUCT,
            scoring=cfg.scoring,
            heads=cfg.heads,
            attention_modes=ALL_MODES,
            vocab_size=cfg.vocab_size,
            answer_vocab=ckpt.answers.words,
            temporal_buckets=cfg.temporal_buckets,
            card=ckpt.card,
        )

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, name: str | None = None, threads: int | None = 1
    ) -> TextMemoryModel:
        return cls(load_checkpoint(Path(path)), name=name, threads=threads)

    def encode_memories(self, texts: list[str]) -> EncodedMemories:
        """Keys Σ_j l_j ⊙ A[w_j] and values Σ_j l_j ⊙ C[w_j], no temporal term. (N, D) each."""
        tokens, unknown = text_tokens(texts, self.checkpoint.vocab, field="texts")
        with torch.inference_mode(), torch_threads(self.threads):
            # Chunks bound the (n, T, D) embedding tensors.
            chunks = torch.from_numpy(tokens).split(ENCODE_CHUNK)
            keys = torch.cat([self.model.encode_keys(c) for c in chunks])  # (N, D)
            values = torch.cat([self.model.encode_values(c) for c in chunks])  # (N, D)
        return EncodedMemories(keys.numpy().copy(), values.numpy().copy(), unknown)

    def encode_queries(self, texts: list[str]) -> EncodedTexts:
        """u_0 of each question. (B, D)."""
        tokens, unknown = text_tokens(texts, self.checkpoint.vocab, field="queries")
        return EncodedTexts(self.forward.encode_question(tokens), unknown)

    def query(
        self, queries: np.ndarray, memory: MemorySource, options: SearchOptions
    ) -> QueryOutput:
        """Hop by hop: retrieve top-k by uᵀk, re-score with time terms, attend, update u."""
        cfg = self.model.cfg
        check_options(self.info, options)
        u0 = u = check_queries(queries, cfg.dim)  # (B, D)
        H = options.hops or cfg.hops
        hop_options = per_hop_options(options, memory)
        out: list[HopAttention] = []
        readouts: list[np.ndarray] = []
        for h in range(H):
            res = memory.retrieve(u, hop_options)
            cand = Candidates.from_search(res, dim=cfg.dim)
            step = self.forward.hop(
                u, cand.keys, cand.values,
                recency=cand.recency, mask=cand.mask, hop=h, mode=options.mode,
            )  # fmt: skip
            u = step.u
            readouts.append(step.readout)
            out.append(HopAttention(res.ids, step.scores, step.weights))
        probs = self.forward.answer_probs(u0, u, readouts)  # (B, A)
        return QueryOutput(readout=u, hops=out, answer_probs=probs)


def as_served(ckpt: Checkpoint, *, name: str | None = None) -> TextMemoryModel:
    """The served form of a checkpoint; FailedPrecondition if it needs a key space per hop."""
    return TextMemoryModel(ckpt, name=name)


def _describe(ckpt: Checkpoint) -> str:
    cfg = ckpt.model_config
    form = {"layerwise": "MemN2N, layer-wise tying", "kv": "Key-Value MemNN"}.get(
        cfg.tying, "MemN2N, 1 hop"
    )
    tasks = [int(t) for t in ckpt.train_config.get("tasks", [])]
    data = Path(str(ckpt.train_config.get("data_dir") or "")).name or "?"
    files = [Path(str(f)).name for f in ckpt.train_config.get("train_files", [])]
    if files:
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        trained = f"{len(ckpt.task_names) or '?'} task(s) from {shown}"
    elif tasks == list(range(1, 21)):
        trained = f"bAbI ({data}), all 20 tasks jointly"
    elif tasks:
        trained = f"bAbI ({data}) task(s) {', '.join(map(str, tasks))}"
    else:
        trained = "unknown data"
    return (
        f"{form}, {cfg.hops} hops, D={cfg.dim}, {cfg.scoring} scoring, {cfg.heads} head(s); "
        f"trained on {trained}. One key space (encoder A) for every hop. Time index = "
        f"recency rank among the bank's live memories, clipped to {cfg.temporal_buckets - 1}."
    )
