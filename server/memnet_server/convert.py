"""Protobuf ↔ domain conversions that need no state (enums, specs, records)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import timestamp_pb2
from pydantic import ValidationError

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, model_pb2, query_pb2
from memnet.core.card import ModelCard
from memnet.core.json_values import check_json_depth, json_too_deep
from memnet.errors import InvalidArgument
from memnet.serving.contract import AttentionMode, InputKind, ModelInfo
from memnet.store.types import (
    CapacityPolicy,
    IndexKind,
    IndexSpec,
    JsonObject,
    MemoryRecord,
    Metric,
    WriteMode,
)
from memnet.store.validation import shown, utf8_size

METRIC_FROM_PROTO: dict[int, Metric | None] = {
    bank_pb2.METRIC_UNSPECIFIED: None,
    bank_pb2.METRIC_INNER_PRODUCT: Metric.INNER_PRODUCT,
    bank_pb2.METRIC_L2: Metric.L2,
    bank_pb2.METRIC_COSINE: Metric.COSINE,
}
METRIC_TO_PROTO: dict[Metric, bank_pb2.Metric] = {
    Metric.INNER_PRODUCT: bank_pb2.METRIC_INNER_PRODUCT,
    Metric.L2: bank_pb2.METRIC_L2,
    Metric.COSINE: bank_pb2.METRIC_COSINE,
}
INDEX_KIND_FROM_PROTO: dict[int, IndexKind] = {
    bank_pb2.INDEX_KIND_UNSPECIFIED: IndexKind.FLAT,
    bank_pb2.INDEX_KIND_FLAT: IndexKind.FLAT,
    bank_pb2.INDEX_KIND_HNSW: IndexKind.HNSW,
    bank_pb2.INDEX_KIND_IVF: IndexKind.IVF,
    bank_pb2.INDEX_KIND_IVF_PQ: IndexKind.IVF_PQ,
    bank_pb2.INDEX_KIND_FACTORY: IndexKind.FACTORY,
}
INDEX_KIND_TO_PROTO: dict[IndexKind, bank_pb2.IndexKind] = {
    IndexKind.FLAT: bank_pb2.INDEX_KIND_FLAT,
    IndexKind.HNSW: bank_pb2.INDEX_KIND_HNSW,
    IndexKind.IVF: bank_pb2.INDEX_KIND_IVF,
    IndexKind.IVF_PQ: bank_pb2.INDEX_KIND_IVF_PQ,
    IndexKind.FACTORY: bank_pb2.INDEX_KIND_FACTORY,
}
CAPACITY_POLICY_FROM_PROTO: dict[int, CapacityPolicy] = {
    bank_pb2.CAPACITY_POLICY_UNSPECIFIED: CapacityPolicy.REJECT,
    bank_pb2.CAPACITY_POLICY_REJECT: CapacityPolicy.REJECT,
    bank_pb2.CAPACITY_POLICY_EVICT_OLDEST: CapacityPolicy.EVICT_OLDEST,
}
CAPACITY_POLICY_TO_PROTO: dict[CapacityPolicy, bank_pb2.CapacityPolicy] = {
    CapacityPolicy.REJECT: bank_pb2.CAPACITY_POLICY_REJECT,
    CapacityPolicy.EVICT_OLDEST: bank_pb2.CAPACITY_POLICY_EVICT_OLDEST,
}
WRITE_MODE_FROM_PROTO: dict[int, WriteMode] = {
    memory_pb2.WRITE_MODE_UNSPECIFIED: WriteMode.UPSERT,
    memory_pb2.WRITE_MODE_UPSERT: WriteMode.UPSERT,
    memory_pb2.WRITE_MODE_INSERT: WriteMode.INSERT,
}
ATTENTION_MODE_FROM_PROTO: dict[int, AttentionMode] = {
    query_pb2.ATTENTION_MODE_UNSPECIFIED: AttentionMode.SPARSE,
    query_pb2.ATTENTION_MODE_SPARSE: AttentionMode.SPARSE,
    query_pb2.ATTENTION_MODE_SOFT: AttentionMode.SOFT,
    query_pb2.ATTENTION_MODE_HARD: AttentionMode.HARD,
}
ATTENTION_MODE_TO_PROTO: dict[AttentionMode, query_pb2.AttentionMode] = {
    AttentionMode.SPARSE: query_pb2.ATTENTION_MODE_SPARSE,
    AttentionMode.SOFT: query_pb2.ATTENTION_MODE_SOFT,
    AttentionMode.HARD: query_pb2.ATTENTION_MODE_HARD,
}
INPUT_KIND_TO_PROTO: dict[InputKind, model_pb2.InputKind] = {
    InputKind.TEXT: model_pb2.INPUT_KIND_TEXT,
    InputKind.VECTOR: model_pb2.INPUT_KIND_VECTOR,
}
_INDEX_OPTIONALS = ("hnsw_m", "ef_construction", "ef_search", "nlist", "nprobe", "pq_m", "pq_nbits")


def enum_value(table: dict[int, Any], value: int, *, field: str) -> Any:
    """Look an enum number up, rejecting numbers this server does not know."""
    if value not in table:
        raise InvalidArgument(f"{field} has unknown value {value}", field=field)
    return table[value]


def validation_error(error: ValidationError, *, prefix: str) -> InvalidArgument:
    """A pydantic ValidationError as InvalidArgument naming the first bad field."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in (prefix, *first["loc"]))
    return InvalidArgument(f"{field}: {first['msg']}", field=field)


def index_spec_from_proto(spec: bank_pb2.IndexSpec) -> IndexSpec:
    kind = enum_value(INDEX_KIND_FROM_PROTO, spec.kind, field="spec.index.kind")
    values: dict[str, Any] = {"kind": kind}
    for name in _INDEX_OPTIONALS:
        if spec.HasField(name):
            values[name] = getattr(spec, name)
    if spec.factory:
        values["factory"] = spec.factory
    try:
        return IndexSpec(**values)
    except ValidationError as error:
        raise validation_error(error, prefix="spec.index") from error


def as_spec_error(error: InvalidArgument) -> InvalidArgument:
    """A store error about the bank's index (field ``index...``) named as the request field
    (``spec.index...``); any other error unchanged."""
    field = error.field or ""
    if not field.startswith("index"):
        return error
    message = str(error)
    return InvalidArgument(
        f"spec.{message}" if message.startswith(field) else message, field=f"spec.{field}"
    )


def index_spec_to_proto(spec: IndexSpec) -> bank_pb2.IndexSpec:
    message = bank_pb2.IndexSpec(kind=INDEX_KIND_TO_PROTO[spec.kind], factory=spec.factory or "")
    for name in _INDEX_OPTIONALS:
        setattr(message, name, getattr(spec, name))
    return message


def parse_json_object(text: str, *, field: str, max_bytes: int) -> JsonObject:
    """A JSON object from a request field; "" is the empty object.

    Every way the text can fail is INVALID_ARGUMENT naming ``field``: bad syntax, nesting
    past the depth limit, an integer past Python's 4,300-digit conversion limit, a lone
    surrogate escape (``"\\ud800"``) that no UTF-8 store can hold.
    """
    if not text:
        return {}
    if len(text.encode()) > max_bytes:
        raise InvalidArgument(f"{field} is longer than {max_bytes} bytes", field=field)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgument(f"{field} is not valid JSON: {error.msg}", field=field) from error
    except RecursionError as error:  # deeper than the interpreter's stack allows
        raise json_too_deep(field) from error
    except ValueError as error:  # e.g. "Exceeds the limit (4300 digits) for integer string"
        reason = shown(str(error), max_chars=200)
        raise InvalidArgument(f"{field} is not valid JSON: {reason}", field=field) from error
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object", field=field)
    check_json_depth(value, field=field)
    utf8_size(json.dumps(value, ensure_ascii=False), field=field)  # lone surrogates
    return value


def dump_json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True) if value else ""


def memory_to_proto(record: MemoryRecord, *, include_vectors: bool) -> memory_pb2.Memory:
    written_at = timestamp_pb2.Timestamp()
    written_at.FromNanoseconds(record.written_at_ns)
    message = memory_pb2.Memory(
        id=record.id,
        text=record.text or "",
        metadata_json=dump_json(record.metadata),
        seq=record.seq,
        written_at=written_at,
    )
    if include_vectors:
        message.key.CopyFrom(to_tensor(record.key))
        message.value.CopyFrom(to_tensor(record.value))
    return message


def model_to_proto(info: ModelInfo, *, is_default: bool) -> model_pb2.Model:
    return model_pb2.Model(
        name=info.name,
        description=info.description,
        input_kind=INPUT_KIND_TO_PROTO[info.input_kind],
        key_dim=info.key_dim or 0,
        value_dim=info.value_dim or 0,
        default_hops=info.default_hops,
        max_hops=info.max_hops,
        metric=METRIC_TO_PROTO[info.metric],
        scoring=info.scoring,
        heads=info.heads,
        attention_modes=[ATTENTION_MODE_TO_PROTO[mode] for mode in info.attention_modes],
        vocab_size=info.vocab_size,
        answer_vocabulary=list(info.answer_vocab),
        temporal_buckets=info.temporal_buckets,
        is_default=is_default,
        card=card_to_proto(info.card) if info.card is not None else None,
    )


def card_to_proto(card: ModelCard) -> model_pb2.ModelCard:
    return model_pb2.ModelCard(
        command=card.command,
        settings=card.settings,
        data_files=[
            model_pb2.DataFile(path=f.path, sha256=f.sha256, size_bytes=f.size_bytes)
            for f in card.data_files
        ],
        data_fingerprint=card.data_fingerprint,
        data_summary=card.data_summary,
        results=[
            model_pb2.EvalResult(
                split=r.split,
                mean_error_pct=r.mean_error_pct,
                failed_tasks=r.failed_tasks,
                tasks=r.tasks,
                questions=r.questions,
                data_fingerprint=r.data_fingerprint,
                measured_at=r.measured_at,
            )
            for r in card.results
        ],
        train_seconds=card.train_seconds,
        trained_at=card.trained_at,
        memnet_version=card.memnet_version,
    )
