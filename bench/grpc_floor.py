"""What gRPC Python charges around a handler: server CPU per RPC for synthetic handlers.

    .venv/bin/python bench/grpc_floor.py                 # ~3 min
    .venv/bin/python bench/grpc_floor.py --rounds 5 --duration-s 3

Three bare servers (no memnet code) answer the same synthetic handlers:

* ``sync``: ``grpc.server`` with a 32-thread pool (every handler in a worker thread);
* ``aio``: ``grpc.aio.server``, handlers run on the event loop;
* ``aio + pool``: ``grpc.aio.server``, handlers handed to a 32-thread pool.

Handlers: ``empty`` (returns at once), ``python N µs`` (holds the GIL for N µs of its
own thread's CPU), ``flat search`` (FAISS ``IndexFlatIP`` over 20,000 x 128, one
query, k = 32: native code that releases the GIL) and ``vector query floor``: the
least a vector Query can do on bench/rpc_cost.py's bank (the same 100,000 x 128
clustered keys and values, HNSW with the same settings; its queries), namely decode the
QueryRequest, one FAISS search, a float32 softmax over the 32 scores, the readout
Σ p v, and an arrays-layout QueryResponse with the 32 ids; no checks, no store, no
model. Its ratio to ``empty`` is the floor a memnet vector query cannot go below on
that server. The client is the asyncio client of
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
import tempfile
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


def _handlers(bank: Path) -> dict[str, object]:
    """The handlers, by name; ``bank`` is a directory written by ``_write_bank``."""
    import faiss

    from memnet.api.tensors import to_tensor
    from memnet.api.v1 import query_pb2

    rng = np.random.default_rng(0)
    index = faiss.IndexFlatIP(D)
    index.add(rng.standard_normal((M, D), dtype=np.float32))

    def search(request: bytes) -> bytes:
        index.search(np.frombuffer(request, np.float32).reshape(1, D), K)
        return b""

    hnsw = faiss.read_index(str(bank / "hnsw.faiss"))
    values = np.load(bank / "values.npy")  # (M, D) float32
    ids = [f"m{i}" for i in range(len(values))]

    def query_floor(request: bytes) -> bytes:
        q = query_pb2.QueryRequest.FromString(request).query_vectors
        scores, slots = hnsw.search(np.frombuffer(q.data, np.float32).reshape(1, -1), K)
        weights = np.exp(scores - scores[:, :1])  # (1, K): FAISS returns best first
        weights /= weights.sum(1, keepdims=True)
        readout = np.matmul(weights[:, None, :], values[slots])[:, 0]  # (1, D)
        arrays = query_pb2.QueryArrays(
            scores=to_tensor(scores[:, None]),
            weights=to_tensor(weights[:, None]),
            readouts=to_tensor(readout),
        )
        arrays.ids.extend([ids[s] for s in slots[0].tolist()])
        return query_pb2.QueryResponse(arrays=arrays, model="vector").SerializeToString()

    return {
        "empty": lambda request: b"",
        "python 150 µs": lambda request: _busy(150) or b"",
        "python 450 µs": lambda request: _busy(450) or b"",
        "flat search": search,
        "vector query floor": query_floor,
    }


def _write_bank(directory: Path) -> list[bytes]:
    """bench/rpc_cost.py's vector bank as a FAISS HNSW file and a values array in
    ``directory``; returns its Query requests (serialized QueryRequests)."""
    import faiss
    import rpc_cost as rc
    import service_driver as svc

    from memnet.api.v1 import query_pb2

    keys, values, queries = svc.vector_bank_data(0, rc.VECTOR_M, rc.VECTOR_D)  # rpc_cost's
    index = faiss.IndexHNSWFlat(rc.VECTOR_D, svc.HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = svc.EF_CONSTRUCTION
    index.hnsw.efSearch = svc.EF_SEARCH
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    index.add(keys)
    faiss.omp_set_num_threads(1)
    faiss.write_index(index, str(directory / "hnsw.faiss"))
    np.save(directory / "values.npy", values)
    return rc.vector_requests(queries, 1, layout=query_pb2.RESULT_LAYOUT_ARRAYS)


def _method(name: str) -> str:
    return "h" + "".join(c for c in name if c.isalnum())


def serve(kind: str, bank: Path) -> None:
    """Run one bare server until killed; print its port first."""
    handlers = _handlers(bank)
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
    def __init__(self, kind: str, bank: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--bank", str(bank)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.target = f"127.0.0.1:{int(self.process.stdout.readline())}"


def _handler_cpu_us(
    bank: Path, requests: dict[str, list[bytes]], calls: int = 2000
) -> dict[str, float]:
    """Each handler's own thread CPU per call (on its own requests), in this process."""
    out = {}
    for name, f in _handlers(bank).items():
        sent = requests[name]
        t0 = time.thread_time()
        for i in range(calls):
            f(sent[i % len(sent)])  # type: ignore[operator]
        out[name] = (time.thread_time() - t0) / calls * 1e6
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    p.add_argument("--bank", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration-s", type=float, default=2.0)
    p.add_argument("--in-flight", type=int, default=8)
    a = p.parse_args()
    if a.serve:
        serve(a.serve, a.bank)
        return
    import rpc_cost as rc
    import service_driver as svc
    import timing

    rng = np.random.default_rng(2)
    vectors = [rng.standard_normal(D, dtype=np.float32).tobytes() for _ in range(500)]
    with tempfile.TemporaryDirectory() as scratch:
        bank = Path(scratch)
        query_requests = _write_bank(bank)
        names = list(_handlers(bank))
        requests = {n: query_requests if n == "vector query floor" else vectors for n in names}
        own = _handler_cpu_us(bank, requests)
        servers = {kind: _Server(kind, bank) for kind in SERVERS}
        cells: dict[tuple[str, str], list[rc.Cost]] = {}
        try:
            for server in servers.values():  # warm-up
                for name in names:
                    method = f"/floor.S/{_method(name)}"
                    svc.run_service(server.target, requests[name], a.in_flight, 0.5, method)
            for _ in range(a.rounds):
                for kind, server in servers.items():
                    for name in names:
                        cost = rc.measure(
                            server,  # type: ignore[arg-type]
                            requests[name],
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
