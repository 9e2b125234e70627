"""Protos → SDK models, and the enum tables both directions share."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np

from memnet.api.tensors import from_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, model_pb2, query_pb2
from memnet.errors import MemnetError
from memnet_client.errors import InternalError
from memnet_client.models import (
    AnswerCandidate,
    AttendedMemory,
    AttentionMode,
    Bank,
    BankSpec,
    CapacityPolicy,
    DataFile,
    EvalResult,
    Hop,
    IndexKind,
    IndexSpec,
    InputKind,
    Memory,
    MemoryPage,
    Metric,
    ModelCard,
    ModelInfo,
    ModelVersion,
    ModelVersionState,
    QueryArrays,
    QueryResponse,
    QueryResult,
    ReindexState,
    ReindexStatus,
    StreamWriteResult,
    WriteMode,
    WriteResult,
)

METRICS: dict[Metric, bank_pb2.Metric] = {
    "inner_product": bank_pb2.METRIC_INNER_PRODUCT,
    "l2": bank_pb2.METRIC_L2,
    "cosine": bank_pb2.METRIC_COSINE,
}
INDEX_KINDS: dict[IndexKind, bank_pb2.IndexKind] = {
    "flat": bank_pb2.INDEX_KIND_FLAT,
    "hnsw": bank_pb2.INDEX_KIND_HNSW,
    "ivf": bank_pb2.INDEX_KIND_IVF,
    "ivf_pq": bank_pb2.INDEX_KIND_IVF_PQ,
    "factory": bank_pb2.INDEX_KIND_FACTORY,
}
CAPACITY_POLICIES: dict[CapacityPolicy, bank_pb2.CapacityPolicy] = {
    "reject": bank_pb2.CAPACITY_POLICY_REJECT,
    "evict_oldest": bank_pb2.CAPACITY_POLICY_EVICT_OLDEST,
}
ATTENTION_MODES: dict[AttentionMode, query_pb2.AttentionMode] = {
    "sparse": query_pb2.ATTENTION_MODE_SPARSE,
    "soft": query_pb2.ATTENTION_MODE_SOFT,
    "hard": query_pb2.ATTENTION_MODE_HARD,
}
INPUT_KINDS: dict[InputKind, model_pb2.InputKind] = {
    "text": model_pb2.INPUT_KIND_TEXT,
    "vector": model_pb2.INPUT_KIND_VECTOR,
}
WRITE_MODES: dict[WriteMode, memory_pb2.WriteMode] = {
    "upsert": memory_pb2.WRITE_MODE_UPSERT,
    "insert": memory_pb2.WRITE_MODE_INSERT,
}

_METRIC_NAMES = {v: k for k, v in METRICS.items()}
_INDEX_NAMES = {v: k for k, v in INDEX_KINDS.items()}
_POLICY_NAMES = {v: k for k, v in CAPACITY_POLICIES.items()}
_ATTENTION_NAMES = {v: k for k, v in ATTENTION_MODES.items()}
_INPUT_NAMES = {v: k for k, v in INPUT_KINDS.items()}


def _broken(what: str, error: Exception) -> InternalError:
    return InternalError(f"malformed response: {what}: {error}", code=grpc.StatusCode.INTERNAL)


def _json_object(text: str, *, what: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise _broken(what, error) from error
    if not isinstance(value, dict):
        raise _broken(what, TypeError(f"expected a JSON object, got {type(value).__name__}"))
    return value


def _vector(message: Any, name: str, *, what: str) -> np.ndarray | None:
    """A (D,) float32 array from an optional Tensor field, or None when unset."""
    if not message.HasField(name):
        return None
    try:
        return from_tensor(getattr(message, name), field=f"{what}.{name}", ndim=1)
    except MemnetError as error:
        raise _broken(what, error) from error


def index_spec(message: Any) -> IndexSpec:
    optional = ("hnsw_m", "ef_construction", "ef_search", "nlist", "nprobe", "pq_m", "pq_nbits")
    values = {name: getattr(message, name) if message.HasField(name) else None for name in optional}
    return IndexSpec(kind=_INDEX_NAMES.get(message.kind, "flat"), factory=message.factory, **values)


def bank(message: Any) -> Bank:
    spec = message.spec
    return Bank(
        spec=BankSpec(
            name=spec.name,
            model=spec.model,
            key_dim=spec.key_dim,
            value_dim=spec.value_dim,
            metric=_METRIC_NAMES.get(spec.metric),
            index=index_spec(spec.index),
            capacity=spec.capacity,
            capacity_policy=_POLICY_NAMES.get(spec.capacity_policy, "reject"),
            description=spec.description,
        ),
        memory_count=message.memory_count,
        last_seq=message.last_seq,
        key_space=message.key_space,
        model_version=message.model_version,
        model_fingerprint=message.model_fingerprint,
        reindex=reindex_status(message.reindex) if message.HasField("reindex") else None,
    )


_REINDEX_STATES: dict[int, ReindexState] = {
    bank_pb2.REINDEX_STATE_IDLE: "idle",
    bank_pb2.REINDEX_STATE_REINDEXING: "reindexing",
    bank_pb2.REINDEX_STATE_FAILED: "failed",
    bank_pb2.REINDEX_STATE_DONE: "done",
}
_VERSION_STATES: dict[int, ModelVersionState] = {
    model_pb2.MODEL_VERSION_STATE_READY: "ready",
    model_pb2.MODEL_VERSION_STATE_FAILED: "failed",
}


def _time(message: Any, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=UTC) if message.HasField(name) else None


def reindex_status(message: Any) -> ReindexStatus:
    return ReindexStatus(
        state=_REINDEX_STATES.get(message.state, "idle"),
        done=message.done,
        total=message.total,
        rate_per_s=message.rate_per_s,
        from_model=message.from_model,
        to_model=message.to_model,
        error=message.error,
        started_at=_time(message, "started_at"),
    )


def model_version(message: Any) -> ModelVersion:
    return ModelVersion(
        version=message.version,
        fingerprint=message.fingerprint,
        state=_VERSION_STATES.get(message.state),
        error=message.error,
        source=message.source,
        loaded_at=_time(message, "loaded_at"),
    )


def memory(message: Any) -> Memory:
    what = f"memory {message.id!r}"
    return Memory(
        id=message.id,
        text=message.text,
        metadata=_json_object(message.metadata_json, what=f"{what}.metadata_json"),
        seq=message.seq,
        written_at=(
            message.written_at.ToDatetime(tzinfo=UTC) if message.HasField("written_at") else None
        ),
        key=_vector(message, "key", what=what),
        value=_vector(message, "value", what=what),
    )


def memory_page(message: Any) -> MemoryPage:
    return MemoryPage(
        memories=[memory(m) for m in message.memories], next_page_token=message.next_page_token
    )


def stream_write_result(message: Any) -> StreamWriteResult:
    return StreamWriteResult(
        written=message.written,
        seq=message.seq,
        messages=message.messages,
        unknown_words=list(message.unknown_words),
    )


def _attended(message: Any) -> AttendedMemory:
    what = f"attended memory {message.id!r}"
    return AttendedMemory(
        id=message.id,
        score=message.score,
        weight=message.weight,
        text=message.text,
        metadata=_json_object(message.metadata_json, what=f"{what}.metadata_json"),
        key=_vector(message, "key", what=what),
        value=_vector(message, "value", what=what),
    )


def query_result(message: Any) -> QueryResult:
    readout = _vector(message, "readout", what="query result")
    return QueryResult(
        answer=message.answer,
        probability=message.probability,
        alternatives=[
            AnswerCandidate(answer=a.answer, probability=a.probability)
            for a in message.alternatives
        ],
        readout=readout if readout is not None else np.zeros((0,), dtype=np.float32),
        hops=[
            Hop(hop=h.hop, memories=[_attended(m) for m in h.memories], tail_weight=h.tail_weight)
            for h in message.hops
        ],
        unknown_words=list(message.unknown_words),
    )


def query_response(message: Any) -> QueryResponse:
    return QueryResponse(
        results=[query_result(r) for r in message.results],
        model=message.model,
        bank_seq=message.bank_seq,
        model_version=message.model_version,
    )


def _array(arrays: Any, name: str, ndim: int, *, finite: bool = True) -> np.ndarray | None:
    """An optional Tensor field of QueryArrays as a float32 array of ``ndim`` dimensions."""
    if not arrays.HasField(name):
        return None
    try:
        return from_tensor(
            getattr(arrays, name), field=f"arrays.{name}", ndim=ndim, require_finite=finite
        )
    except MemnetError as error:
        raise _broken("query arrays", error) from error


def query_arrays(message: Any) -> QueryArrays:
    """A RESULT_LAYOUT_ARRAYS response; its shapes are checked against each other."""
    arrays = message.arrays
    weights = _array(arrays, "weights", 3)  # (B, H, K)
    scores = _array(arrays, "scores", 3, finite=False)  # (B, H, K), -inf for padding
    readouts = _array(arrays, "readouts", 2)  # (B, D)
    if weights is None or scores is None or readouts is None:
        raise _broken("query arrays", ValueError("weights, scores and readouts are required"))
    B, H, K = weights.shape
    if scores.shape != weights.shape or len(arrays.ids) != B * H * K or len(readouts) != B:
        raise _broken(
            "query arrays",
            ValueError(
                f"weights {list(weights.shape)}, scores {list(scores.shape)}, "
                f"{len(arrays.ids)} ids and readouts {list(readouts.shape)} disagree"
            ),
        )
    ids = np.empty(B * H * K, dtype=object)
    ids[:] = list(arrays.ids)
    probabilities = _array(arrays, "probabilities", 1)
    return QueryArrays(
        ids=ids.reshape(B, H, K),
        scores=scores,
        weights=weights,
        tail_weights=_array(arrays, "tail_weights", 2),  # (B, H) or None
        readouts=readouts,
        answers=list(arrays.answers),
        probabilities=probabilities if probabilities is not None else np.zeros(0, np.float32),
        unknown_words=list(arrays.unknown_words),
        model=message.model,
        bank_seq=message.bank_seq,
    )


def model_info(message: Any) -> ModelInfo:
    return ModelInfo(
        name=message.name,
        description=message.description,
        input_kind=_INPUT_NAMES.get(message.input_kind),
        key_dim=message.key_dim,
        value_dim=message.value_dim,
        default_hops=message.default_hops,
        max_hops=message.max_hops,
        metric=_METRIC_NAMES.get(message.metric),
        scoring=message.scoring,
        heads=message.heads,
        attention_modes=[
            _ATTENTION_NAMES[m] for m in message.attention_modes if m in _ATTENTION_NAMES
        ],
        vocab_size=message.vocab_size,
        answer_vocabulary=list(message.answer_vocabulary),
        temporal_buckets=message.temporal_buckets,
        is_default=message.is_default,
        card=model_card(message.card) if message.HasField("card") else None,
        version=message.version,
        fingerprint=message.fingerprint,
        versions=[model_version(v) for v in message.versions],
    )


def model_card(message: Any) -> ModelCard:
    return ModelCard(
        command=message.command,
        settings=dict(message.settings),
        data_files=[
            DataFile(path=f.path, sha256=f.sha256, size_bytes=f.size_bytes)
            for f in message.data_files
        ],
        data_fingerprint=message.data_fingerprint,
        data_summary=dict(message.data_summary),
        results=[
            EvalResult(
                split=r.split,
                mean_error_pct=r.mean_error_pct,
                failed_tasks=r.failed_tasks,
                tasks=r.tasks,
                questions=r.questions,
                data_fingerprint=r.data_fingerprint,
                measured_at=r.measured_at,
            )
            for r in message.results
        ],
        train_seconds=message.train_seconds,
        trained_at=message.trained_at,
        memnet_version=message.memnet_version,
    )


def write_result(responses: list[Any]) -> WriteResult:
    """Sum the WriteMemoriesResponses of one chunked write, in request order."""
    unknown: dict[str, None] = {}
    for response in responses:
        unknown.update(dict.fromkeys(response.unknown_words))
    return WriteResult(
        ids=[memory_id for r in responses for memory_id in r.ids],
        seq=responses[-1].seq if responses else 0,
        inserted=sum(r.inserted for r in responses),
        replaced=sum(r.replaced for r in responses),
        evicted_ids=[memory_id for r in responses for memory_id in r.evicted_ids],
        unknown_words=list(unknown),
        requests=len(responses),
    )
