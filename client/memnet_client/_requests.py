"""Client-side validation and request building, shared by the sync and async clients.

Everything here runs before an RPC is made and raises ``ValidationError`` (an
``InvalidArgument``, hence a ``ValueError``) naming the argument at fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, query_pb2
from memnet_client._convert import (
    ATTENTION_MODES,
    CAPACITY_POLICIES,
    INDEX_KINDS,
    METRICS,
    WRITE_MODES,
)
from memnet_client.errors import ValidationError
from memnet_client.models import IndexSpec, WriteMode

BANK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_ID_BYTES = 256
MAX_METADATA_BYTES = 64 * 1024
# Room for the bank name, the mode, the tensor shapes and protobuf framing.
REQUEST_OVERHEAD_BYTES = 4096
# A request carries at most this many memories unless ``max_chunk_memories`` says otherwise.
DEFAULT_MAX_CHUNK_MEMORIES = 1000
# Below the 4 MiB that a gRPC server accepts unless it raised its limit.
DEFAULT_CHUNK_BYTES = 3 * 1024 * 1024


def bank_name(name: object, *, field: str = "bank") -> str:
    if not isinstance(name, str) or not BANK_NAME.match(name):
        raise ValidationError(
            f"{field} must be 1-64 letters, digits, '_', '.', '-' starting with a letter or "
            f"digit, got {name!r}",
            field=field,
        )
    return name


def count(value: object, *, field: str, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer argument in [minimum, maximum]; bools and floats are rejected."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(f"{field} must be an integer, got {value!r}", field=field)
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValidationError(f"{field} must be >= {minimum}{upper}, got {number}", field=field)
    return number


def matrix(array: object, *, field: str) -> np.ndarray:
    """A finite real (N, D) array with N, D >= 1, as C-ordered float32."""
    try:
        values = np.asarray(array)
    except ValueError as error:  # ragged nested lists
        raise ValidationError(
            f"{field} is not a rectangular array: {error}", field=field
        ) from error
    if values.dtype.kind not in "fiu":
        raise ValidationError(
            f"{field} must hold real numbers, got dtype {values.dtype}", field=field
        )
    if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] < 1:
        raise ValidationError(
            f"{field} must have shape (N, D) with N, D >= 1, got {values.shape}", field=field
        )
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(values, dtype=np.float32)
    if not np.isfinite(converted).all():
        raise ValidationError(f"{field} contains NaN or Inf (after float32 cast)", field=field)
    return converted


def strings(values: object, *, field: str, allow_empty_items: bool = False) -> list[str]:
    """A non-empty sequence of strings (a bare str is refused: wrap it in a list)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise ValidationError(f"{field} must be a non-empty list of strings", field=field)
    out = list(values)
    for i, item in enumerate(out):
        if not isinstance(item, str) or (not allow_empty_items and not item.strip()):
            raise ValidationError(f"{field}[{i}] must be a non-empty string", field=f"{field}[{i}]")
    return out


def json_object(value: Mapping[str, Any] | None, *, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, Mapping):
        raise ValidationError(f"{field} must be a dict, got {type(value).__name__}", field=field)
    try:
        text = json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise ValidationError(f"{field} is not JSON-serializable: {error}", field=field) from error
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise ValidationError(
            f"{field} is {len(text.encode())} bytes as JSON, limit {MAX_METADATA_BYTES}",
            field=field,
        )
    return text


def create_bank_request(
    name: str,
    *,
    model: str | None,
    key_dim: int | None,
    value_dim: int | None,
    metric: str | None,
    index: str | IndexSpec,
    capacity: int | None,
    capacity_policy: str,
    description: str,
) -> Any:
    if isinstance(index, IndexSpec):
        spec = index
    elif isinstance(index, str) and index in INDEX_KINDS:
        spec = IndexSpec(kind=index)
    else:
        raise ValidationError(
            f"index must be an IndexSpec or one of {sorted(INDEX_KINDS)}, got {index!r}",
            field="index",
        )
    if metric is not None and metric not in METRICS:
        raise ValidationError(f"metric must be one of {sorted(METRICS)}", field="metric")
    if capacity_policy not in CAPACITY_POLICIES:
        raise ValidationError(
            f"capacity_policy must be one of {sorted(CAPACITY_POLICIES)}", field="capacity_policy"
        )
    index_fields = spec.model_dump(exclude={"kind", "factory"}, exclude_none=True)
    for key, value in index_fields.items():
        count(value, field=f"index.{key}", minimum=1)
    return bank_pb2.CreateBankRequest(
        spec=bank_pb2.BankSpec(
            name=bank_name(name, field="name"),
            model=model or "",
            key_dim=count(key_dim or 0, field="key_dim"),
            value_dim=count(value_dim or 0, field="value_dim"),
            metric=METRICS[metric] if metric is not None else bank_pb2.METRIC_UNSPECIFIED,
            index=bank_pb2.IndexSpec(
                kind=INDEX_KINDS[spec.kind], factory=spec.factory, **index_fields
            ),
            capacity=count(capacity or 0, field="capacity"),
            capacity_policy=CAPACITY_POLICIES[capacity_policy],
            description=description,
        )
    )


@dataclass(frozen=True)
class PreparedWrite:
    """A validated write of N memories, ready to be cut into requests."""

    inputs: list[Any]  # N memory_pb2.MemoryInput, or [] for a vector batch with nothing but vectors
    keys: np.ndarray | None  # (N, Dk) float32
    values: np.ndarray | None  # (N, Dv) float32
    size: int  # N

    def row_bytes(self, i: int) -> int:
        """Serialized size estimate of memory i in a request, in bytes."""
        size = self.inputs[i].ByteSize() + 6 if self.inputs else 0
        if self.keys is not None and self.values is not None:
            size += 4 * (self.keys.shape[1] + self.values.shape[1])
        return size


def prepare_write(
    *,
    texts: Sequence[str] | None,
    keys: object,
    values: object,
    ids: Sequence[str] | None,
    metadata: Sequence[Mapping[str, Any] | None] | None,
) -> PreparedWrite:
    if texts is None and keys is None and values is None:
        raise ValidationError(
            "give texts (text banks) or keys and values (vector banks)", field="texts"
        )
    if (keys is None) != (values is None):
        raise ValidationError("keys and values must be given together", field="keys")
    key_rows = matrix(keys, field="keys") if keys is not None else None
    value_rows = matrix(values, field="values") if values is not None else None
    text_list = strings(texts, field="texts") if texts is not None else None
    lengths = {"texts": len(text_list) if text_list is not None else None}
    if key_rows is not None and value_rows is not None:
        lengths |= {"keys": key_rows.shape[0], "values": value_rows.shape[0]}
    id_list = strings(ids, field="ids") if ids is not None else None
    lengths["ids"] = len(id_list) if id_list is not None else None
    if metadata is not None and (
        isinstance(metadata, Mapping) or not isinstance(metadata, Sequence)
    ):
        raise ValidationError(
            "metadata must be a list with one dict (or None) per memory", field="metadata"
        )
    lengths["metadata"] = len(metadata) if metadata is not None else None
    sizes = {name: n for name, n in lengths.items() if n is not None}
    size = next(iter(sizes.values()))
    for name, n in sizes.items():
        if n != size:
            raise ValidationError(f"{name} has {n} rows, expected {size}: {sizes}", field=name)
    if id_list is not None:
        seen: dict[str, int] = {}
        for i, memory_id in enumerate(id_list):
            if len(memory_id.encode()) > MAX_ID_BYTES:
                raise ValidationError(f"ids[{i}] is over {MAX_ID_BYTES} bytes", field=f"ids[{i}]")
            if memory_id in seen:
                raise ValidationError(
                    f"ids[{i}] repeats ids[{seen[memory_id]}] ({memory_id!r})", field=f"ids[{i}]"
                )
            seen[memory_id] = i
    inputs: list[Any] = []
    if text_list is not None or id_list is not None or metadata is not None:
        inputs = [
            memory_pb2.MemoryInput(
                id=id_list[i] if id_list is not None else "",
                text=text_list[i] if text_list is not None else "",
                metadata_json=json_object(metadata[i], field=f"metadata[{i}]") if metadata else "",
            )
            for i in range(size)
        ]
    return PreparedWrite(inputs=inputs, keys=key_rows, values=value_rows, size=size)


def write_batches(write: PreparedWrite, *, budget_bytes: int, max_memories: int) -> Iterator[Any]:
    """Cut a write into MemoryBatch protos of at most ``budget_bytes`` and ``max_memories`` each."""
    limit = budget_bytes - REQUEST_OVERHEAD_BYTES
    start = 0
    while start < write.size:
        end, used = start, 0
        while end < write.size and end - start < max_memories:
            row = write.row_bytes(end)
            if used + row > limit:
                break
            used += row
            end += 1
        if end == start:
            raise ValidationError(
                f"memory {start} needs ~{write.row_bytes(start)} bytes, more than the "
                f"{budget_bytes}-byte request limit (raise chunk_bytes / max_message_bytes)",
                field="chunk_bytes",
            )
        batch = memory_pb2.MemoryBatch(memories=write.inputs[start:end])
        if write.keys is not None and write.values is not None:
            batch.keys.CopyFrom(to_tensor(write.keys[start:end]))
            batch.values.CopyFrom(to_tensor(write.values[start:end]))
        yield batch
        start = end


def write_mode(mode: WriteMode) -> memory_pb2.WriteMode:
    if mode not in WRITE_MODES:
        raise ValidationError(
            f"mode must be one of {sorted(WRITE_MODES)}, got {mode!r}", field="mode"
        )
    return WRITE_MODES[mode]


def query_request(
    bank: str,
    *,
    question: str | None,
    questions: Sequence[str] | None,
    query_vectors: object,
    k: int,
    hops: int,
    attention: str,
    metadata_filter: Mapping[str, Any] | None,
    include_vectors: bool,
    top_answers: int,
    ef_search: int | None,
    nprobe: int | None,
    tail_samples: int | None,
    arrays: bool = False,
) -> Any:
    """A QueryRequest; ``arrays`` asks for RESULT_LAYOUT_ARRAYS."""
    given = [
        n
        for n, v in (
            ("question", question),
            ("questions", questions),
            ("query_vectors", query_vectors),
        )
        if v is not None
    ]
    if len(given) != 1:
        raise ValidationError(
            f"give exactly one of question, questions, query_vectors (got {given or 'none'})",
            field="question",
        )
    if attention not in ATTENTION_MODES:
        raise ValidationError(
            f"attention must be one of {sorted(ATTENTION_MODES)}, got {attention!r}",
            field="attention",
        )
    request = query_pb2.QueryRequest(
        bank=bank_name(bank),
        k=count(k, field="k"),
        hops=count(hops, field="hops"),
        attention_mode=ATTENTION_MODES[attention],
        metadata_filter_json=json_object(metadata_filter, field="metadata_filter"),
        include_vectors=bool(include_vectors),
        top_answers=count(top_answers, field="top_answers"),
        layout=query_pb2.RESULT_LAYOUT_ARRAYS if arrays else query_pb2.RESULT_LAYOUT_MEMORIES,
    )
    if question is not None:
        if not isinstance(question, str) or not question.strip():
            raise ValidationError("question must be a non-empty string", field="question")
        request.questions.append(question)
    elif questions is not None:
        request.questions.extend(strings(questions, field="questions"))
    else:
        request.query_vectors.CopyFrom(to_tensor(matrix(query_vectors, field="query_vectors")))
    if ef_search is not None:
        request.ef_search = count(ef_search, field="ef_search", minimum=1)
    if nprobe is not None:
        request.nprobe = count(nprobe, field="nprobe", minimum=1)
    if tail_samples is not None:
        request.tail_samples = count(tail_samples, field="tail_samples", minimum=1)
    return request
