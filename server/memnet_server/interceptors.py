"""The call wrapper every memnet RPC runs in: auth, error mapping, metrics, access log.

One server interceptor wraps the handlers of the four memnet services (health and
reflection pass through untouched). Around each call it authenticates the API key
and checks the caller's right on the bank the request names, runs the servicer (on
the server's event loop or in its thread pool), turns any exception into a status
through ``errors.status_for``, and records the method, code and latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from memnet.errors import InvalidArgument
from memnet_server.auth import CURRENT_PRINCIPAL, KeyRing, Principal, Right
from memnet_server.errors import status_for
from memnet_server.loop import LoopBatcher
from memnet_server.metrics import Metrics
from memnet_server.placement import Placement

LOG = logging.getLogger(__name__)

BankOf = Callable[[Any], str]


@dataclass(frozen=True)
class Rule:
    """What an RPC needs: the right (None = any valid key) and where its bank is named."""

    right: Right | None
    bank_of: BankOf | None


_PREFIX = "/memnet.api.v1."
RULES: dict[str, Rule] = {
    f"{_PREFIX}BankService/CreateBank": Rule(Right.WRITE, lambda r: r.spec.name),
    f"{_PREFIX}BankService/GetBank": Rule(Right.READ, lambda r: r.name),
    f"{_PREFIX}BankService/ListBanks": Rule(None, None),  # filtered by the servicer
    f"{_PREFIX}BankService/DeleteBank": Rule(Right.WRITE, lambda r: r.name),
    f"{_PREFIX}MemoryService/WriteMemories": Rule(Right.WRITE, lambda r: r.bank),
    f"{_PREFIX}MemoryService/StreamWriteMemories": Rule(Right.WRITE, lambda r: r.bank),
    f"{_PREFIX}MemoryService/GetMemories": Rule(Right.READ, lambda r: r.bank),
    f"{_PREFIX}MemoryService/DeleteMemories": Rule(Right.WRITE, lambda r: r.bank),
    f"{_PREFIX}MemoryService/ListMemories": Rule(Right.READ, lambda r: r.bank),
    f"{_PREFIX}MemoryService/CountMemories": Rule(Right.READ, lambda r: r.bank),
    f"{_PREFIX}QueryService/Query": Rule(Right.READ, lambda r: r.bank),
    f"{_PREFIX}BankService/ReindexBank": Rule(Right.ADMIN, lambda r: r.bank),
    f"{_PREFIX}BankService/CancelReindex": Rule(Right.ADMIN, lambda r: r.bank),
    f"{_PREFIX}ModelService/ListModels": Rule(None, None),
    f"{_PREFIX}ModelService/GetModel": Rule(None, None),
    f"{_PREFIX}ModelService/LoadModel": Rule(Right.ADMIN, None),
    f"{_PREFIX}ModelService/UnloadModel": Rule(Right.ADMIN, None),
}


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Auth + status mapping + metrics around every memnet RPC, and where it runs.

    The servicers are synchronous. ``place(method, request)`` says where a unary call
    runs: on the server's event loop when it is short and never waits (a query that
    skips the batcher), through ``batcher`` on the loop together with the requests
    that arrived with it (queries to a text bank), or in ``pool`` (writes, big or
    batched scans, everything that may block; also every call without a policy).
    """

    def __init__(
        self,
        *,
        keys: KeyRing | None,
        metrics: Metrics,
        pool: Executor,
        place: PlacementPolicy | None = None,
        batcher: LoopBatcher | None = None,
    ) -> None:
        self._keys = keys
        self._metrics = metrics
        self._pool = pool
        self._place = place
        self._batcher = batcher
        self._idle = threading.Condition()
        self._inflight = 0
        # The wrapped handler of each method, built on its first call (a method's handler
        # never changes once the server has started).
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no memnet handler is running; False if still busy after ``timeout_s``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout_s)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        rule = RULES.get(method)
        if handler is None or rule is None:
            return handler
        wrapped = self._wrap(method, rule, handler)
        self._wrapped[method] = wrapped
        return wrapped

    def _wrap(
        self, method: str, rule: Rule, handler: grpc.RpcMethodHandler
    ) -> grpc.RpcMethodHandler:
        # Requests arrive as raw bytes and are decoded inside the wrapper, so that bytes
        # which are not a valid protobuf answer INVALID_ARGUMENT, not grpc's INTERNAL.
        decode = _decoder(method, handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, rule, decode, handler.unary_unary),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_client_stream(method, rule, decode, handler.stream_unary),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _authenticate(self, context: grpc.aio.ServicerContext) -> Principal | None:
        if self._keys is None:
            return None
        return self._keys.authenticate(tuple(context.invocation_metadata() or ()))

    async def _call(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        body: Callable[[Principal | None], Awaitable[Any]],
    ) -> Any:
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        with self._idle:
            self._inflight += 1
        try:
            return await body(self._authenticate(context))
        except Exception as error:
            code, message = status_for(error, method=method)
        finally:
            # Counted before the status goes out, so a caller that has its answer also
            # finds the call in the metrics and the log.
            self._finish(method, code, time.perf_counter() - start)
        await context.abort(code, message)

    def _finish(self, method: str, code: grpc.StatusCode, latency_s: float) -> None:
        with self._idle:
            self._inflight -= 1
            if self._inflight == 0:  # only ``wait_idle`` waits, and only for zero
                self._idle.notify_all()
        self._metrics.observe_call(method, code.name, latency_s)
        if code is not grpc.StatusCode.OK:
            LOG.info(
                "rpc %s failed with %s",
                method,
                code.name,
                extra={"method": method, "code": code.name, "latency_ms": latency_s * 1e3},
            )
        elif LOG.isEnabledFor(logging.DEBUG):
            LOG.debug("rpc", extra={"method": method, "code": "OK", "latency_ms": latency_s * 1e3})

    async def _in_pool(self, run: Callable[[], Any]) -> Any:
        future = asyncio.get_running_loop().run_in_executor(self._pool, run)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The call was cancelled (client gone, server stopping), but its handler runs
            # on in its thread: it counts as running (``wait_idle``) until it returns.
            with contextlib.suppress(BaseException):
                await asyncio.wait([future])
            raise

    def _wrap_unary(
        self,
        method: str,
        rule: Rule,
        decode: Decoder,
        behavior: Callable[[Any, Any], Any],  # a servicer method (request, context)
    ) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Any]]:
        async def wrapped(request_bytes: bytes, context: grpc.aio.ServicerContext) -> Any:
            async def body(principal: Principal | None) -> Any:
                request = decode(request_bytes)
                if principal is not None and rule.right is not None:
                    if rule.bank_of is not None:
                        principal.check(rule.bank_of(request), rule.right)
                    else:
                        principal.check_right(rule.right)
                run = partial(_as, principal, behavior, request, context)
                place = Placement.POOL if self._place is None else self._place(method, request)
                if place is Placement.LOOP:
                    return run()
                if place is Placement.LOOP_BATCHED and self._batcher is not None:
                    return await self._batcher.submit(request)
                return await self._in_pool(run)

            return await self._call(method, context, body)

        return wrapped

    def _wrap_client_stream(
        self,
        method: str,
        rule: Rule,
        decode: Decoder,
        behavior: Callable[[Iterator[Any], Any], Any],  # (request stream, context)
    ) -> Callable[[AsyncIterator[bytes], grpc.aio.ServicerContext], Awaitable[Any]]:
        async def wrapped(
            request_bytes: AsyncIterator[bytes], context: grpc.aio.ServicerContext
        ) -> Any:
            loop = asyncio.get_running_loop()

            async def body(principal: Principal | None) -> Any:
                # The servicer reads the stream in a pool thread, one message at a time.
                requests: Iterator[Any] = (decode(m) for m in _blocking_iter(request_bytes, loop))
                if principal is not None and rule.right is not None and rule.bank_of is not None:
                    requests = _checked(requests, principal, rule)
                return await self._in_pool(partial(_as, principal, behavior, requests, context))

            return await self._call(method, context, body)

        return wrapped


PlacementPolicy = Callable[[str, Any], Placement]  # (method, decoded request) -> where


def _as(principal: Principal | None, behavior: Callable[..., Any], *args: Any) -> Any:
    """``behavior(*args)`` with ``CURRENT_PRINCIPAL`` set, in whichever thread runs it."""
    token = CURRENT_PRINCIPAL.set(principal)
    try:
        return behavior(*args)
    finally:
        CURRENT_PRINCIPAL.reset(token)


def _blocking_iter(
    messages: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop
) -> Iterator[bytes]:
    """A client stream read from another thread: each message is awaited on ``loop``."""

    async def next_message() -> bytes:
        return await anext(messages)

    while True:
        try:
            yield asyncio.run_coroutine_threadsafe(next_message(), loop).result()
        except StopAsyncIteration:
            return


Decoder = Callable[[bytes], Any]


def _decoder(method: str, deserializer: Callable[[bytes], Any] | None) -> Decoder:
    """The handler's own deserializer, with undecodable bytes as InvalidArgument."""
    message_name = method.rsplit("/", 1)[-1] + "Request"

    def decode(request_bytes: bytes) -> Any:
        if deserializer is None:
            return request_bytes
        try:
            return deserializer(request_bytes)
        except DecodeError as error:
            raise InvalidArgument(
                f"request is not a valid {message_name} ({len(request_bytes)} bytes): {error}",
                field="request",
            ) from error

    return decode


def _checked(requests: Iterator[Any], principal: Principal, rule: Rule) -> Iterator[Any]:
    """Check the right on every named bank of a client stream before it is used."""
    assert rule.right is not None and rule.bank_of is not None
    first = True
    for request in requests:
        bank = rule.bank_of(request)
        if bank or first:
            principal.check(bank, rule.right)
        first = False
        yield request
