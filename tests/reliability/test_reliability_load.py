"""Load: 90 % queries / 10 % writes at 80 % of the measured maximum rate, bounded in time.

The server runs as ``memnet serve`` (so its resident memory is its own). First 4
concurrent callers measure the maximum rate of the mix (as fast as they can, 3 s);
then the same callers, paced to 80 % of that rate, run a 2 s warm-up and a 10 s load
phase (long: 10 s probe, 10 s warm-up, 120 s). Pass: no errors, p99 latency within
10x p50, at least 90 % of the target rate kept, and resident memory growth of at most
5 % after the warm-up.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from reliability_support import (
    Stubs,
    keys_for,
    percentile_ms,
    record_figures,
    scale_s,
    serve_process,
    vector_bank_request,
    write_request,
)

from memnet.api.tensors import to_tensor
from memnet.api.v1 import query_pb2

DIM = 32
BANK = "load"
PRELOAD = 2000
K = 8
WRITE_SHARE = 0.10
LOAD_SHARE = 0.80
# Four callers reach the same maximum rate as eight on 2 cores (1,360-1,550 vs 1,360-1,630
# calls/s measured); more callers only add their own backlog to the tail: with 8, any
# short slowdown of the shared machine queues 8 calls and p99 sat at 7-10x p50.
CALLERS = 4
ATTEMPTS = 2  # load phases; the latency and rate criteria must hold in one of them
PROBE_S = scale_s(3.0, 10.0)
WARMUP_S = scale_s(2.0, 10.0)
LOAD_S = scale_s(10.0, 120.0)
CONTROL_S = scale_s(5.0, 20.0)
TIMEOUT_S = 10.0
SEED = 3


@dataclass
class Mix:
    """Pre-built requests: 90 % vector queries, 10 % single-memory upserts that replace
    preloaded memories, so the bank keeps its size and resident memory should stay flat."""

    stubs: Stubs
    rng: random.Random
    queries: list[query_pb2.QueryRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    writes: int = 0
    control: bool = False  # health checks instead of the mix: the machine's own tail
    health: health_pb2_grpc.HealthStub = field(init=False)

    def __post_init__(self) -> None:
        self.health = health_pb2_grpc.HealthStub(self.stubs.channel)
        rows = keys_for([f"q{i}" for i in range(64)], DIM)
        self.queries = [
            query_pb2.QueryRequest(bank=BANK, query_vectors=to_tensor(rows[i : i + 1]), k=K)
            for i in range(len(rows))
        ]

    def next_call(self) -> tuple[str, Callable[[], object]]:
        """("query" | "write", a blocking call)."""
        if self.control:
            return "query", lambda: self.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        with self.lock:
            is_write = self.rng.random() < WRITE_SHARE
            query = self.rng.choice(self.queries)
            self.writes += is_write
            number = self.writes
        if is_write:
            ids = [f"pre{number % PRELOAD}"]  # an upsert: the bank does not grow
            request = write_request(BANK, keys_for(ids, DIM), ids)
            return "write", lambda: self.stubs.memories.WriteMemories(request, timeout=TIMEOUT_S)
        return "query", lambda: self.stubs.queries.Query(query, timeout=TIMEOUT_S)


@dataclass
class Run:
    """What CALLERS paced callers measured over one phase."""

    sent: int = 0
    duration_s: float = 0.0
    latencies_s: dict[str, list[float]] = field(default_factory=lambda: {"query": [], "write": []})
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.duration_s

    def all_latencies(self) -> list[float]:
        return self.latencies_s["query"] + self.latencies_s["write"]


def run_phase(mix: Mix, duration_s: float, rate: float | None) -> Run:
    """CALLERS callers make calls for ``duration_s``: as fast as they can (``rate`` None) or
    paced so that together they start one call every 1/rate s. A caller waits for its call
    before taking the next ticket, so a slow server lowers the achieved rate instead of
    piling up calls (the achieved rate is checked against the target)."""
    run = Run()
    lock = threading.Lock()
    tickets = iter(range(1 << 62))
    start = time.perf_counter()
    end = start + duration_s

    def caller() -> None:
        while True:
            with lock:
                ticket = next(tickets)
            due = start + ticket / rate if rate else time.perf_counter()
            if due >= end:
                return
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            kind, call = mix.next_call()
            began = time.perf_counter()
            try:
                call()
            except grpc.RpcError as error:
                with lock:
                    run.errors.append(f"{kind}: {error.code()} {error.details()}")
                continue
            latency = time.perf_counter() - began
            with lock:
                run.sent += 1
                run.latencies_s[kind].append(latency)

    threads = [threading.Thread(target=caller, name=f"load-{i}") for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration_s + 2 * TIMEOUT_S)
    run.duration_s = time.perf_counter() - start
    return run


def _preload(stubs: Stubs) -> None:
    stubs.banks.CreateBank(vector_bank_request(BANK, DIM))
    ids = [f"pre{i}" for i in range(PRELOAD)]
    stubs.memories.WriteMemories(write_request(BANK, keys_for(ids, DIM), ids), timeout=60)


def _judge(load: Run, target: float) -> str:
    """ "" if the phase kept the rate and the tail, else what it missed."""
    p50 = percentile_ms(load.all_latencies(), 50)
    p99 = percentile_ms(load.all_latencies(), 99)
    if load.rate < 0.9 * target:
        return f"the load kept {load.rate:.0f} of {target:.0f} calls/s"
    if p99 > 10 * p50:
        return f"p99 {p99:.2f} ms is more than 10x p50 {p50:.2f} ms"
    return ""


def _figures(load: Run) -> dict[str, float]:
    figures = {
        "achieved_qps": round(load.rate, 1),
        "calls": load.sent,
        "writes": len(load.latencies_s["write"]),
        "p50_ms": round(percentile_ms(load.all_latencies(), 50), 2),
        "p99_ms": round(percentile_ms(load.all_latencies(), 99), 2),
    }
    for kind in ("query", "write"):
        for q in (50, 99):
            figures[f"{kind}_p{q}_ms"] = round(percentile_ms(load.latencies_s[kind], q), 2)
    figures["p99_over_p50"] = round(figures["p99_ms"] / figures["p50_ms"], 2)
    return figures


def test_mixed_load_at_80_percent_of_max_holds_latency_memory_and_errors(
    tmp_path: Path,
) -> None:
    """The server shares 2 cores with the client (and, on a shared machine, with other
    jobs), so a burst of foreign load can stretch one phase's tail; the rate and tail
    criteria must hold in one of ATTEMPTS phases. A regression of the server (a stall
    on every write, a lock held too long) fails every phase. Errors and memory growth
    count over all phases. A control phase of health checks at the same rate (not
    judged) shows the tail that the machine itself adds to the most trivial RPC."""
    phases: list[Run] = []
    verdicts: list[str] = []
    with serve_process(tmp_path / "data", tmp_path / "server.log") as server:
        server.start()
        with grpc.insecure_channel(server.target) as channel:
            stubs = Stubs(channel)
            _preload(stubs)
            mix = Mix(stubs, random.Random(SEED))
            probe = run_phase(mix, PROBE_S, None)
            target = LOAD_SHARE * probe.rate
            warm = run_phase(mix, WARMUP_S, target)
            rss_warm = server.rss_kib()
            for _ in range(ATTEMPTS):
                phases.append(run_phase(mix, LOAD_S, target))
                verdicts.append(_judge(phases[-1], target))
                if not verdicts[-1]:
                    break
            rss_end = server.rss_kib()
            control = run_phase(Mix(stubs, random.Random(SEED), control=True), CONTROL_S, target)
        assert server.process is not None and server.process.poll() is None, "the server died"
    errors = probe.errors + warm.errors + [e for phase in phases for e in phase.errors]
    growth = (rss_end - rss_warm) / rss_warm
    record_figures(
        "load",
        max_qps=round(probe.rate, 1),
        target_qps=round(target, 1),
        load_s=LOAD_S,
        errors=len(errors),
        phases=[
            {**_figures(phase), "missed": verdict}
            for phase, verdict in zip(phases, verdicts, strict=True)
        ],
        control_health_check={
            "p50_ms": round(percentile_ms(control.all_latencies(), 50), 2),
            "p99_ms": round(percentile_ms(control.all_latencies(), 99), 2),
            "achieved_qps": round(control.rate, 1),
        },
        rss_after_warmup_mib=round(rss_warm / 1024, 1),
        rss_end_mib=round(rss_end / 1024, 1),
        rss_growth_pct=round(100 * growth, 2),
    )
    assert not errors, errors[:5]
    assert "" in verdicts, f"no load phase met the criteria: {verdicts}"
    assert growth <= 0.05, f"resident memory grew {100 * growth:.1f} % after warm-up"
