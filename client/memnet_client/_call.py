"""The one wrapper every stub call goes through (sync ``call`` and async ``acall``).

It sets the deadline and the metadata, picks the replica (channel) of each attempt,
retries idempotent calls that fail with UNAVAILABLE (on a replica the call has not
tried yet at once, otherwise after an exponential backoff with full jitter), and
turns ``grpc.RpcError`` into the SDK's typed exceptions, raised ``from`` the original.

Deadlines: ``timeout_s`` bounds the whole call, retries and backoff included; each
attempt gets the time that is left. Defaults: 10 s for reads and queries, 60 s
for writes (per write request, so per chunk of a chunked write).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from memnet_client._replicas import Replica, Replicas
from memnet_client._rpcs import RPCS
from memnet_client.errors import ServiceError, ValidationError, from_rpc_error

LOG = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_WRITE_TIMEOUT_S = 60.0

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of idempotent calls that failed with UNAVAILABLE.

    Every attempt counts, failovers included: ``max_attempts=1`` disables retries.
    An attempt that can go to a replica the call has not tried yet goes at once;
    otherwise retry ``n`` (0-based count of waits) first waits ``uniform(0,
    min(max_backoff_s, initial_backoff_s * multiplier**n))`` seconds ("full
    jitter"), and never past the call's deadline.
    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValidationError("max_attempts must be >= 1", field="retry.max_attempts")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1:
            raise ValidationError(
                "backoffs must be >= 0 and multiplier >= 1", field="retry.initial_backoff_s"
            )

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier**retry)
        return rng.uniform(0.0, ceiling)


@dataclass(frozen=True)
class CallSettings:
    """What every call of one client carries: metadata, default deadlines, retry policy."""

    metadata: Metadata
    timeout_s: float
    write_timeout_s: float
    retry: RetryPolicy

    def __post_init__(self) -> None:
        for name in ("timeout_s", "write_timeout_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValidationError(f"{name} must be > 0 seconds, got {value}", field=name)

    def budget_s(self, timeout_s: float | None, *, write: bool) -> float:
        """The deadline of one call in seconds: ``timeout_s`` or the default for its kind."""
        if timeout_s is None:
            return self.write_timeout_s if write else self.timeout_s
        if not timeout_s > 0:
            raise ValidationError(
                f"timeout_s must be > 0 seconds, got {timeout_s}", field="timeout_s"
            )
        return timeout_s


def _status(error: grpc.RpcError) -> tuple[grpc.StatusCode, str | None, Any]:
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code(), error.details(), error.trailing_metadata()
    if isinstance(error, grpc.Call):
        return error.code(), error.details(), error.trailing_metadata()
    return grpc.StatusCode.UNKNOWN, str(error), None


def _typed(error: grpc.RpcError) -> ServiceError:
    code, details, trailing = _status(error)
    return from_rpc_error(code, details, tuple(trailing) if trailing else None)


class _Attempts:
    """The attempts of one call: its deadline, the replicas it tried, when to try again."""

    def __init__(
        self,
        settings: CallSettings,
        replicas: Replicas,
        rng: random.Random,
        *,
        rpc: str,
        timeout_s: float | None,
        idempotent: bool | None,
    ) -> None:
        policy = RPCS[rpc]
        self.rpc = rpc
        self.idempotent = policy.idempotent if idempotent is None else idempotent
        self.deadline_s = time.monotonic() + settings.budget_s(timeout_s, write=policy.write)
        self._retry = settings.retry
        self._replicas = replicas
        self._rng = rng
        self._tried: set[int] = set()
        self._attempts = 0
        self._waits = 0

    def start(self) -> tuple[Replica, Any, float]:
        """The next attempt: its replica, the stub method, the seconds left (>= 1 ms)."""
        replica = self._replicas.pick(self._tried)
        self._attempts += 1
        remaining_s = max(self.deadline_s - time.monotonic(), 0.001)
        return replica, replica.stubs.method(self.rpc), remaining_s

    def failed(self, replica: Replica, error: ServiceError) -> float | None:
        """Seconds to wait before another attempt, or None to give up with ``error``."""
        self._tried.add(replica.index)
        if error.code != grpc.StatusCode.UNAVAILABLE:
            return None
        self._replicas.mark_unavailable(replica)
        if not self.idempotent or self._attempts >= self._retry.max_attempts:
            return None
        wait_s = 0.0
        if not self._replicas.untried(self._tried):
            wait_s = self._retry.backoff_s(self._waits, self._rng)
            self._waits += 1
        if time.monotonic() + wait_s >= self.deadline_s:
            return None
        LOG.debug(
            "%s: UNAVAILABLE from %s on attempt %d, retrying in %.0f ms",
            self.rpc,
            replica.target,
            self._attempts,
            wait_s * 1e3,
        )
        return wait_s


class Caller:
    """Deadline, metadata, replica choice, retries and error mapping for one client."""

    def __init__(self, settings: CallSettings, replicas: Replicas) -> None:
        self.settings = settings
        self.replicas = replicas
        self._rng = random.Random()

    @property
    def metadata(self) -> Metadata:
        return self.settings.metadata

    def _attempts(self, rpc: str, timeout_s: float | None, idempotent: bool | None) -> _Attempts:
        return _Attempts(
            self.settings,
            self.replicas,
            self._rng,
            rpc=rpc,
            timeout_s=timeout_s,
            idempotent=idempotent,
        )

    def call(
        self, rpc: str, request: object, *, timeout_s: float | None, idempotent: bool | None = None
    ) -> Any:
        """Make RPC ``rpc`` (a name of ``_rpcs.RPCS``) on a sync channel, with the policy above.

        ``idempotent`` overrides the RPC's row for this call (e.g. upserts of client ids).
        """
        attempts = self._attempts(rpc, timeout_s, idempotent)
        while True:
            replica, method, remaining_s = attempts.start()
            try:
                return method(request, timeout=remaining_s, metadata=self.metadata)
            except grpc.RpcError as rpc_error:
                typed = _typed(rpc_error)
                wait_s = attempts.failed(replica, typed)
                if wait_s is None:
                    raise typed from rpc_error
            time.sleep(wait_s)

    async def acall(
        self, rpc: str, request: object, *, timeout_s: float | None, idempotent: bool | None = None
    ) -> Any:
        """``call`` on a grpc.aio channel."""
        attempts = self._attempts(rpc, timeout_s, idempotent)
        while True:
            replica, method, remaining_s = attempts.start()
            try:
                return await method(request, timeout=remaining_s, metadata=self.metadata)
            except grpc.RpcError as rpc_error:
                typed = _typed(rpc_error)
                wait_s = attempts.failed(replica, typed)
                if wait_s is None:
                    raise typed from rpc_error
            await asyncio.sleep(wait_s)
