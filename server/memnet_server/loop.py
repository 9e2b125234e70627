"""The event loop the gRPC server runs on, and a thread-safe face for its health servicer.

The server is a ``grpc.aio`` server (docs/server.md, "Threads"): its loop thread reads
requests and writes responses, and runs the handlers that are short and never wait
(single-shot queries that skip the batcher, health checks) right there; every other
handler runs in the ``worker_threads`` pool. The rest of memnet is synchronous and
calls into the loop only through ``ServerLoop.call`` and ``HealthBoard``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

T = TypeVar("T")


class ServerLoop:
    """An asyncio event loop running forever in its own daemon thread."""

    def __init__(self, name: str = "memnet-grpc") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def in_loop(self) -> bool:
        return threading.get_ident() == self._thread.ident

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def submit(self, coro: Coroutine[Any, Any, T]) -> None:
        """Run ``coro`` on the loop without waiting (safe from any thread, the loop's too)."""
        if self.in_loop():
            self.loop.create_task(coro)
        else:
            asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        """Stop the loop and join its thread (the server must already be stopped)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


class HealthBoard:
    """``grpc.health.v1`` statuses, set from any thread; served by the loop's servicer."""

    def __init__(self, loop: ServerLoop) -> None:
        self._loop = loop
        self.servicer = HealthServicer()

    def set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        """Set ``service``'s status; returns once watchers have been told (off the loop).
        Ignored once the server has stopped and closed its loop."""
        if self._loop.loop.is_closed():
            return
        if self._loop.in_loop():
            self._loop.submit(self.servicer.set(service, status))
        else:
            self._loop.call(self.servicer.set(service, status), timeout_s=10)

    def enter_graceful_shutdown(self) -> None:
        """NOT_SERVING for every service from now on; later ``set`` calls are ignored."""
        self._loop.call(self.servicer.enter_graceful_shutdown(), timeout_s=10)


Answer = Callable[[list[Any]], list[Any]]  # requests -> a response or an Exception each


class LoopBatcher:
    """Requests that reach the event loop together, answered by one call on the loop.

    ``submit`` queues a request and, if none is queued yet, schedules a flush with
    ``call_soon``: every handler the loop runs before that flush joins the batch, so a
    lone request waits for nothing, and requests that arrive while the loop is busy
    (with the previous batch) go out together. ``answer`` runs on the loop.
    """

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []

    async def submit(self, request: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((request, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        try:
            results = self._answer([request for request, _ in pending])
        except Exception as error:  # answer() reports per request; this is a bug
            results = [error] * len(pending)
        for (_, future), result in zip(pending, results, strict=True):
            if future.done():  # the caller went away (cancelled)
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
