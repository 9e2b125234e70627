"""Where a vector query's server CPU goes, in-process, without gRPC: one part at a time.

    .venv/bin/python bench/query_parts.py                  # 100k x 128 HNSW (~1 min)
    /path/to/other/.venv/bin/python bench/query_parts.py   # another checkout, same data

A 100k x 128 clustered HNSW bank (M 32, efConstruction 40, efSearch 64) of the
``vector`` model, built in a temporary directory with the same seed as
bench/rpc_cost.py. Each part runs ``--calls`` times on one thread over 2,000 queries
(k = 32, 1 hop); the table gives the thread CPU per call in µs (user + system,
``time.thread_time``), median of ``--rounds`` rounds. Each row includes the rows above
it that it calls, so the differences are the cost of one layer:

* FAISS ``index.search``: the bank's own index object, one query;
* ``Bank.search``: the store (validation, read lock, exact scores, value gather);
* ``Engine.query``: bank and model lookup, the vector model's softmax and readout
  (batching off, so that the work stays on the timed thread);
* the servicer's ``Query`` on a parsed request (decode, engine, response messages), in
  the memories layout and the arrays layout; plus parsing the request bytes and
  serializing the response (what gRPC's handler does around it).

The gRPC transport itself (HTTP/2, the thread pool, GIL handoffs) is what
bench/rpc_cost.py's empty RPC measures.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import service_driver as svc
import timing

from memnet.api.tensors import to_tensor
from memnet.api.v1 import query_pb2
from memnet.core.search_options import SearchOptions
from memnet.store import (
    BankConfig,
    FsyncPolicy,
    IndexSpec,
    MemoryBatch,
    MemoryStore,
    Metric,
    StoreSettings,
)
from memnet_server.app import load_models
from memnet_server.config import ServerSettings
from memnet_server.engine import Engine
from memnet_server.servicers.query import QueryServicer

M, D, K = 100_000, 128, 32


class _Context:
    """The one ``grpc.ServicerContext`` method the query servicer reads."""

    def time_remaining(self) -> float | None:
        return None


def cpu_per_call_us(run: Callable[[int], object], calls: int) -> float:
    t0 = time.thread_time()
    for i in range(calls):
        run(i)
    return (time.thread_time() - t0) / calls * 1e6


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--calls", type=int, default=4000, help="calls per part and round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    keys, values, queries = svc.vector_bank_data(a.seed, M, D)
    root = Path(tempfile.mkdtemp(prefix="bench-query-parts-"))
    # No batcher: every part runs on the calling thread, whose CPU time is what is read.
    settings = ServerSettings(data_dir=root, batching_enabled=False)
    store = MemoryStore(root, StoreSettings(fsync=FsyncPolicy.NONE))
    index = IndexSpec(
        kind="hnsw", hnsw_m=svc.HNSW_M, ef_construction=svc.EF_CONSTRUCTION, ef_search=svc.EF_SEARCH
    )
    bank = store.create_bank(
        BankConfig(
            name="bench",
            model="vector",
            key_dim=D,
            value_dim=D,
            metric=Metric.INNER_PRODUCT,
            index=index,
        )
    )
    t0 = time.perf_counter()
    for lo in range(0, M, 10_000):
        bank.write(MemoryBatch(keys=keys[lo : lo + 10_000], values=values[lo : lo + 10_000]))
    print(f"built {M:,} x {D} HNSW in {time.perf_counter() - t0:.0f} s", flush=True)
    engine = Engine(store, load_models(settings), settings)
    servicer = QueryServicer(engine)
    faiss_index = bank._state.index  # the bank's own index object
    options = SearchOptions(k=K, hops=1)
    q1 = [queries[i : i + 1] for i in range(len(queries))]
    requests = [
        query_pb2.QueryRequest(bank="bench", query_vectors=to_tensor(q), k=K, hops=1) for q in q1
    ]
    arrays = [
        query_pb2.QueryRequest(
            bank="bench", query_vectors=to_tensor(q), k=K, hops=1,
            layout=query_pb2.RESULT_LAYOUT_ARRAYS,
        )
        for q in q1
    ]  # fmt: skip
    wire = [r.SerializeToString() for r in requests]
    n = len(q1)
    ctx = _Context()

    def whole_rpc(i: int) -> bytes:
        request = query_pb2.QueryRequest.FromString(wire[i % n])
        return servicer.Query(request, ctx).SerializeToString()  # type: ignore[arg-type]

    parts: dict[str, Callable[[int], object]] = {
        "FAISS index.search": lambda i: faiss_index.search(q1[i % n], K),
        "Bank.search (with values)": lambda i: bank.search(q1[i % n], options, with_vectors=True),
        "Engine.query": lambda i: engine.query(
            "bench",
            options,
            questions=None,
            vectors=q1[i % n],
            deadline=None,
            include_contents=True,
        ),
        "servicer Query, memories layout": lambda i: servicer.Query(requests[i % n], ctx),  # type: ignore[arg-type]
        "servicer Query, arrays layout": lambda i: servicer.Query(arrays[i % n], ctx),  # type: ignore[arg-type]
        "+ parse request, serialize response (memories)": whole_rpc,
    }
    for run in parts.values():  # warm-up
        cpu_per_call_us(run, 200)
    cells: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(a.rounds):
        for name, run in parts.items():
            cells[name].append(cpu_per_call_us(run, a.calls))
    rows = [
        [name, f"{statistics.median(v):.1f}", f"{min(v):.1f}–{max(v):.1f}"]
        for name, v in cells.items()
    ]
    print(
        timing.table(
            f"Thread CPU per call, one query, k = {K}, 1 hop, {M:,} x {D} HNSW "
            f"({platform.python_version()}, {a.rounds} rounds of {a.calls:,} calls)",
            ["part", "µs (median)", "range"],
            rows,
        )
    )
    store.close()


if __name__ == "__main__":
    main()
