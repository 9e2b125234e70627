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
        if self._loop.in_loop():  # cannot wait for itself: scheduled
            self._loop.loop.create_task(self.servicer.set(service, status))
        else:
            self._loop.call(self.servicer.set(service, status), timeout_s=10)

    def enter_graceful_shutdown(self) -> None:
        """NOT_SERVING for every service from now on; later ``set`` calls are ignored."""
        self._loop.call(self.servicer.enter_graceful_shutdown(), timeout_s=10)


Answer = Callable[[list[Any]], list[Any]]  # requests -> a response or an Exception each


class LoopBatcher:
    """Requests that reach the event loop together, answered by one call on the loop.

    The first request queued opens a window; every request queued before it closes
    joins the batch, and ``answer`` runs on the loop for all of them (at once when
    ``max_batch`` are queued). The window is ``max_delay_s`` when that is set;
    otherwise it adapts to the load. An adaptive window stays open ``window_s`` after
    the latest request that joined it (callers still arriving), ``max_window_s`` at
    most from its first, while windows keep gathering more than one request. After
    ``misses`` windows in a row gathered only their own request (a lone caller), the
    next ``skip`` requests go without a window, then ``misses`` probe windows; each
    further run of lone probes doubles the skip, up to ``max_skip``. A lone caller
    thus waits in ``misses`` windows per ``max_skip`` requests in the long run. Any
    batch of two or more (with a window or without) opens the window again at once.
    """

    def __init__(
        self,
        answer: Answer,
        *,
        max_delay_s: float = 0.0,
        window_s: float = 0.001,
        max_window_s: float = 0.005,
        max_batch: int = 64,
        misses: int = 2,
        skip: int = 8,
        max_skip: int = 256,
    ) -> None:
        self._answer = answer
        self._max_delay_s = max_delay_s
        self._window_s = window_s
        self._max_window_s = max(window_s, max_window_s)
        self._max_batch = max_batch
        self._misses_allowed = misses
        self._base_skip = skip
        self._max_skip = max(skip, max_skip)
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._waited = False  # the open batch waited for a window
        self._misses = 0  # windows in a row that gathered a single request
        self._skip = 0  # requests still to answer without a window
        self._next_skip = skip  # the skip after the next run of lone windows
        self._opened = 0.0  # loop time the open window opened
        self._closes = 0.0  # loop time the open window closes (adaptive windows move it)
        self._batch = 0  # number of the open batch: a timer of an earlier one is stale

    async def submit(self, request: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((request, future))
        queued = len(self._pending)
        if queued == 1:
            delay = self._window()
            self._waited = delay > 0
            if delay > 0:
                self._opened = loop.time()
                self._closes = self._opened + delay
                loop.call_at(self._closes, self._close_window, self._batch)
            else:
                loop.call_soon(self._flush)
        elif queued >= self._max_batch:
            loop.call_soon(self._close_window, self._batch, True)
        elif self._waited and self._max_delay_s <= 0:  # callers still arriving
            self._closes = min(self._opened + self._max_window_s, loop.time() + self._window_s)
        return await future

    def _close_window(self, batch: int, full: bool = False) -> None:
        """The open window's timer (or a full batch): flush, unless the window moved."""
        if batch != self._batch or not self._pending:
            return  # that batch was answered already
        loop = asyncio.get_running_loop()
        if not full and loop.time() < self._closes:
            loop.call_at(self._closes, self._close_window, batch)
            return
        self._flush()

    def _window(self) -> float:
        if self._max_delay_s > 0:
            return self._max_delay_s
        if self._skip > 0:
            self._skip -= 1
            return 0.0
        return self._window_s

    def _adapt(self, gathered: int) -> None:
        """Follow the load with the adaptive window (class docstring)."""
        if gathered > 1:  # concurrent callers: windows pay
            self._misses, self._skip, self._next_skip = 0, 0, self._base_skip
            return
        if not self._waited:
            return
        self._misses += 1
        if self._misses >= self._misses_allowed:
            self._misses, self._skip = 0, self._next_skip
            self._next_skip = min(2 * self._next_skip, self._max_skip)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:  # a full batch flushed it already
            return
        self._batch += 1
        if self._max_delay_s <= 0:
            self._adapt(len(pending))
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
