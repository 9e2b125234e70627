"""What gRPC Python charges around a handler: server CPU per RPC for synthetic handlers.

    .venv/bin/python bench/grpc_floor.py                 # ~2 min
    .venv/bin/python bench/grpc_floor.py --rounds 5 --duration-s 3

Three bare servers (no memnet code) answer the same synthetic handlers:

* ``sync``: ``grpc.server`` with a 32-thread pool (every handler in a worker thread);
* ``aio``: ``grpc.aio.server``, handlers run on the event loop;
* ``aio + pool``: ``grpc.aio.server``, handlers handed to a 32-thread pool.

Handlers: ``empty`` (returns at once), ``python N µs`` (holds the GIL for N µs of its
own thread's CPU) and ``flat search`` (FAISS ``IndexFlatIP`` over 20,000 x 128, one
query, k = 32: native code that releases the GIL). The client is the asyncio client of
bench/rpc_cost.py (pre-serialized requests, responses unparsed) with ``--in-flight``
RPCs in flight; server CPU is read from /proc (user + system, every thread) and
divided by the RPCs answered. The last column divides what a handler adds over
``empty`` by the handler's own CPU measured in-process, i.e. how many µs of server
CPU each µs of handler work costs on that server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SERVERS = ("sync", "aio", "aio + pool")
D, M, K = 128, 20_000, 32
WORKERS = 32


def _busy(us: float) -> None:
    t0 = time.thread_time()
    while (time.thread_time() - t0) * 1e6 < us:
        pass


def _handlers() -> dict[str, object]:
    import faiss

    rng = np.random.default_rng(0)
    index = faiss.IndexFlatIP(D)
    index.add(rng.standard_normal((M, D), dtype=np.float32))

    def search(request: bytes) -> bytes:
        index.search(np.frombuffer(request, np.float32).reshape(1, D), K)
        return b""

    return {
        "empty": lambda request: b"",
        "python 150 µs": lambda request: _busy(150) or b"",
        "python 450 µs": lambda request: _busy(450) or b"",
        "flat search": search,
    }


def _method(name: str) -> str:
    return "h" + "".join(c for c in name if c.isalnum())


def serve(kind: str) -> None:
    """Run one bare server until killed; print its port first."""
    handlers = _handlers()
    if kind == "sync":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS))
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "floor.S",
                    {
                        _method(n): grpc.unary_unary_rpc_method_handler(
                            lambda r, c, f=f: f(r)  # type: ignore[misc]
                        )
                        for n, f in handlers.items()
                    },
                )
            ]
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        print(port, flush=True)
        server.wait_for_termination()
        return

    pool = futures.ThreadPoolExecutor(max_workers=WORKERS) if kind == "aio + pool" else None

    def handler(f: object) -> grpc.RpcMethodHandler:
        async def run(request: bytes, context: object) -> bytes:
            if pool is None:
                return f(request)  # type: ignore[operator,no-any-return]
            return await asyncio.get_running_loop().run_in_executor(pool, f, request)  # type: ignore[arg-type]

        return grpc.unary_unary_rpc_method_handler(run)

    async def main() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "floor.S", {_method(n): handler(f) for n, f in handlers.items()}
                )
            ]
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(port, flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


class _Server:
    def __init__(self, kind: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.target = f"127.0.0.1:{int(self.process.stdout.readline())}"


def _handler_cpu_us(calls: int = 2000) -> dict[str, float]:
    """Each handler's own thread CPU per call, in this process."""
    out = {}
    query = np.random.default_rng(1).standard_normal(D, dtype=np.float32).tobytes()
    for name, f in _handlers().items():
        t0 = time.thread_time()
        for _ in range(calls):
            f(query)  # type: ignore[operator]
        out[name] = (time.thread_time() - t0) / calls * 1e6
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration-s", type=float, default=2.0)
    p.add_argument("--in-flight", type=int, default=8)
    a = p.parse_args()
    if a.serve:
        serve(a.serve)
        return
    import rpc_cost as rc
    import service_driver as svc
    import timing

    rng = np.random.default_rng(2)
    requests = [rng.standard_normal(D, dtype=np.float32).tobytes() for _ in range(500)]
    names = list(_handlers())
    own = _handler_cpu_us()
    servers = {kind: _Server(kind) for kind in SERVERS}
    cells: dict[tuple[str, str], list[rc.Cost]] = {}
    try:
        for server in servers.values():  # warm-up
            svc.run_service(server.target, requests, a.in_flight, 0.5, "/floor.S/hempty")
        for _ in range(a.rounds):
            for kind, server in servers.items():
                for name in names:
                    cost = rc.measure(
                        server,  # type: ignore[arg-type]
                        requests,
                        a.in_flight,
                        a.duration_s,
                        method=f"/floor.S/{_method(name)}",
                    )
                    cells.setdefault((kind, name), []).append(cost)
    finally:
        for server in servers.values():
            server.process.kill()
            server.process.wait()
    rows = []
    for kind in SERVERS:
        empty = statistics.median(c.cpu_us for c in cells[kind, "empty"])
        for name in names:
            costs = cells[kind, name]
            cpu = statistics.median(c.cpu_us for c in costs)
            per_work = "–" if name == "empty" else f"{(cpu - empty) / own[name]:.2f}"
            rows.append(
                [
                    kind,
                    name,
                    f"{own[name]:,.0f}",
                    f"{cpu:,.0f}",
                    f"{cpu / empty:.2f}",
                    f"{statistics.median(c.switches for c in costs):.1f}",
                    f"{statistics.median(c.qps for c in costs):,.0f}",
                    per_work,
                ]
            )
    print(
        timing.table(
            f"Server CPU per RPC, {a.in_flight} in flight, median of {a.rounds} rounds "
            f"(grpcio {grpc.__version__}, Python {platform.python_version()}, "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})",
            [
                "server",
                "handler",
                "handler's own CPU µs",
                "server CPU µs",
                "÷ empty",
                "switches",
                "QPS",
                "µs per µs of handler work",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
