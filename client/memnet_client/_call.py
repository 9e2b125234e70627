"""The one wrapper every stub call goes through (sync ``call`` and async ``acall``).

It sets the deadline and the metadata, retries idempotent calls on UNAVAILABLE with
exponential backoff and full jitter, and turns ``grpc.RpcError`` into the SDK's
typed exceptions, raised ``from`` the original.

Deadlines: ``timeout_s`` bounds the whole call, retries and backoff included; each
attempt gets the time that is left. Defaults: 10 s for reads and queries, 60 s
for writes (per write request, so per chunk of a chunked write).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import grpc.aio

from memnet_client.errors import ServiceError, ValidationError, from_rpc_error

LOG = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_WRITE_TIMEOUT_S = 60.0

Metadata = tuple[tuple[str, str], ...]
R = TypeVar("R")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of idempotent calls that failed with UNAVAILABLE.

    Attempt ``n`` (0-based retry count) waits ``uniform(0, min(max_backoff_s,
    initial_backoff_s * multiplier**n))`` seconds first ("full jitter"), and never
    past the call's deadline. ``max_attempts=1`` disables retries.
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


def _status(error: grpc.RpcError) -> tuple[grpc.StatusCode, str | None, Any]:
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code(), error.details(), error.trailing_metadata()
    if isinstance(error, grpc.Call):
        return error.code(), error.details(), error.trailing_metadata()
    return grpc.StatusCode.UNKNOWN, str(error), None


def _typed(error: grpc.RpcError) -> ServiceError:
    code, details, trailing = _status(error)
    return from_rpc_error(code, details, tuple(trailing) if trailing else None)


class Caller:
    """Deadline, metadata, retries and error mapping for one client (sync and async)."""

    def __init__(
        self,
        *,
        metadata: Metadata,
        timeout_s: float,
        write_timeout_s: float,
        retry: RetryPolicy,
    ) -> None:
        for name, value in (("timeout_s", timeout_s), ("write_timeout_s", write_timeout_s)):
            if not value > 0:
                raise ValidationError(f"{name} must be > 0 seconds, got {value}", field=name)
        self.metadata = metadata
        self.timeout_s = timeout_s
        self.write_timeout_s = write_timeout_s
        self.retry = retry
        self._rng = random.Random()

    def _budget(self, timeout_s: float | None, *, write: bool) -> float:
        if timeout_s is None:
            return self.write_timeout_s if write else self.timeout_s
        if not timeout_s > 0:
            raise ValidationError(
                f"timeout_s must be > 0 seconds, got {timeout_s}", field="timeout_s"
            )
        return timeout_s

    def _next_wait(
        self, rpc: str, error: ServiceError, attempt: int, idempotent: bool, deadline: float
    ) -> float | None:
        """Seconds to sleep before another attempt, or None to give up."""
        if not idempotent or error.code != grpc.StatusCode.UNAVAILABLE:
            return None
        if attempt + 1 >= self.retry.max_attempts:
            return None
        wait_s = self.retry.backoff_s(attempt, self._rng)
        if time.monotonic() + wait_s >= deadline:
            return None
        LOG.debug(
            "%s: UNAVAILABLE on attempt %d, retrying in %.0f ms", rpc, attempt + 1, wait_s * 1e3
        )
        return wait_s

    def call(
        self,
        method: Callable[..., R],
        request: object,
        *,
        rpc: str,
        idempotent: bool,
        timeout_s: float | None = None,
        write: bool = False,
    ) -> R:
        """Invoke a sync stub method (unary or client-streaming) with the client's policy."""
        deadline = time.monotonic() + self._budget(timeout_s, write=write)
        attempt = 0
        while True:
            remaining = max(deadline - time.monotonic(), 0.001)
            try:
                return method(request, timeout=remaining, metadata=self.metadata)
            except grpc.RpcError as rpc_error:
                typed = _typed(rpc_error)
                wait_s = self._next_wait(rpc, typed, attempt, idempotent, deadline)
                if wait_s is None:
                    raise typed from rpc_error
            time.sleep(wait_s)
            attempt += 1

    async def acall(
        self,
        method: Callable[..., Awaitable[R]],
        request: object,
        *,
        rpc: str,
        idempotent: bool,
        timeout_s: float | None = None,
        write: bool = False,
    ) -> R:
        """Invoke a grpc.aio stub method with the client's policy (see ``call``)."""
        deadline = time.monotonic() + self._budget(timeout_s, write=write)
        attempt = 0
        while True:
            remaining = max(deadline - time.monotonic(), 0.001)
            try:
                return await method(request, timeout=remaining, metadata=self.metadata)
            except grpc.RpcError as rpc_error:
                typed = _typed(rpc_error)
                wait_s = self._next_wait(rpc, typed, attempt, idempotent, deadline)
                if wait_s is None:
                    raise typed from rpc_error
            await asyncio.sleep(wait_s)
            attempt += 1
