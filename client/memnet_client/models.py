"""Typed results of the SDK: immutable pydantic models, vectors as float32 numpy arrays.

Shapes use the project vocabulary: B questions, M memories, K attended per hop,
H hops, Dk key dimension, Dv value dimension, D controller (readout) dimension.
Enumerations are lower-case strings (``"inner_product"``, ``"hnsw"``, ``"sparse"``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

Metric = Literal["inner_product", "l2", "cosine"]
IndexKind = Literal["flat", "hnsw", "ivf", "ivf_pq", "factory"]
CapacityPolicy = Literal["reject", "evict_oldest"]
AttentionMode = Literal["sparse", "soft", "hard"]
WriteMode = Literal["upsert", "insert"]
InputKind = Literal["text", "vector"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")


class IndexSpec(_Model):
    """A bank's index and its default search parameters; None = the server default.

    Server defaults: hnsw_m 32, ef_construction 40, ef_search 64, nlist 1024,
    nprobe 16, pq_m 16, pq_nbits 8. ``factory`` is a FAISS ``index_factory`` string,
    for ``kind="factory"`` only.
    """

    kind: IndexKind = "flat"
    hnsw_m: int | None = None
    ef_construction: int | None = None
    ef_search: int | None = None
    nlist: int | None = None
    nprobe: int | None = None
    pq_m: int | None = None
    pq_nbits: int | None = None
    factory: str = ""


class BankSpec(_Model):
    """Everything fixed when a bank is created (as stored: server defaults filled in).

    ``capacity`` is the maximum number of live memories (0 = unbounded).
    """

    name: str
    model: str
    key_dim: int
    value_dim: int
    metric: Metric | None
    index: IndexSpec
    capacity: int
    capacity_policy: CapacityPolicy
    description: str


ReindexState = Literal["idle", "reindexing", "failed", "done"]


class ReindexStatus(_Model):
    """The bank's current or last reindex: ``done`` of ``total`` memories re-encoded at
    ``rate_per_s``, from ``from_model`` into ``to_model`` (both NAME@VERSION)."""

    state: ReindexState
    done: int
    total: int
    rate_per_s: float
    from_model: str
    to_model: str
    error: str
    started_at: datetime | None


class Bank(_Model):
    """A bank: its spec, how many memories it holds and the sequence number of its last write.

    ``key_space`` says which key space the bank's index holds and which hops search it;
    ``model_version`` and ``model_fingerprint`` (SHA-256 of the checkpoint) name the exact
    version of ``spec.model`` whose encoders wrote its keys (0 and "" for banks from
    before versions were recorded); ``reindex`` is its current or last reindex.
    """

    spec: BankSpec
    memory_count: int
    last_seq: int
    key_space: str
    model_version: int = 0
    model_fingerprint: str = ""
    reindex: ReindexStatus | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def model_ref(self) -> str:
        """``NAME@VERSION`` of the bank's model (``NAME`` when no version is recorded)."""
        if not self.model_version:
            return self.spec.model
        return f"{self.spec.model}@{self.model_version}"


class Memory(_Model):
    """A stored memory. ``key`` (Dk,) and ``value`` (Dv,) only when vectors were asked for."""

    id: str
    text: str
    metadata: dict[str, Any]
    seq: int
    written_at: datetime | None
    key: np.ndarray | None = None
    value: np.ndarray | None = None


class MemoryPage(_Model):
    """One page of ``list_page``; ``next_page_token`` is "" on the last page."""

    memories: list[Memory]
    next_page_token: str


class WriteResult(_Model):
    """The outcome of ``write``, summed over its requests (chunks).

    Attributes:
        ids: the ids written, in input order (server-generated where none was given).
        seq: sequence number of the last memory written.
        inserted, replaced: how many ids were new and how many replaced a memory.
        evicted_ids: memories removed to make room (capacity_policy "evict_oldest").
        unknown_words: words of the texts the model's vocabulary does not know.
        requests: how many WriteMemories requests the write took.
    """

    ids: list[str]
    seq: int
    inserted: int
    replaced: int
    evicted_ids: list[str]
    unknown_words: list[str]
    requests: int


class StreamWriteResult(_Model):
    """The outcome of ``stream_write``: memories written, last sequence number, messages sent."""

    written: int
    seq: int
    messages: int
    unknown_words: list[str]


class AttendedMemory(_Model):
    """One memory as one hop saw it.

    ``score`` is the attention logit (before softmax); ``weight`` the attention
    weight (the weights of one hop sum to 1 - the hop's ``tail_weight``). ``key``
    (Dk,) and ``value`` (Dv,) only with ``include_vectors=True``.
    """

    id: str
    score: float
    weight: float
    text: str
    metadata: dict[str, Any]
    key: np.ndarray | None = None
    value: np.ndarray | None = None


class Hop(_Model):
    """The attention of one hop (1-based ``hop``), memories sorted by weight, highest first.

    ``tail_weight`` is the weight the softmax gave to the memories not listed,
    estimated with ``query(..., tail_samples=...)``; 0.0 without it.
    """

    hop: int
    memories: list[AttendedMemory]
    tail_weight: float = 0.0


class AnswerCandidate(_Model):
    answer: str
    probability: float


class QueryResult(_Model):
    """The answer to one question, and how each hop attended over the bank.

    Attributes:
        answer: the best answer; "" when the model has no answer head (vector models).
        probability: its probability in [0, 1].
        alternatives: the best answers, highest probability first (the first is ``answer``).
        readout: (D,) float32 final controller state u_H.
        hops: H hops, in order.
        unknown_words: words of the question the model's vocabulary does not know.
    """

    answer: str
    probability: float
    alternatives: list[AnswerCandidate]
    readout: np.ndarray
    hops: list[Hop]
    unknown_words: list[str]

    def attention_matrix(self) -> tuple[list[AttendedMemory], np.ndarray]:
        """Attention weights as an (H, M) float32 matrix over the M memories any hop attended.

        Columns follow first appearance (hop 1 by weight, then new memories of hop 2, ...);
        a memory a hop did not attend has weight 0 in that hop's row.
        """
        columns: dict[str, int] = {}
        memories: list[AttendedMemory] = []
        for hop in self.hops:
            for memory in hop.memories:
                if memory.id not in columns:
                    columns[memory.id] = len(memories)
                    memories.append(memory)
        weights = np.zeros((len(self.hops), len(memories)), dtype=np.float32)  # (H, M)
        for row, hop in enumerate(self.hops):
            for memory in hop.memories:
                weights[row, columns[memory.id]] += memory.weight
        return memories, weights


class QueryResponse(_Model):
    """The answers to B questions: ``results`` in request order, the model (and version)
    that answered, and the bank's sequence number when the query ran (it saw every write
    up to it)."""

    results: list[QueryResult]
    model: str
    bank_seq: int
    model_version: int = 0


class QueryArrays(_Model):
    """The answers to B questions and their attention over H hops as arrays
    (``query_arrays``): what a high-rate caller needs, without text or metadata.

    Attributes:
        ids: (B, H, K) memory ids (object array of str); "" where a hop found fewer than K.
        scores: (B, H, K) float32 attention logits; -inf where the id is "".
        weights: (B, H, K) float32 attention weights, each hop sorted highest first.
        tail_weights: (B, H) float32 weight of the memories outside the K
            (``tail_samples``), or None.
        readouts: (B, D) float32 final controller states u_H.
        answers: B best answers; empty when the model has no answer head.
        probabilities: (B,) float32 probabilities of ``answers`` (shape (0,) without).
        unknown_words: words of any question the vocabulary does not know.
        model, bank_seq: as in ``QueryResponse``.
    """

    ids: np.ndarray
    scores: np.ndarray
    weights: np.ndarray
    tail_weights: np.ndarray | None
    readouts: np.ndarray
    answers: list[str]
    probabilities: np.ndarray
    unknown_words: list[str]
    model: str
    bank_seq: int


class DataFile(_Model):
    """A file a model was trained on: the path as given, its SHA-256 and size."""

    path: str
    sha256: str
    size_bytes: int


class EvalResult(_Model):
    """A result recorded on a model card: ``split`` ("validation", "test", ...),
    mean error % over its tasks, failed tasks (error > 5 %), when it was measured
    (ISO 8601 UTC) and the SHA-256 fingerprint of the data it was measured on."""

    split: str
    mean_error_pct: float
    failed_tasks: int
    tasks: int
    questions: int
    data_fingerprint: str
    measured_at: str


class ModelCard(_Model):
    """How a model was trained and what it scored.

    Attributes:
        command: the training command line as run.
        settings: every training and model option, as strings (``"model.dim": "100"``).
        data_files: the files read in training (training, then validation files).
        data_fingerprint: SHA-256 over the training files' digests, in order.
        data_summary: questions, vocabulary, answers, tasks, memory size, as trained.
        results: recorded results, oldest first (validation from training; test when
            ``memnet eval --record`` measured it).
        train_seconds: time in the training loop; trained_at: ISO 8601 UTC.
    """

    command: str
    settings: dict[str, str]
    data_files: list[DataFile]
    data_fingerprint: str
    data_summary: dict[str, str]
    results: list[EvalResult]
    train_seconds: float
    trained_at: str
    memnet_version: str


ModelVersionState = Literal["ready", "failed"]


class ModelVersion(_Model):
    """One version of a model: its number, the SHA-256 of its checkpoint and its state."""

    version: int
    fingerprint: str
    state: ModelVersionState | None
    error: str
    source: str
    loaded_at: datetime | None


class ModelInfo(_Model):
    """A model the server can attach to banks.

    ``key_dim`` / ``value_dim`` are 0 when any dimension is allowed (set per bank);
    ``temporal_buckets`` = recency ranks at or past this share the last time embedding
    (0 = no temporal encoding); ``scoring`` is "dot", "scaled_dot" or "cosine";
    ``card`` tells how a trained model was made and what it scored.
    """

    name: str
    description: str
    input_kind: InputKind | None
    key_dim: int
    value_dim: int
    default_hops: int
    max_hops: int
    metric: Metric | None
    scoring: str
    heads: int
    attention_modes: list[AttentionMode]
    vocab_size: int
    answer_vocabulary: list[str]
    temporal_buckets: int
    is_default: bool
    card: ModelCard | None = None  # None for models without one (the vector model)
    version: int = 0  # the version described (the latest ready one for a bare name)
    fingerprint: str = ""
    versions: list[ModelVersion] = []  # every version the server knows, oldest first

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}" if self.version else self.name
