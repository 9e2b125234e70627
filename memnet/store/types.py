"""Public types of the memory store: bank configuration, write batches, records, results.

These are the contract between the store (``memnet.store``), the model adapter
(``memnet.model``) and the server. Vectors are float32 numpy arrays; shapes use
the project vocabulary (B batch, N memories in a write, K retrieved, Dk key dim,
Dv value dim).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from memnet.core.enums import Metric

BANK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_VECTOR_DIM = 8192

JsonObject = dict[str, Any]


class IndexKind(str, Enum):  # noqa: UP042 (str() must stay as it was)
    FLAT = "flat"
    HNSW = "hnsw"
    IVF = "ivf"
    IVF_PQ = "ivf_pq"
    FACTORY = "factory"  # any FAISS index_factory string in IndexSpec.factory


class CapacityPolicy(str, Enum):  # noqa: UP042 (str() must stay as it was)
    REJECT = "reject"  # a write that would exceed capacity fails, nothing stored
    EVICT_OLDEST = "evict_oldest"  # the lowest-sequence memories are deleted to make room


class WriteMode(str, Enum):  # noqa: UP042 (str() must stay as it was)
    UPSERT = "upsert"  # insert new ids, replace existing ones
    INSERT = "insert"  # reject the whole batch if any id exists


class FsyncPolicy(str, Enum):  # noqa: UP042 (str() must stay as it was)
    ALWAYS = "always"  # fsync the log before every acknowledgement (group commit)
    INTERVAL = "interval"  # fsync at most every fsync_interval_ms; a crash loses that window
    NONE = "none"  # leave it to the OS; a machine crash may lose any unflushed write


class IndexSpec(BaseModel):
    """Which FAISS index a bank uses, with its build and default search parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: IndexKind = IndexKind.FLAT
    hnsw_m: int = Field(32, ge=4, le=128)
    ef_construction: int = Field(40, ge=8, le=1024)
    ef_search: int = Field(64, ge=1, le=4096)
    nlist: int = Field(1024, ge=1, le=1 << 20)
    nprobe: int = Field(16, ge=1, le=1 << 20)
    pq_m: int = Field(16, ge=1, le=512)
    pq_nbits: int = Field(8, ge=4, le=16)
    factory: str | None = Field(None, max_length=256)
    # Live memories before an index that needs training is trained; None = 39 per
    # centroid (IVF: 39*nlist; IVF-PQ: 39*max(nlist, 2**pq_nbits); factory: 39*IVFn or 10,000).
    train_size: int | None = Field(None, ge=1, le=1 << 30)

    @model_validator(mode="after")
    def _factory_given_for_factory_kind(self) -> IndexSpec:
        if (self.kind is IndexKind.FACTORY) != (self.factory is not None):
            raise ValueError("index.factory is required for kind 'factory' and only for it")
        return self


class BankConfig(BaseModel):
    """Everything fixed when a bank is created."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=BANK_NAME_PATTERN)
    key_dim: int = Field(ge=1, le=MAX_VECTOR_DIM)
    value_dim: int = Field(ge=1, le=MAX_VECTOR_DIM)
    metric: Metric = Metric.INNER_PRODUCT
    index: IndexSpec = IndexSpec.model_validate({})  # (mypy sees no pydantic defaults)
    capacity: int | None = Field(None, ge=1, le=1 << 40)  # max live memories; None = unbounded
    capacity_policy: CapacityPolicy = CapacityPolicy.REJECT
    model: str | None = Field(None, max_length=128)  # model whose encoders produced the keys
    # The exact version of ``model`` the keys were encoded with and the SHA-256 of its
    # checkpoint (None in banks created before versions were recorded).
    model_version: int | None = Field(None, ge=1)
    model_fingerprint: str | None = Field(None, max_length=128)
    description: str = Field("", max_length=4096)

    @property
    def key_space(self) -> str | None:
        """``model@version:fingerprint``: what a query vector must have been encoded by
        to be compared with this bank's keys (None when no version is recorded)."""
        if self.model is None or self.model_version is None:
            return None
        return f"{self.model}@{self.model_version}:{self.model_fingerprint or ''}"


@dataclass(frozen=True)
class StoreLimits:
    """Per-call limits the store enforces; the server may set lower ones."""

    max_batch: int = 100_000  # memories per write or ids per get/delete
    max_k: int = 4096
    max_queries: int = 4096  # B in one search
    max_id_bytes: int = 256
    max_text_bytes: int = 64 * 1024
    max_metadata_bytes: int = 64 * 1024
    max_page_size: int = 10_000


@dataclass(frozen=True)
class StoreSettings:
    """How the store keeps data durable. See docs/durability.md for the trade-offs."""

    fsync: FsyncPolicy = FsyncPolicy.ALWAYS
    fsync_interval_ms: int = 50
    snapshot_after_log_bytes: int = 256 * 1024 * 1024  # snapshot + truncate the log past this
    # ... or once it holds this many records (replay costs per record as well as per byte)
    snapshot_after_log_records: int = 50_000
    # ... or once its oldest record is this old (bounds the replay of a slowly growing log)
    snapshot_after_log_age_s: float = 3600.0
    limits: StoreLimits = field(default_factory=StoreLimits)
    snapshot_on_close: bool = True  # close() snapshots a bank whose log holds records
    compact_dead_fraction: float = 0.5  # rebuild arrays + index when dead slots pass this share
    compact_min_dead: int = 1024  # ... and number at least this many
    open_threads: int = 4  # banks opened (logs replayed) at once when the store opens


@dataclass
class MemoryBatch:
    """N memories to write. Optional columns are None or a list of length N."""

    keys: np.ndarray  # (N, Dk) float32
    values: np.ndarray  # (N, Dv) float32
    ids: list[str | None] | None = None  # None (or a None entry) = generate an id
    texts: list[str | None] | None = None  # raw text the vectors were encoded from
    source_vectors: np.ndarray | None = None  # (N, Ds) float32 raw input vectors, if any
    metadata: list[JsonObject] | None = None  # JSON objects, one per memory
    # The model version that encoded keys and values (BankConfig.key_space); a bank in
    # another key space refuses the batch with KeySpaceChanged. None: no check.
    key_space: str | None = None


@dataclass(frozen=True)
class MemoryRecord:
    id: str
    key: np.ndarray  # (Dk,) float32
    value: np.ndarray  # (Dv,) float32
    text: str | None
    source_vector: np.ndarray | None  # (Ds,) float32
    metadata: JsonObject
    seq: int  # write sequence number, unique and increasing within a bank
    written_at_ns: int  # unix time of the write, nanoseconds


@dataclass(frozen=True)
class MemoryContent:
    """What a memory holds besides its vectors, as ``Bank.contents`` returns it."""

    text: str | None
    metadata: Mapping[str, Any]  # the store's own object: read it, never change it


@dataclass(frozen=True)
class WriteResult:
    ids: list[str]  # one per input memory, in input order
    seq: int  # sequence number of the last memory written; a later search sees them all
    inserted: int
    replaced: int
    evicted_ids: list[str]  # removed by CapacityPolicy.EVICT_OLDEST


@dataclass(frozen=True)
class SearchResult:
    """Top-k candidates per query, re-scored exactly from the stored float32 keys.

    Rows are sorted by score, best first. Positions past the last hit are padding:
    ``valid`` is False, the id is "", the score is -inf and vectors are zero.
    """

    ids: list[list[str]]  # B lists of K ids
    scores: np.ndarray  # (B, K) float32, exact metric scores (higher is better)
    valid: np.ndarray  # (B, K) bool
    recency: np.ndarray  # (B, K) int64, 0 = newest live memory of the bank, -1 padding
    keys: np.ndarray | None = None  # (B, K, Dk) float32 when asked for
    values: np.ndarray | None = None  # (B, K, Dv) float32 when asked for
    # With tail_samples, for the searched memories *outside* each row's K ("the tail"):
    # log Σ exp(score), estimated from a uniform sample (exact when the sample covers
    # them all; -inf when there are none), and the value the tail reads as: its
    # exp(score)-weighted mean value when every member was scored, else the mean value
    # of all searched memories.
    tail_log_mass: np.ndarray | None = None  # (B,) float64
    tail_value: np.ndarray | None = None  # (B, Dv) float32


@dataclass(frozen=True)
class RecoveryReport:
    """What opening a bank found in its log."""

    records_replayed: int
    bytes_cut: int  # torn or corrupt tail removed from the log
    reason: str  # "" when nothing was cut
    index_rebuilt: bool
    failed: bool = False  # the bank could not be opened and is quarantined (see error)
    error: str = ""  # why it could not be opened; "" when it opened
