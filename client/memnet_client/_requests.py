"""Client-side validation and request building, shared by the sync and async clients.

Everything here runs before an RPC is made and raises ``ValidationError`` (an
``InvalidArgument``, hence a ``ValueError``) naming the argument at fault.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, query_pb2
from memnet_client._checks import MAX_ID_BYTES, bank_name, count, json_object, matrix, strings
from memnet_client._convert import (
    ATTENTION_MODES,
    CAPACITY_POLICIES,
    INDEX_KINDS,
    METRICS,
)
from memnet_client.errors import ValidationError
from memnet_client.models import IndexSpec
from memnet_client.options import REQUEST_OVERHEAD_BYTES, SearchParams


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


def query_request(
    bank: str,
    *,
    question: str | None,
    questions: Sequence[str] | None,
    query_vectors: object,
    params: SearchParams,
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
    if arrays and params.include_vectors:
        raise ValidationError(
            "query_arrays returns no vectors: use query(..., include_vectors=True) or "
            "get(bank, ids, include_vectors=True)",
            field="include_vectors",
        )
    request = query_pb2.QueryRequest(
        bank=bank_name(bank),
        k=params.k,
        hops=params.hops,
        attention_mode=ATTENTION_MODES[params.attention],
        metadata_filter_json=params.metadata_filter_json,
        include_vectors=params.include_vectors,
        top_answers=0 if arrays else params.top_answers,
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
    for name in ("ef_search", "nprobe", "tail_samples"):
        value = getattr(params, name)
        if value is not None:
            setattr(request, name, value)
    return request
