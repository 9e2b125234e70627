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
from collections.abc import Coroutine
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
        """Set ``service``'s status; returns once watchers have been told (off the loop)."""
        if self._loop.in_loop():
            self._loop.submit(self.servicer.set(service, status))
        else:
            self._loop.call(self.servicer.set(service, status), timeout_s=10)

    def enter_graceful_shutdown(self) -> None:
        """NOT_SERVING for every service from now on; later ``set`` calls are ignored."""
        self._loop.call(self.servicer.enter_graceful_shutdown(), timeout_s=10)
