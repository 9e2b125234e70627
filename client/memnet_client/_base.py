"""What the sync and async clients share: settings, the call policy, the raw stubs, write plans."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memnet.api.v1 import (
    bank_pb2_grpc,
    memory_pb2,
    memory_pb2_grpc,
    model_pb2_grpc,
    query_pb2_grpc,
)
from memnet_client import _requests
from memnet_client._call import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_WRITE_TIMEOUT_S,
    Caller,
    Metadata,
    RetryPolicy,
)
from memnet_client._channel import (
    DEFAULT_KEEPALIVE_S,
    DEFAULT_MAX_MESSAGE_BYTES,
    ChannelOptions,
    TlsConfig,
    auth_metadata,
    channel_options,
)
from memnet_client.errors import ValidationError
from memnet_client.models import WriteMode

MIN_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Stubs:
    """The generated gRPC stubs over the client's channel: the escape hatch.

    Calls made here bypass the SDK's deadline, retries and error mapping; pass
    ``metadata=client.metadata`` (the API key) and a ``timeout`` yourself, e.g.
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


@dataclass(frozen=True)
class RpcPolicy:
    """How the SDK calls one RPC: which stub, whether a retry is safe, which default deadline."""

    service: str  # attribute of Stubs
    idempotent: bool  # retried on UNAVAILABLE
    write: bool  # default deadline write_timeout_s (else timeout_s)


RPCS: dict[str, RpcPolicy] = {
    "CreateBank": RpcPolicy("bank", idempotent=False, write=True),
    "GetBank": RpcPolicy("bank", idempotent=True, write=False),
    "ListBanks": RpcPolicy("bank", idempotent=True, write=False),
    "DeleteBank": RpcPolicy("bank", idempotent=False, write=True),
    # Per call: idempotent for upserts of client-chosen ids (WritePlan.idempotent).
    "WriteMemories": RpcPolicy("memory", idempotent=False, write=True),
    "StreamWriteMemories": RpcPolicy("memory", idempotent=False, write=True),
    "GetMemories": RpcPolicy("memory", idempotent=True, write=False),
    "DeleteMemories": RpcPolicy("memory", idempotent=True, write=True),
    "ListMemories": RpcPolicy("memory", idempotent=True, write=False),
    "CountMemories": RpcPolicy("memory", idempotent=True, write=False),
    "Query": RpcPolicy("query", idempotent=True, write=False),
    "ListModels": RpcPolicy("model", idempotent=True, write=False),
    "GetModel": RpcPolicy("model", idempotent=True, write=False),
}


@dataclass(frozen=True)
class WritePlan:
    """A validated write cut into requests of at most ``budget_bytes`` / ``max_memories``."""

    bank: str
    mode: memory_pb2.WriteMode
    write: _requests.PreparedWrite
    budget_bytes: int
    max_memories: int
    idempotent: bool

    def check_fits(self) -> None:
        """Raise ValidationError now if some memory alone exceeds the request budget."""
        limit = self.budget_bytes - _requests.REQUEST_OVERHEAD_BYTES
        for i in range(self.write.size if self.write.inputs else min(self.write.size, 1)):
            if self.write.row_bytes(i) > limit:
                raise ValidationError(
                    f"memory {i} needs ~{self.write.row_bytes(i)} bytes, more than the "
                    f"{self.budget_bytes}-byte request limit (raise chunk_bytes or "
                    "max_message_bytes)",
                    field="chunk_bytes",
                )

    def note_partial(self, error: BaseException, responses: list[Any]) -> None:
        """Tell, on an error mid-write, how many memories the earlier requests committed."""
        if responses:
            written = sum(len(r.ids) for r in responses)
            error.add_note(
                f"{written} of {self.write.size} memories were written durably by the "
                f"first {len(responses)} request(s) before this error"
            )

    def requests(self) -> Iterator[Any]:
        """WriteMemoriesRequests, one per chunk."""
        for batch in _requests.write_batches(
            self.write, budget_bytes=self.budget_bytes, max_memories=self.max_memories
        ):
            yield memory_pb2.WriteMemoriesRequest(bank=self.bank, mode=self.mode, batch=batch)

    def stream_requests(self) -> Iterator[Any]:
        """StreamWriteMemoriesRequests, one per chunk, each naming the bank and mode."""
        for batch in _requests.write_batches(
            self.write, budget_bytes=self.budget_bytes, max_memories=self.max_memories
        ):
            yield memory_pb2.StreamWriteMemoriesRequest(bank=self.bank, mode=self.mode, batch=batch)


class ClientBase:
    """Settings and call policy of a client; the transport is the subclass's."""

    stubs: Stubs

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None,
        tls: TlsConfig | bool | None,
        timeout_s: float,
        write_timeout_s: float,
        max_message_bytes: int,
        keepalive_s: float,
        retry: RetryPolicy | None,
        metadata: Sequence[tuple[str, str]],
    ) -> None:
        if not isinstance(target, str) or not target:
            raise ValidationError("target must be 'host:port'", field="target")
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ValidationError("api_key must be a non-empty string", field="api_key")
        _requests.count(max_message_bytes, field="max_message_bytes", minimum=MIN_MESSAGE_BYTES)
        if not keepalive_s > 0:
            raise ValidationError("keepalive_s must be > 0 seconds", field="keepalive_s")
        self.target = target
        self.tls: TlsConfig | None = TlsConfig() if tls is True else (tls or None)
        self.max_message_bytes = max_message_bytes
        self._options: ChannelOptions = channel_options(
            max_message_bytes=max_message_bytes, keepalive_s=keepalive_s, tls=self.tls
        )
        self._caller = Caller(
            metadata=auth_metadata(api_key) + tuple((k, v) for k, v in metadata),
            timeout_s=timeout_s,
            write_timeout_s=write_timeout_s,
            retry=retry or RetryPolicy(),
        )

    def _stub_method(self, rpc: str, idempotent: bool | None) -> tuple[Any, bool, bool]:
        """The stub method of ``rpc``, whether to retry it, whether it is a write."""
        policy = RPCS[rpc]
        stub = getattr(self.stubs, policy.service)
        retry = policy.idempotent if idempotent is None else idempotent
        return getattr(stub, rpc), retry, policy.write

    @property
    def metadata(self) -> Metadata:
        """The metadata sent with every call (the API key as ``authorization: Bearer …``)."""
        return self._caller.metadata

    def _plan(
        self,
        bank: str,
        *,
        texts: Sequence[str] | None,
        keys: object,
        values: object,
        ids: Sequence[str] | None,
        metadata: Sequence[Mapping[str, Any] | None] | None,
        mode: WriteMode,
        chunk_bytes: int | None,
        max_chunk_memories: int,
    ) -> WritePlan:
        """Validate a write and plan its requests; nothing is sent yet."""
        budget = _requests.DEFAULT_CHUNK_BYTES if chunk_bytes is None else chunk_bytes
        _requests.count(budget, field="chunk_bytes", minimum=2 * _requests.REQUEST_OVERHEAD_BYTES)
        plan = WritePlan(
            bank=_requests.bank_name(bank),
            mode=_requests.write_mode(mode),
            write=_requests.prepare_write(
                texts=texts, keys=keys, values=values, ids=ids, metadata=metadata
            ),
            budget_bytes=min(budget, self.max_message_bytes),
            max_memories=_requests.count(max_chunk_memories, field="max_chunk_memories", minimum=1),
            # Replaying an upsert of client-chosen ids leaves the same state; anything
            # else could write twice (new generated ids) or fail with ALREADY_EXISTS.
            idempotent=mode == "upsert" and ids is not None,
        )
        plan.check_fits()
        return plan


__all__ = [
    "DEFAULT_KEEPALIVE_S",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_WRITE_TIMEOUT_S",
    "ClientBase",
    "Stubs",
    "WritePlan",
]
