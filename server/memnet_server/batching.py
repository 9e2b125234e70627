"""Dynamic batching of concurrent queries to one bank (leader/follower, no extra threads).

A caller enqueues its (B, D) queries and then either waits or — when fewer than
``workers`` batches are running on the bank — becomes a leader: it takes the oldest
request and every queued request with the same parameters (k, hops, mode, filter,
ef/nprobe), up to ``max_batch`` questions, runs them as ONE model forward (one
FAISS search per hop), and hands each caller its rows. A leader keeps leading until
its own request is answered, then passes its slot to the oldest waiting caller. At
low load nothing waits (a lone request runs at once, in the caller's thread); under
load, requests that arrive while the bank is busy go out together. Every caller
sleeps on its own condition, so a finished batch wakes exactly its callers.
``max_delay_s`` > 0 makes a leader wait that long for a batch to fill. The queue is
bounded: past ``max_queued`` questions a request fails with RESOURCE_EXHAUSTED
instead of waiting without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from memnet.errors import DeadlineExceeded, ResourceExhausted
from memnet.serving.contract import HopAttention, InputKind, ModelInfo, QueryOutput
from memnet.store.types import BankConfig, IndexKind

LOG = logging.getLogger(__name__)

RunBatch = Callable[[Hashable, np.ndarray], QueryOutput]
BatchObserver = Callable[[int], None]


@dataclass(eq=False)
class _Request:
    """One caller's queries; every field is guarded by the batcher's lock."""

    key: Hashable
    queries: np.ndarray  # (B, D) float32
    deadline: float | None  # time.monotonic() seconds
    wakeup: threading.Condition  # on the batcher's lock
    output: QueryOutput | None = None
    error: BaseException | None = None
    running: bool = False  # taken into a batch
    done: bool = False
    promoted: bool = False  # handed a leader slot

    @property
    def rows(self) -> int:
        return int(self.queries.shape[0])


def slice_output(output: QueryOutput, start: int, stop: int) -> QueryOutput:
    """Rows [start, stop) of a batched QueryOutput."""
    return QueryOutput(
        readout=output.readout[start:stop],
        hops=[
            HopAttention(
                ids=hop.ids[start:stop],
                scores=hop.scores[start:stop],
                weights=hop.weights[start:stop],
                tail_weights=None if hop.tail_weights is None else hop.tail_weights[start:stop],
            )
            for hop in output.hops
        ],
        answer_probs=None if output.answer_probs is None else output.answer_probs[start:stop],
    )


class Batcher:
    """Groups concurrent ``submit`` calls with equal keys into one ``run_batch`` call."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch: int,
        max_delay_s: float,
        workers: int,
        max_queued: int,
        observe_batch: BatchObserver | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._max_delay_s = max_delay_s
        self._workers = workers
        self._max_queued = max_queued
        self._observe_batch = observe_batch
        self._lock = threading.Lock()
        self._arrival = threading.Condition(self._lock)  # a leader waiting for its batch to fill
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0
        self._active = 0

    def submit(self, key: Hashable, queries: np.ndarray, *, deadline: float | None) -> QueryOutput:
        """Answer (B, D) ``queries``; blocks until done, the deadline, or an error."""
        with self._lock:
            request = _Request(key, queries, deadline, threading.Condition(self._lock))
            if self._queued_rows + request.rows > self._max_queued:
                raise ResourceExhausted(
                    f"too many queued queries for this bank (limit max_queued_queries="
                    f"{self._max_queued}); retry later",
                    field="bank",
                )
            self._queue.append(request)
            self._queued_rows += request.rows
            self._arrival.notify()
            if self._active < self._workers:
                self._active += 1
                self._lead(request)
            elif self._wait(request):
                self._lead(request)
        if request.error is not None:
            raise request.error
        assert request.output is not None
        return request.output

    def _wait(self, request: _Request) -> bool:
        """Lock held: sleep until answered or promoted (True); drop it at its deadline."""
        while not request.done and not request.promoted:
            remaining = None
            if request.deadline is not None and not request.running:
                remaining = request.deadline - time.monotonic()
                if remaining <= 0:
                    self._queue.remove(request)
                    self._queued_rows -= request.rows
                    request.error = DeadlineExceeded("deadline exceeded while queued for a batch")
                    request.done = True
                    break
            request.wakeup.wait(remaining)
        return request.promoted

    def _lead(self, request: _Request) -> None:
        """Lock held, one leader slot owned: run batches until ``request`` is answered,
        then hand the slot to the oldest waiting caller (or give it back)."""
        while not request.done:
            if not self._queue:
                request.wakeup.wait()  # it runs in another leader's batch
                continue
            group = self._take_group()
            self._lock.release()
            try:
                self._run(group)
            finally:
                self._lock.acquire()
                for member in group:
                    member.done = True
                    member.wakeup.notify()
        successor = next((r for r in self._queue if not r.promoted), None)
        if successor is None:
            self._active -= 1
        else:
            successor.promoted = True
            successor.wakeup.notify()

    def _take_group(self) -> list[_Request]:
        """Lock held: the oldest request and compatible ones behind it."""
        first = self._queue.popleft()
        group, rows = [first], first.rows
        wait_until = time.monotonic() + self._max_delay_s
        while True:
            for request in list(self._queue):
                if rows >= self._max_batch:
                    break
                if request.key == first.key and rows + request.rows <= self._max_batch:
                    self._queue.remove(request)
                    group.append(request)
                    rows += request.rows
            remaining = wait_until - time.monotonic()
            if rows >= self._max_batch or remaining <= 0:
                break
            self._arrival.wait(remaining)
        self._queued_rows -= rows
        for request in group:
            request.running = True
        return group

    def _run(self, group: list[_Request]) -> None:
        """Lock released: answer the group with one forward; sets outputs or errors."""
        now = time.monotonic()
        live: list[_Request] = []
        for request in group:
            if request.deadline is not None and request.deadline <= now:
                request.error = DeadlineExceeded("deadline exceeded before the query ran")
            else:
                live.append(request)
        if not live:
            return
        queries = live[0].queries if len(live) == 1 else np.concatenate([r.queries for r in live])
        if self._observe_batch is not None:
            self._observe_batch(int(queries.shape[0]))
        try:
            output = self._run_batch(live[0].key, queries)
        except Exception as error:
            for request in live:
                request.error = error
            return
        start = 0
        for request in live:
            request.output = (
                output if len(live) == 1 else slice_output(output, start, start + request.rows)
            )
            start += request.rows


def batching_pays(info: ModelInfo, config: BankConfig) -> bool:
    """Whether concurrent queries to a bank gain from running as one forward.

    A text model's forward (encoders, every hop's torch work) is shared by the batch,
    and so is a flat bank's scan (one pass over the keys for B queries). A vector
    model over an HNSW or IVF index walks each query's own graph or lists: grouping
    would save only per-call Python, which the batcher's handoffs between threads cost
    back (docs/benchmarks.md, "Server CPU per query RPC"), so those queries run at once in
    their own RPC thread.
    """
    return info.input_kind is InputKind.TEXT or config.index.kind is IndexKind.FLAT
