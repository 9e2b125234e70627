"""Server CPU per RPC: the query path against the empty RPC, this checkout against a baseline.

    .venv/bin/python bench/rpc_cost.py --baseline ../base/.venv/bin/python     # ~15 min loaded
    .venv/bin/python bench/rpc_cost.py --baseline ... --parts vector --rounds 3

``--baseline`` names the interpreter of another checkout (its ``memnet`` command serves
the baseline); without it only this checkout is measured. Both servers run at the
same time on copies of the same data and are measured in alternating order, round by
round, so every ratio compares runs a few seconds apart on the same (shared, noisy)
machine. Server CPU is read from ``/proc/PID/stat`` (user + system time of the whole
server process) before and after each measurement, divided by the RPCs answered;
context switches are summed over ``/proc/PID/task/*/status``. The client is an
asyncio gRPC client in this process sending pre-serialized requests and leaving
responses unparsed (bench/bench_service.py).

Parts:

* ``vector``: a 100k x 128 clustered HNSW bank (M 32, efConstruction 40, efSearch 64)
  of the ``vector`` model, ``--in-flight`` RPCs in flight: the empty RPC (a
  ``grpc.health.v1`` Check, the cheapest RPC this server answers), one query vector
  per ``Query`` (k = 32, 1 hop) in the memories layout, the arrays layout and with
  ``include_vectors``, and 32 queries per ``Query`` in the arrays layout (CPU per query).
* ``text``: the shipped text model over a flat bank of 2,000 bAbI sentences, one
  question per RPC (k = 32, all hops), at 1, 8 and 32 in flight, batching on and off:
  CPU per query and queries per second (the batching gain is on / off QPS).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import datasets
import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import service_driver as svc
import timing

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, bank_pb2_grpc, memory_pb2, memory_pb2_grpc, query_pb2

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
VECTOR_M, VECTOR_D, K = 100_000, 128, 32
TEXT_LEVELS = (1, 8, 32)


@dataclass(frozen=True)
class Cost:
    """One measurement: server CPU and context switches per RPC, and RPCs per second."""

    cpu_us: float  # per RPC (per query for multi-query RPCs)
    switches: float  # context switches per RPC
    qps: float  # queries per second


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches summed over the threads of ``pid``."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:  # voluntary_… and nonvoluntary_…
                    total += int(line.split()[1])
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return total


async def _drive(
    target: str, requests: list[bytes], in_flight: int, duration_s: float, method: str
) -> tuple[int, float]:
    """``in_flight`` callers cycling through ``requests`` for ``duration_s``: (RPCs, seconds)."""
    options = [("grpc.max_receive_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary(method)  # bytes in, bytes out: no client-side parsing
        done = 0
        stop_at = time.perf_counter() + duration_s

        async def loop(worker: int) -> None:
            nonlocal done
            i = worker
            while time.perf_counter() < stop_at:
                await call(requests[i % len(requests)], timeout=30)
                done += 1
                i += in_flight

        t0 = time.perf_counter()
        await asyncio.gather(*(loop(w) for w in range(in_flight)))
        return done, time.perf_counter() - t0


def measure(
    server: svc.ServerProcess,
    requests: list[bytes],
    in_flight: int,
    duration_s: float,
    *,
    method: str = svc.QUERY_METHOD,
    queries_per_rpc: int = 1,
) -> Cost:
    pid = server.process.pid
    c0, s0 = cpu_s(pid), context_switches(pid)
    rpcs, elapsed_s = asyncio.run(_drive(server.target, requests, in_flight, duration_s, method))
    c1, s1 = cpu_s(pid), context_switches(pid)
    queries = rpcs * queries_per_rpc
    return Cost(
        cpu_us=(c1 - c0) / queries * 1e6, switches=(s1 - s0) / rpcs, qps=queries / elapsed_s
    )


@dataclass
class Side:
    """One checkout's server(s): label, interpreter, and servers by batching setting."""

    label: str
    python: Path
    servers: dict[bool, svc.ServerProcess]


def start_sides(
    sides: list[tuple[str, Path]], data_dir: Path, root: Path, *, batching: tuple[bool, ...]
) -> list[Side]:
    """A server per side and batching setting, each on its own copy of ``data_dir``."""
    out = []
    for label, python in sides:
        servers = {}
        for on in batching:
            copy = root / f"{data_dir.name}-{label}-{'on' if on else 'off'}"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(data_dir, copy)
            servers[on] = svc.ServerProcess(copy, batching=on, python=python)
        out.append(Side(label, python, servers))
    return out


def stop_sides(sides: list[Side]) -> None:
    for side in sides:
        for server in side.servers.values():
            server.stop()


def build_data(root: Path, name: str, fill: Callable[[str], None]) -> Path:
    """A data directory filled through this checkout's server, closed (snapshotted)."""
    data_dir = root / name
    shutil.rmtree(data_dir, ignore_errors=True)
    server = svc.ServerProcess(data_dir, batching=True)
    try:
        fill(server.target)
    finally:
        server.stop()
    return data_dir


Cells = dict[tuple[str, str], list[Cost]]  # (side, row) -> one Cost per round


def rounds(
    sides: list[Side],
    rows: dict[str, Callable[[Side], Cost]],
    n_rounds: int,
) -> Cells:
    """Every row on every side, ``n_rounds`` times, the sides' order alternating."""
    cells: Cells = {}
    for r in range(n_rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for side in order:
            for row, run in rows.items():
                cells.setdefault((side.label, row), []).append(run(side))
        print(f"round {r + 1}/{n_rounds} done; load average {os.getloadavg()[0]:.1f}", flush=True)
    return cells


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    """median [min–max]"""
    middle, low, high = (
        fmt.format(x) for x in (statistics.median(values), min(values), max(values))
    )
    return f"{middle} [{low}–{high}]"


def vector_requests(queries: np.ndarray, b: int, **fields: object) -> list[bytes]:
    """Serialized QueryRequests to the vector bank ("bench"): ``b`` of the (Q, D)
    ``queries`` each, k = K, 1 hop, plus ``fields``."""
    return [
        query_pb2.QueryRequest(
            bank="bench",
            query_vectors=to_tensor(queries[i : i + b]),
            k=K,
            hops=1,
            **fields,  # type: ignore[arg-type]
        ).SerializeToString()
        for i in range(0, len(queries) - b + 1, b)
    ]


def vector_part(sides_spec: list[tuple[str, Path]], args: argparse.Namespace, root: Path) -> str:
    keys, values, queries = svc.vector_bank_data(args.seed, VECTOR_M, VECTOR_D)
    data_dir = build_data(root, "vector", partial(_load, keys=keys, values=values))
    del keys, values
    arrays_layout = query_pb2.RESULT_LAYOUT_ARRAYS
    memories = vector_requests(queries, 1)
    arrays = vector_requests(queries, 1, layout=arrays_layout)
    with_vectors = vector_requests(queries, 1, include_vectors=True)
    batch_arrays = vector_requests(queries, 32, layout=arrays_layout)
    c, t = args.in_flight, args.duration_s

    def on(side: Side) -> svc.ServerProcess:
        return side.servers[True]

    rows: dict[str, Callable[[Side], Cost]] = {
        "empty RPC (health Check)": lambda s: measure(on(s), [b""], c, t, method=svc.NOOP_METHOD),
        "1 query, memories layout": lambda s: measure(on(s), memories, c, t),
        "1 query, arrays layout": lambda s: measure(on(s), arrays, c, t),
        "1 query, memories + include_vectors": lambda s: measure(on(s), with_vectors, c, t),
        "1 query, arrays layout, batching off": lambda s: measure(s.servers[False], arrays, c, t),
        "32 queries per RPC, arrays (per query)": lambda s: measure(
            on(s), batch_arrays, c, t, queries_per_rpc=32
        ),
    }
    sides = start_sides(sides_spec, data_dir, root, batching=(True, False))
    try:
        for side in sides:  # warm-up
            svc.run_service(on(side).target, memories, c, 1.0)
        cells = rounds(sides, rows, args.rounds)
    finally:
        stop_sides(sides)
    return render(
        f"Vector queries, {VECTOR_M:,} x {VECTOR_D} HNSW, k = {K}, 1 hop, {c} RPCs in flight",
        sides,
        rows,
        cells,
        empty="empty RPC (health Check)",
    )


def _load(target: str, *, keys: np.ndarray, values: np.ndarray) -> None:
    svc.load_bank(target, keys, values)


def render(
    title: str, sides: list[Side], rows: dict[str, object], cells: Cells, *, empty: str | None
) -> str:
    header = ["RPC"]
    for side in sides:
        header += [f"{side.label}: server CPU µs", "÷ empty RPC", "switches", "QPS"]
    if len(sides) == 2:
        header.append(f"CPU {sides[1].label} ÷ {sides[0].label}")
    out_rows = []
    for row in rows:
        line = [row]
        for side in sides:
            costs = cells[side.label, row]
            line.append(spread([x.cpu_us for x in costs]))
            if empty is not None and row != empty:
                base = cells[side.label, empty]
                ratios = [x.cpu_us / e.cpu_us for x, e in zip(costs, base, strict=True)]
                line.append(spread(ratios, "{:.2f}"))
            else:
                line.append("–")
            line.append(f"{statistics.median(x.switches for x in costs):.1f}")
            line.append(spread([x.qps for x in costs]))
        if len(sides) == 2:
            a, b = cells[sides[0].label, row], cells[sides[1].label, row]
            line.append(spread([y.cpu_us / x.cpu_us for x, y in zip(a, b, strict=True)], "{:.2f}"))
        out_rows.append(line)
    return timing.table(title + " (median [min–max] over rounds)", header, out_rows)


def text_part(sides_spec: list[tuple[str, Path]], args: argparse.Namespace, root: Path) -> str:
    sentences, questions = datasets.babi_qa1()

    def fill(target: str) -> None:
        with grpc.insecure_channel(target) as channel:
            spec = bank_pb2.BankSpec(name="story")
            bank_pb2_grpc.BankServiceStub(channel).CreateBank(bank_pb2.CreateBankRequest(spec=spec))
            batch = memory_pb2.MemoryBatch(
                memories=[memory_pb2.MemoryInput(text=t) for t in sentences[:2000]]
            )
            memory_pb2_grpc.MemoryServiceStub(channel).WriteMemories(
                memory_pb2.WriteMemoriesRequest(bank="story", batch=batch)
            )

    data_dir = build_data(root, "text", fill)
    requests = [
        query_pb2.QueryRequest(bank="story", questions=[q], k=K).SerializeToString()
        for q in questions[:2000]
    ]
    t = args.duration_s
    rows: dict[str, Callable[[Side], Cost]] = {}
    for c in TEXT_LEVELS:
        for batching in (True, False):
            name = f"{c} in flight, batching {'on' if batching else 'off'}"
            rows[name] = lambda s, c=c, b=batching: measure(s.servers[b], requests, c, t)
    sides = start_sides(sides_spec, data_dir, root, batching=(True, False))
    try:
        for side in sides:
            for server in side.servers.values():
                svc.run_service(server.target, requests, 8, 1.0)  # warm-up
        cells = rounds(sides, rows, args.rounds)
    finally:
        stop_sides(sides)
    table = render(
        f"Text queries, the default model, flat bank of 2,000 sentences, k = {K}, all hops",
        sides,
        rows,
        cells,
        empty=None,
    )
    gains = []
    for c in TEXT_LEVELS:
        line = [str(c)]
        for side in sides:
            on = cells[side.label, f"{c} in flight, batching on"]
            off = cells[side.label, f"{c} in flight, batching off"]
            line.append(spread([a.qps / b.qps for a, b in zip(on, off, strict=True)], "{:.2f}"))
        gains.append(line)
    return (
        table
        + "\n"
        + timing.table(
            "Batching gain: QPS with batching on ÷ off, same round",
            ["in flight", *(side.label for side in sides)],
            gains,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, default=None, help="the baseline's python")
    parser.add_argument("--parts", default="vector,text", help="vector, text (comma-separated)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; sides alternate order")
    parser.add_argument("--duration-s", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--in-flight", type=int, default=8, help="RPCs in flight (vector part)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sides: list[tuple[str, Path]] = []
    if args.baseline is not None:
        sides.append(("baseline", args.baseline))
    sides.append(("this checkout", Path(sys.executable)))
    revisions = {label: _revision(python) for label, python in sides}
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, grpcio {grpc.__version__}, "
        f"python {platform.python_version()};"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{args.duration_s:.0f} s per cell, {args.rounds} rounds; load average "
        f"{os.getloadavg()[0]:.1f}; revisions {revisions}",
        flush=True,
    )
    root = Path(tempfile.mkdtemp(prefix="bench-rpc-cost-"))
    try:
        for part in args.parts.split(","):
            print(
                vector_part(sides, args, root)
                if part == "vector"
                else text_part(sides, args, root),
                flush=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


def _revision(python: Path) -> str:
    """The git commit of the checkout whose venv holds ``python`` (and "+dirty")."""
    checkout = python.parent.parent.parent  # CHECKOUT/.venv/bin/python (not resolved)
    rev = timing.git(checkout, "rev-parse", "--short", "HEAD")
    dirty = timing.git(checkout, "status", "--porcelain", "--untracked-files=no")
    if rev is None or dirty is None:
        return "unknown"
    return rev + ("+dirty" if dirty else "")


if __name__ == "__main__":
    main()
