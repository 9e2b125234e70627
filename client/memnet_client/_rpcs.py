"""The RPCs the SDK makes: their stubs; per RPC, whether a retry is safe and which deadline.

To add a call to the SDK: add its row to ``RPCS`` here, write the method once in
``client.py``, and run ``python scripts/gen_async_client.py`` (a test fails until the
generated async client is current).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memnet.api.v1 import bank_pb2_grpc, memory_pb2_grpc, model_pb2_grpc, query_pb2_grpc


@dataclass(frozen=True)
class Stubs:
    """The generated gRPC stubs over the client's channel: the escape hatch.

    Calls made here bypass the SDK's deadline, retries, failover and error mapping;
    pass ``metadata=client.metadata`` (the API key) and a ``timeout`` yourself, e.g.
    ``client.stubs.bank.ListBanks(bank_pb2.ListBanksRequest(), metadata=client.metadata,
    timeout=5)``.
    """

    bank: Any  # memnet.api.v1.bank_pb2_grpc.BankServiceStub
    memory: Any  # memnet.api.v1.memory_pb2_grpc.MemoryServiceStub
    query: Any  # memnet.api.v1.query_pb2_grpc.QueryServiceStub
    model: Any  # memnet.api.v1.model_pb2_grpc.ModelServiceStub

    @classmethod
    def over(cls, channel: object) -> Stubs:
        return cls(
            bank=bank_pb2_grpc.BankServiceStub(channel),
            memory=memory_pb2_grpc.MemoryServiceStub(channel),
            query=query_pb2_grpc.QueryServiceStub(channel),
            model=model_pb2_grpc.ModelServiceStub(channel),
        )

    def method(self, rpc: str) -> Any:
        """The stub's callable for ``rpc`` (e.g. "GetBank")."""
        return getattr(getattr(self, RPCS[rpc].service), rpc)


@dataclass(frozen=True)
class RpcPolicy:
    """How the SDK calls one RPC: which stub, whether a retry is safe, which default deadline."""

    service: str  # attribute of Stubs
    idempotent: bool  # retried on UNAVAILABLE, on another replica when there is one
    write: bool  # default deadline write_timeout_s (else timeout_s)


RPCS: dict[str, RpcPolicy] = {
    "CreateBank": RpcPolicy("bank", idempotent=False, write=True),
    "GetBank": RpcPolicy("bank", idempotent=True, write=False),
    "ListBanks": RpcPolicy("bank", idempotent=True, write=False),
    "DeleteBank": RpcPolicy("bank", idempotent=False, write=True),
    # Per call: idempotent for upserts of client-chosen ids (WritePlan.idempotent).
    "WriteMemories": RpcPolicy("memory", idempotent=False, write=True),
    # Never retried: the request stream is consumed by the first attempt.
    "StreamWriteMemories": RpcPolicy("memory", idempotent=False, write=True),
    "GetMemories": RpcPolicy("memory", idempotent=True, write=False),
    "DeleteMemories": RpcPolicy("memory", idempotent=True, write=True),
    "ListMemories": RpcPolicy("memory", idempotent=True, write=False),
    "CountMemories": RpcPolicy("memory", idempotent=True, write=False),
    "Query": RpcPolicy("query", idempotent=True, write=False),
    "ListModels": RpcPolicy("model", idempotent=True, write=False),
    "GetModel": RpcPolicy("model", idempotent=True, write=False),
    # Admin calls. A second ReindexBank while one runs is refused: not retried.
    "ReindexBank": RpcPolicy("bank", idempotent=False, write=True),
    "CancelReindex": RpcPolicy("bank", idempotent=False, write=True),
    "LoadModel": RpcPolicy("model", idempotent=True, write=True),
    "UnloadModel": RpcPolicy("model", idempotent=False, write=True),
}
