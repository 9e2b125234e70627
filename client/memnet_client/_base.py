"""What the sync and async clients share: settings, targets, the call policy, write plans."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memnet.api.v1 import memory_pb2
from memnet_client import _checks, _requests
from memnet_client._call import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_WRITE_TIMEOUT_S,
    Caller,
    CallSettings,
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
from memnet_client._convert import WRITE_MODES
from memnet_client._replicas import Replicas
from memnet_client._rpcs import RPCS, RpcPolicy, Stubs
from memnet_client._targets import ChannelTarget, plan_channels
from memnet_client.errors import ValidationError
from memnet_client.options import REQUEST_OVERHEAD_BYTES, WriteOptions

MIN_MESSAGE_BYTES = 64 * 1024


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
        limit = self.budget_bytes - REQUEST_OVERHEAD_BYTES
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

    def _batches(self) -> Iterator[Any]:
        return _requests.write_batches(
            self.write, budget_bytes=self.budget_bytes, max_memories=self.max_memories
        )

    def requests(self) -> Iterator[Any]:
        """WriteMemoriesRequests, one per chunk."""
        for batch in self._batches():
            yield memory_pb2.WriteMemoriesRequest(bank=self.bank, mode=self.mode, batch=batch)

    def stream_requests(self, *, sent: Callable[[int], None]) -> Iterator[Any]:
        """StreamWriteMemoriesRequests, one per chunk; ``sent(n)`` after each is taken."""
        for batch in self._batches():
            yield memory_pb2.StreamWriteMemoriesRequest(bank=self.bank, mode=self.mode, batch=batch)
            sent(max(len(batch.memories), batch.keys.shape[0] if batch.keys.shape else 0))


class ClientBase:
    """Settings, targets and call policy of a client; the transport is the subclass's.

    A subclass checks its arguments through ``__init__`` (nothing is opened yet),
    opens one channel per entry of ``channel_targets`` with ``channel_options(t)``,
    then hands them to ``_attach``.
    """

    stubs: Stubs
    _caller: Caller

    def __init__(
        self,
        target: str | Sequence[str],
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
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ValidationError("api_key must be a non-empty string", field="api_key")
        _checks.count(max_message_bytes, field="max_message_bytes", minimum=MIN_MESSAGE_BYTES)
        if not keepalive_s > 0:
            raise ValidationError("keepalive_s must be > 0 seconds", field="keepalive_s")
        self.tls: TlsConfig | None = TlsConfig() if tls is True else (tls or None)
        self.channel_targets: tuple[ChannelTarget, ...] = plan_channels(
            target,
            # Without a name override each server's certificate is checked against
            # its own address, which needs a channel per address.
            ip_lists_share_a_channel=self.tls is None or self.tls.server_name is not None,
        )
        self.target = target if isinstance(target, str) else ",".join(target)
        self.max_message_bytes = max_message_bytes
        self._keepalive_s = keepalive_s
        self._settings = CallSettings(
            metadata=auth_metadata(api_key) + tuple((k, v) for k, v in metadata),
            timeout_s=timeout_s,
            write_timeout_s=write_timeout_s,
            retry=retry or RetryPolicy(),
        )

    def channel_options(self, target: ChannelTarget) -> ChannelOptions:
        """The gRPC channel arguments of the channel to ``target``."""
        return channel_options(
            max_message_bytes=self.max_message_bytes,
            keepalive_s=self._keepalive_s,
            tls=self.tls,
            round_robin=target.round_robin,
        )

    def _attach(self, channels: Sequence[object]) -> None:
        """Route calls over ``channels`` (one per ``channel_targets`` entry, in order)."""
        assert len(channels) == len(self.channel_targets)
        replicas = Replicas(
            [(t.target, Stubs.over(c)) for t, c in zip(self.channel_targets, channels, strict=True)]
        )
        self.stubs = replicas.all[0].stubs
        self._caller = Caller(self._settings, replicas)

    @property
    def metadata(self) -> Metadata:
        """The metadata sent with every call (the API key as ``authorization: Bearer …``)."""
        return self._settings.metadata

    def _plan(
        self,
        bank: str,
        *,
        texts: Sequence[str] | None,
        keys: object,
        values: object,
        ids: Sequence[str] | None,
        metadata: Sequence[Mapping[str, Any] | None] | None,
        options: WriteOptions,
    ) -> WritePlan:
        """Validate a write and plan its requests; nothing is sent yet."""
        plan = WritePlan(
            bank=_checks.bank_name(bank),
            mode=WRITE_MODES[options.mode],
            write=_requests.prepare_write(
                texts=texts, keys=keys, values=values, ids=ids, metadata=metadata
            ),
            budget_bytes=min(options.budget_bytes, self.max_message_bytes),
            max_memories=options.max_chunk_memories,
            # Replaying an upsert of client-chosen ids leaves the same state; anything
            # else could write twice (new generated ids) or fail with ALREADY_EXISTS.
            idempotent=options.mode == "upsert" and ids is not None,
        )
        plan.check_fits()
        return plan


__all__ = [
    "DEFAULT_KEEPALIVE_S",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_WRITE_TIMEOUT_S",
    "RPCS",
    "ClientBase",
    "RpcPolicy",
    "Stubs",
    "WritePlan",
]
