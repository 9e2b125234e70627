"""Benchmark of the memnet gRPC service against raw FAISS on the same data, in one run.

    python bench/bench_service.py                          # 100k and 1M memories (~20 min)
    python bench/bench_service.py --sizes 100000           # the 100k run only (~2 min)
    python bench/bench_service.py --sizes 100000 --stores faiss,milvus   # + the milvus store

For each bank size M: clustered keys (M, 128) are searched (a) in-process with a raw
FAISS ``IndexHNSWFlat`` (M=32, efConstruction 40, efSearch 64) and (b) through
``memnet serve`` in a separate process — vector queries, k=32, 1 hop, an HNSW bank
with the same parameters, dynamic batching on and then off — from an asyncio gRPC
client keeping 1, 8 or 32 queries in flight. The service does more per query than
raw FAISS: exact float32 re-scoring of the candidates, the gather of their values,
the softmax readout, and 32 attended memories in every response. Client-batched rows
send 32 queries per RPC in both response layouts: one message per attended memory
(with its text) and RESULT_LAYOUT_ARRAYS (packed ids, scores, weights). The same client also
times the server's cheapest RPC (a gRPC health check) at each concurrency: no handler
can answer faster than that, so "no-op / raw QPS" bounds "batched / raw QPS".

With ``--stores faiss,milvus`` the same bank and queries also go through
``memnet serve --store milvus`` in front of a Milvus Lite server
(bench/bench_service_milvus.py): a functional stand-in, slow by design.

A last table runs the default text model (babi-joint, 3 hops) over a bank of
bAbI sentences with batching on and off: there the model forward is the cost
that batching shares.

Prints markdown tables: load throughput, then p50/p99 latency and QPS per
concurrency. The machine is shared, so every cell is measured ``--repeats``
times (batching on/off in ABBA order) and the run with the best QPS is kept.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import datasets
import faiss
import grpc
import numpy as np
from service_driver import (
    EF_CONSTRUCTION,
    EF_SEARCH,
    HNSW_M,
    NOOP_METHOD,
    SERVER_ENV,
    ServerProcess,
    Stats,
    best_of,
    clustered,
    load_bank,
    query_requests,
    run_service,
    summarize,
)

from memnet.api.tensors import to_tensor
from memnet.api.v1 import (
    bank_pb2,
    bank_pb2_grpc,
    memory_pb2,
    memory_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    query_pb2,
)


def run_raw(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    workers: int,
    duration_s: float,
    *,
    batch: int = 1,
) -> Stats:
    """``workers`` threads, each searching ``batch`` queries per ``index.search`` call
    (faiss releases the GIL); latencies are per call, QPS counts queries."""
    starts = list(range(0, len(queries) - batch + 1, batch))
    latencies: list[list[float]] = [[] for _ in range(workers)]
    stop_at = time.perf_counter() + duration_s

    def loop(worker: int) -> None:
        i = worker
        own = latencies[worker]
        while time.perf_counter() < stop_at:
            lo = starts[i % len(starts)]
            t0 = time.perf_counter()
            index.search(queries[lo : lo + batch], k)  # (batch, D)
            own.append(time.perf_counter() - t0)
            i += workers

    threads = [threading.Thread(target=loop, args=(w,)) for w in range(workers)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = summarize([x for own in latencies for x in own], time.perf_counter() - t0)
    return Stats(p50_ms=stats.p50_ms, p99_ms=stats.p99_ms, qps=stats.qps * batch)


def measure_noop(
    server: ServerProcess, levels: list[int], args: argparse.Namespace
) -> dict[int, Stats]:
    """Health checks at every concurrency, best of ``args.repeats``: the server's RPC ceiling."""
    request = [b""]  # an empty HealthCheckRequest: the whole server
    return {
        c: best_of(
            args.repeats,
            lambda c=c: run_service(server.target, request, c, args.duration_s, NOOP_METHOD),
        )
        for c in levels
    }


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()


def measure_abba(
    server: ServerProcess,
    data_dir: Path,
    requests: list[bytes],
    levels: list[int],
    args: argparse.Namespace,
) -> dict[tuple[bool, int], Stats]:
    """Batching on/off at every concurrency, in ABBA order over ``args.repeats`` rounds
    (restarting the server to switch), keeping each cell's best QPS: the machine is
    shared, and the best of several runs is the least disturbed one."""
    best: dict[tuple[bool, int], Stats] = {}
    batching = True
    for round_number in range(args.repeats):
        order = (True, False) if round_number % 2 == 0 else (False, True)
        for wanted in order:
            if wanted != batching:
                server.stop()
                server = ServerProcess(data_dir, batching=wanted)
                batching = wanted
            run_service(server.target, requests, 1, 1.0)  # warm-up
            for c in levels:
                stats = run_service(server.target, requests, c, args.duration_s)
                if (wanted, c) not in best or stats.qps > best[wanted, c].qps:
                    best[wanted, c] = stats
    server.stop()
    return best


def measure_rpc_batches(
    server: ServerProcess, queries: np.ndarray, args: argparse.Namespace
) -> dict[tuple[str, int], Stats]:
    """``args.rpc_batch`` queries per RPC at 1 and 8 RPCs in flight, in each response
    layout (per-memory messages, packed arrays); QPS counts queries."""
    b = args.rpc_batch
    out = {}
    for name, layout in LAYOUTS.items():
        requests = [
            query_pb2.QueryRequest(
                bank="bench",
                query_vectors=to_tensor(queries[i : i + b]),
                k=args.k,
                hops=1,
                layout=layout,
            ).SerializeToString()
            for i in range(0, len(queries) - b + 1, b)
        ]
        for c in RPC_BATCH_LEVELS:
            stats = best_of(
                args.repeats,
                lambda c=c, requests=requests: run_service(
                    server.target, requests, c, args.duration_s
                ),
            )
            out[name, c] = Stats(p50_ms=stats.p50_ms, p99_ms=stats.p99_ms, qps=stats.qps * b)
    return out


LAYOUTS = {"memories": query_pb2.RESULT_LAYOUT_MEMORIES, "arrays": query_pb2.RESULT_LAYOUT_ARRAYS}
RPC_BATCH_LEVELS = (1, 8)  # RPCs in flight for the client-batched rows


def bench_vectors(
    n: int, args: argparse.Namespace, levels: list[int], root: Path
) -> tuple[list[str], list[list[str]], list[list[str]], list[list[str]]]:
    """One bank size: raw FAISS, then the service with batching on and off (and, with
    ``--stores ...,milvus``, the service on the milvus store).

    Returns the load row, the single-query rows, the client-batched rows and the
    milvus store rows.
    """
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((max(64, n // 250), args.d), dtype=np.float32)
    keys = clustered(rng, n, args.d, centres)  # (M, D)
    values = rng.standard_normal((n, args.d), dtype=np.float32)  # (M, D)
    queries = clustered(rng, args.queries, args.d, centres)  # (Q, D)
    label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"

    raw = faiss.IndexHNSWFlat(args.d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    raw.hnsw.efConstruction = EF_CONSTRUCTION
    t0 = time.perf_counter()
    raw.add(keys)
    raw_add_per_s = n / (time.perf_counter() - t0)
    raw.hnsw.efSearch = EF_SEARCH
    b = args.rpc_batch
    raw_stats = {
        c: best_of(
            args.repeats, lambda c=c, index=raw: run_raw(index, queries, args.k, c, args.duration_s)
        )
        for c in sorted({*levels, *RPC_BATCH_LEVELS})
    }
    raw_batches = (
        {
            c: best_of(
                args.repeats,
                lambda c=c, index=raw: run_raw(index, queries, args.k, c, args.duration_s, batch=b),
            )
            for c in RPC_BATCH_LEVELS
        }
        if b > 1
        else {}
    )
    del raw

    data_dir = root / label
    shutil.rmtree(data_dir, ignore_errors=True)
    server = ServerProcess(data_dir, batching=True)
    load_per_s = load_bank(server.target, keys, values)
    milvus = None
    if "milvus" in args.stores:
        from bench_service_milvus import measure_milvus

        milvus = measure_milvus(
            keys, values, queries, levels=levels, args=args, root=root / f"{label}-milvus"
        )
    del keys, values
    noop = measure_noop(server, levels, args)
    rpc_batches = measure_rpc_batches(server, queries, args) if b > 1 else {}
    service = measure_abba(server, data_dir, query_requests(queries, args.k), levels, args)
    shutil.rmtree(data_dir, ignore_errors=True)
    print(f"\n{label} done; load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for c in levels:
        r, on, off = raw_stats[c], service[True, c], service[False, c]
        rows.append(
            [
                label,
                str(c),
                f"{r.p50_ms:.2f} / {r.p99_ms:.2f}",
                f"{r.qps:,.0f}",
                f"{on.p50_ms:.2f} / {on.p99_ms:.2f}",
                f"{on.qps:,.0f}",
                f"{off.p50_ms:.2f} / {off.p99_ms:.2f}",
                f"{off.qps:,.0f}",
                f"{on.qps / r.qps:.2f}",
                f"{noop[c].qps:,.0f}",
                f"{noop[c].qps / r.qps:.2f}",
            ]
        )
    batch_rows = []
    for c in RPC_BATCH_LEVELS if rpc_batches else ():
        single, batched = raw_stats[c], raw_batches[c]
        listed, packed = rpc_batches["memories", c], rpc_batches["arrays", c]
        batch_rows.append(
            [
                label,
                str(c),
                f"{single.qps:,.0f}",
                f"{batched.p50_ms:.2f} / {batched.p99_ms:.2f}",
                f"{batched.qps:,.0f}",
                f"{listed.p50_ms:.2f} / {listed.p99_ms:.2f}",
                f"{listed.qps:,.0f}",
                f"{packed.p50_ms:.2f} / {packed.p99_ms:.2f}",
                f"{packed.qps:,.0f}",
                f"{packed.qps / single.qps:.2f}",
                f"{packed.qps / batched.qps:.2f}",
            ]
        )
    milvus_rows_: list[list[str]] = []
    load_row = [label, f"{raw_add_per_s:,.0f}", f"{load_per_s:,.0f}"]
    if milvus is not None:
        from bench_service_milvus import milvus_rows

        milvus_rows_ = milvus_rows(label, {c: service[True, c] for c in levels}, milvus)
        load_row.append(f"{milvus.load_per_s:,.0f}")
    return load_row, rows, batch_rows, milvus_rows_


def bench_text(
    args: argparse.Namespace, levels: list[int], root: Path
) -> tuple[model_pb2.Model, list[list[str]]]:
    """The default text model (babi-joint, flat bank of bAbI sentences), batching on and
    off: here the model forward, not the search, is the cost batching shares. Returns
    the served default model and the table rows."""
    sentences, questions = datasets.babi_qa1()
    sentences = sentences[: args.text_memories]
    requests = [
        query_pb2.QueryRequest(bank="story", questions=[q]).SerializeToString()
        for q in questions[: args.queries]
    ]
    data_dir = root / "text"
    shutil.rmtree(data_dir, ignore_errors=True)
    rows = []
    server = ServerProcess(data_dir, batching=True)
    with grpc.insecure_channel(server.target) as channel:
        models = model_pb2_grpc.ModelServiceStub(channel).ListModels(model_pb2.ListModelsRequest())
        (default,) = [m for m in models.models if m.is_default]
        spec = bank_pb2.BankSpec(name="story")
        bank_pb2_grpc.BankServiceStub(channel).CreateBank(bank_pb2.CreateBankRequest(spec=spec))
        batch = memory_pb2.MemoryBatch(memories=[memory_pb2.MemoryInput(text=t) for t in sentences])
        memory_pb2_grpc.MemoryServiceStub(channel).WriteMemories(
            memory_pb2.WriteMemoriesRequest(bank="story", batch=batch)
        )
    stats = measure_abba(server, data_dir, requests, levels, args)
    shutil.rmtree(data_dir, ignore_errors=True)
    for c in levels:
        on, off = stats[True, c], stats[False, c]
        rows.append(
            [
                str(c),
                f"{on.p50_ms:.2f} / {on.p99_ms:.2f}",
                f"{on.qps:,.0f}",
                f"{off.p50_ms:.2f} / {off.p99_ms:.2f}",
                f"{off.qps:,.0f}",
                f"{on.qps / off.qps:.2f}",
            ]
        )
    return default, rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000,1000000", help="bank sizes M, comma-separated")
    parser.add_argument("--concurrency", default="1,8,32", help="queries in flight")
    parser.add_argument("--duration-s", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--d", type=int, default=128, help="key and value dimension")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--queries", type=int, default=2000, help="distinct queries cycled")
    parser.add_argument(
        "--text-memories", type=int, default=2000, help="bAbI sentences in the text bank; 0 = skip"
    )
    parser.add_argument(
        "--rpc-batch", type=int, default=32, help="queries per RPC in the client-batched rows"
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="ABBA rounds per cell; the best QPS is kept"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the server process only, e.g. OMP_NUM_THREADS=2 (repeatable)",
    )
    parser.add_argument(
        "--stores",
        default="faiss",
        help="faiss, or faiss,milvus to add the milvus store on a Milvus Lite server",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    SERVER_ENV.update(item.split("=", 1) for item in args.server_env)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    levels = [int(c) for c in args.concurrency.split(",")]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, faiss {faiss.__version__} "
        f"({faiss.omp_get_max_threads()} OpenMP threads), grpcio {grpc.__version__}, "
        f"python {platform.python_version()}; {args.duration_s:.0f} s per cell; "
        f"load average {os.getloadavg()[0]:.1f}; server environment {SERVER_ENV or 'default'}"
    )
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-service-"))
    load_rows: list[list[str]] = []
    query_rows: list[list[str]] = []
    batch_rows: list[list[str]] = []
    store_rows: list[list[str]] = []
    load_header = ["M", "raw FAISS add", "service StreamWriteMemories (HNSW add, fsync none)"]
    if "milvus" in args.stores:
        load_header.append("service on the milvus store (Milvus Lite)")
    for n in sizes:
        load_row, rows, batched_rows, milvus_store_rows = bench_vectors(n, args, levels, root)
        load_rows.append(load_row)
        query_rows += rows
        batch_rows += batched_rows
        store_rows += milvus_store_rows
        table("Load: memories per second", load_header, load_rows)
        table(
            "Query: vector, k=32, 1 hop, HNSW (p50 / p99 ms, QPS)",
            [
                "M",
                "in flight",
                "raw FAISS p50/p99",
                "raw QPS",
                "service batched p50/p99",
                "QPS",
                "service unbatched p50/p99",
                "QPS",
                "batched / raw QPS",
                "no-op RPC QPS",
                "no-op / raw QPS",
            ],
            query_rows,
        )
        if batch_rows:
            b = args.rpc_batch
            table(
                f"Query: vector, k=32, 1 hop, HNSW, {b} queries per call "
                "(p50 / p99 ms per call; QPS counts queries)",
                [
                    "M",
                    "calls in flight",
                    "raw FAISS single-query QPS",
                    f"raw FAISS {b}-query search p50/p99",
                    "QPS",
                    f"service {b}-query RPC, memories layout p50/p99",
                    "QPS",
                    "arrays layout p50/p99",
                    "QPS",
                    "arrays / raw single",
                    "arrays / raw batched",
                ],
                batch_rows,
            )
        if store_rows:
            from bench_service_milvus import MILVUS_HEADER

            table(
                "Query on each store: vector, k=32, 1 hop, HNSW, batching on "
                "(p50 / p99 ms, QPS; Milvus Lite is a functional stand-in, slow by design)",
                MILVUS_HEADER,
                store_rows,
            )
    if args.text_memories:
        model, text_rows = bench_text(args, levels, root)
        table(
            f"Query: text, {model.name} ({model.default_hops} hops), flat bank of "
            f"{args.text_memories} sentences, k=32 (p50 / p99 ms, QPS)",
            [
                "in flight",
                "batched p50/p99",
                "QPS",
                "unbatched p50/p99",
                "QPS",
                "batched / unbatched QPS",
            ],
            text_rows,
        )
    if args.data_dir is None:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
