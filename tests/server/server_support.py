"""Helpers of the server tests: model doubles, a catalog mixing them with the shipped
models, a handle on a running server with raw stubs, and small call helpers.

Model doubles (``VectorDouble``, ``SlowDouble``, ``BrokenDouble``) stand in where a
test needs behaviour the shipped models do not have; everything else uses the
shipped registry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2_grpc

from memnet.api.tensors import to_tensor
from memnet.api.v1 import (
    bank_pb2,
    bank_pb2_grpc,
    memory_pb2,
    memory_pb2_grpc,
    model_pb2_grpc,
    query_pb2_grpc,
)
from memnet.core.search_options import SearchOptions
from memnet.errors import FailedPrecondition
from memnet.serving.contract import (
    AttentionMode,
    HopAttention,
    InputKind,
    MemorySource,
    ModelInfo,
    QueryOutput,
    ServedModel,
)
from memnet.serving.repository import CHECKPOINT_DIR, ModelRepository
from memnet.store.types import Metric
from memnet_server import MemnetService, ServerSettings
from memnet_server.binding import ModelCatalog


def _vector_info(name: str) -> ModelInfo:
    return ModelInfo(
        name=name,
        description=f"test double {name}",
        input_kind=InputKind.VECTOR,
        key_dim=None,
        value_dim=None,
        default_hops=1,
        max_hops=3,
        metric=Metric.INNER_PRODUCT,
        scoring="dot",
        heads=1,
        attention_modes=(AttentionMode.SPARSE, AttentionMode.SOFT, AttentionMode.HARD),
        vocab_size=0,
        answer_vocab=(),
        temporal_buckets=0,
    )


class VectorDouble:
    """Pass-through vector model: softmax over the retrieved scores; counts its forwards."""

    def __init__(self, name: str = "vector-double") -> None:
        self.info = _vector_info(name)
        self.batch_sizes: list[int] = []

    def encode_memories(self, texts: list[str]) -> Any:
        raise FailedPrecondition("vector model", field="model")

    def encode_queries(self, texts: list[str]) -> Any:
        raise FailedPrecondition("vector model", field="model")

    def query(
        self, queries: np.ndarray, memory: MemorySource, options: SearchOptions
    ) -> QueryOutput:
        self.batch_sizes.append(int(queries.shape[0]))
        result = memory.retrieve(queries, options)
        scores = np.where(result.valid, result.scores, -np.inf)
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights = np.where(result.valid, weights, 0.0)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-30)
        assert result.values is not None
        readout = np.einsum("bk,bkd->bd", weights, result.values).astype(np.float32)
        hop = HopAttention(
            ids=result.ids,
            scores=np.where(result.valid, result.scores, 0.0).astype(np.float32),
            weights=weights.astype(np.float32),
        )
        return QueryOutput(readout=readout, hops=[hop] * (options.hops or 1), answer_probs=None)


class SlowDouble(VectorDouble):
    """A vector double whose forward takes ``delay_s``."""

    def __init__(self, name: str = "slow", delay_s: float = 0.3) -> None:
        super().__init__(name)
        self.delay_s = delay_s

    def query(
        self, queries: np.ndarray, memory: MemorySource, options: SearchOptions
    ) -> QueryOutput:
        time.sleep(self.delay_s)
        return super().query(queries, memory, options)


class BrokenDouble(VectorDouble):
    """A vector double whose forward hits a bug (→ INTERNAL)."""

    def query(
        self, queries: np.ndarray, memory: MemorySource, options: SearchOptions
    ) -> QueryOutput:
        raise RuntimeError("secret internal detail")


def Catalog(base: ModelCatalog | None, *doubles: ServedModel) -> ModelRepository:  # noqa: N802
    """A repository of test doubles (version 1 each), over the shipped models with a
    ``base``; the default model is the first double without one."""
    repository = ModelRepository(
        builtin_dir=CHECKPOINT_DIR if base is not None else None,
        default_name=None if base is not None else doubles[0].info.name,
    )
    repository.refresh()
    for double in doubles:
        repository.add(double)
    return repository


@dataclass
class Running:
    """A started server and raw stubs on an open channel to it."""

    service: MemnetService
    port: int
    settings: ServerSettings
    channel: grpc.Channel
    banks: bank_pb2_grpc.BankServiceStub = field(init=False)
    memories: memory_pb2_grpc.MemoryServiceStub = field(init=False)
    queries: query_pb2_grpc.QueryServiceStub = field(init=False)
    models: model_pb2_grpc.ModelServiceStub = field(init=False)
    health: health_pb2_grpc.HealthStub = field(init=False)

    def __post_init__(self) -> None:
        self.banks = bank_pb2_grpc.BankServiceStub(self.channel)
        self.memories = memory_pb2_grpc.MemoryServiceStub(self.channel)
        self.queries = query_pb2_grpc.QueryServiceStub(self.channel)
        self.models = model_pb2_grpc.ModelServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def vector_bank(
        self, name: str, dim: int = 8, *, model: str = "vector", **spec: Any
    ) -> bank_pb2.Bank:
        request = bank_pb2.CreateBankRequest(
            spec=bank_pb2.BankSpec(name=name, model=model, key_dim=dim, value_dim=dim, **spec)
        )
        return self.banks.CreateBank(request).bank

    def write_vectors(
        self, bank: str, keys: np.ndarray, *, ids: list[str] | None = None, **request: Any
    ) -> memory_pb2.WriteMemoriesResponse:
        memories = [memory_pb2.MemoryInput(id=i) for i in ids] if ids else []
        batch = memory_pb2.MemoryBatch(
            memories=memories, keys=to_tensor(keys), values=to_tensor(keys)
        )
        return self.memories.WriteMemories(
            memory_pb2.WriteMemoriesRequest(bank=bank, batch=batch, **request)
        )


StartServer = Callable[..., Running]


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    """The RpcError a call raises (fails the test if it succeeds)."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def run_concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run calls in threads at once; results (or exceptions) in order."""
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as error:
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results
