"""MemoryService: write (unary and client-streaming), get, delete, list and count memories."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from memnet.api.tensors import from_tensor
from memnet.api.v1 import memory_pb2, memory_pb2_grpc
from memnet.errors import InvalidArgument, MemnetError
from memnet.store.types import MAX_VECTOR_DIM, JsonObject, WriteMode
from memnet_server.config import ServerSettings
from memnet_server.convert import (
    WRITE_MODE_FROM_PROTO,
    enum_value,
    memory_to_proto,
    parse_json_object,
)
from memnet_server.engine import Engine, WriteInput, WriteOutcome

MAX_METADATA_BYTES = 64 * 1024


def decode_batch(batch: memory_pb2.MemoryBatch, settings: ServerSettings) -> WriteInput:
    """A MemoryBatch → WriteInput, checking counts and shapes against the limits."""
    limit = settings.max_write_memories
    max_elements = limit * MAX_VECTOR_DIM
    keys = values = None
    if batch.HasField("keys"):
        keys = from_tensor(batch.keys, field="batch.keys", ndim=2, max_elements=max_elements)
    if batch.HasField("values"):
        values = from_tensor(batch.values, field="batch.values", ndim=2, max_elements=max_elements)
    if keys is not None and values is not None and keys.shape[0] != values.shape[0]:
        raise InvalidArgument(
            f"batch.keys has {keys.shape[0]} rows but batch.values has {values.shape[0]}",
            field="batch.values",
        )
    n_memories = len(batch.memories)
    n_rows = keys.shape[0] if keys is not None else None
    n = n_memories or (n_rows or 0)
    if n == 0:
        raise InvalidArgument("the batch is empty: send memories or keys/values", field="batch")
    if n > limit:
        raise InvalidArgument(
            f"batch has {n} memories, limit max_write_memories={limit}", field="batch.memories"
        )
    if n_memories and n_rows is not None and n_rows != n_memories:
        raise InvalidArgument(
            f"batch.keys has {n_rows} rows for {n_memories} memories", field="batch.keys"
        )
    if not n_memories:
        return WriteInput(ids=None, texts=None, metadata=None, keys=keys, values=values)
    metadata: list[JsonObject] = [
        parse_json_object(
            memory.metadata_json,
            field=f"batch.memories[{i}].metadata_json",
            max_bytes=MAX_METADATA_BYTES,
        )
        for i, memory in enumerate(batch.memories)
    ]
    return WriteInput(
        ids=[memory.id or None for memory in batch.memories],
        texts=[memory.text or None for memory in batch.memories],
        metadata=metadata,
        keys=keys,
        values=values,
    )


def _limit_ids(ids: list[str], settings: ServerSettings) -> list[str]:
    if len(ids) > settings.max_ids_per_call:
        raise InvalidArgument(
            f"ids has {len(ids)} entries, limit max_ids_per_call={settings.max_ids_per_call}",
            field="ids",
        )
    return ids


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._settings = engine.settings

    def _write(self, bank: str, mode: int, batch: memory_pb2.MemoryBatch) -> WriteOutcome:
        write_mode: WriteMode = enum_value(WRITE_MODE_FROM_PROTO, mode, field="mode")
        data = decode_batch(batch, self._settings)
        return self._engine.write(bank, data, mode=write_mode)

    def WriteMemories(  # noqa: N802
        self, request: memory_pb2.WriteMemoriesRequest, context: grpc.ServicerContext
    ) -> memory_pb2.WriteMemoriesResponse:
        outcome = self._write(request.bank, request.mode, request.batch)
        result = outcome.result
        return memory_pb2.WriteMemoriesResponse(
            ids=result.ids,
            seq=result.seq,
            inserted=result.inserted,
            replaced=result.replaced,
            evicted_ids=result.evicted_ids,
            unknown_words=outcome.unknown_words,
        )

    def StreamWriteMemories(  # noqa: N802
        self,
        request_iterator: Iterator[memory_pb2.StreamWriteMemoriesRequest],
        context: grpc.ServicerContext,
    ) -> memory_pb2.StreamWriteMemoriesResponse:
        bank, mode = "", memory_pb2.WRITE_MODE_UNSPECIFIED
        written = seq = messages = 0
        unknown: set[str] = set()
        try:
            for request in request_iterator:
                if messages == 0:
                    bank, mode = request.bank, request.mode
                elif request.bank not in ("", bank) or request.mode not in (0, mode):
                    raise InvalidArgument(
                        f"message {messages + 1} names bank {request.bank!r} / mode "
                        f"{request.mode}; a stream writes one bank with one mode",
                        field="bank",
                    )
                outcome = self._write(bank, mode, request.batch)
                written += len(outcome.result.ids)
                seq = outcome.result.seq
                messages += 1
                unknown.update(outcome.unknown_words)
        except MemnetError as error:
            raise type(error)(
                f"{error} ({written} memories in {messages} messages were committed before "
                "this failure)",
                field=error.field,
            ) from error
        if messages == 0:
            raise InvalidArgument("the stream carried no messages", field="batch")
        return memory_pb2.StreamWriteMemoriesResponse(
            written=written, seq=seq, messages=messages, unknown_words=sorted(unknown)
        )

    def GetMemories(  # noqa: N802
        self, request: memory_pb2.GetMemoriesRequest, context: grpc.ServicerContext
    ) -> memory_pb2.GetMemoriesResponse:
        ids = _limit_ids(list(request.ids), self._settings)
        records = self._engine.bank(request.bank).get(ids) if ids else []
        response = memory_pb2.GetMemoriesResponse()
        for memory_id, record in zip(ids, records, strict=True):
            if record is None:
                response.missing_ids.append(memory_id)
            else:
                response.memories.append(
                    memory_to_proto(record, include_vectors=request.include_vectors)
                )
        return response

    def DeleteMemories(  # noqa: N802
        self, request: memory_pb2.DeleteMemoriesRequest, context: grpc.ServicerContext
    ) -> memory_pb2.DeleteMemoriesResponse:
        ids = _limit_ids(list(request.ids), self._settings)
        bank = self._engine.bank(request.bank)
        return memory_pb2.DeleteMemoriesResponse(deleted=bank.delete(ids) if ids else 0)

    def ListMemories(  # noqa: N802
        self, request: memory_pb2.ListMemoriesRequest, context: grpc.ServicerContext
    ) -> memory_pb2.ListMemoriesResponse:
        page_size = request.page_size or 100
        if page_size > self._settings.max_page_size:
            raise InvalidArgument(
                f"page_size must be 1..{self._settings.max_page_size}, got {page_size}",
                field="page_size",
            )
        bank = self._engine.bank(request.bank)
        records, next_token = bank.list(page_size=page_size, page_token=request.page_token or None)
        return memory_pb2.ListMemoriesResponse(
            memories=[memory_to_proto(r, include_vectors=request.include_vectors) for r in records],
            next_page_token=next_token or "",
        )

    def CountMemories(  # noqa: N802
        self, request: memory_pb2.CountMemoriesRequest, context: grpc.ServicerContext
    ) -> memory_pb2.CountMemoriesResponse:
        return memory_pb2.CountMemoriesResponse(count=self._engine.bank(request.bank).count())
