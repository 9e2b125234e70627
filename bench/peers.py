"""memnet against vector stores: Chroma (embedded and its own server), Milvus Lite, Qdrant
local mode.

    bash bench/setup_peers.sh                                  # once: bench/.venv-peers
    bench/.venv-peers/bin/python bench/peers.py --sizes 100000 --json bench/out/peers.json
    .venv/bin/python bench/peers.py --sizes 10000 --json out.json \
        --systems memnet-grpc,memnet-grpc-milvus,milvus   # + memnet on the milvus store

Runs ONLY under bench/.venv-peers (the peers are never memnet dependencies); the suite
calls it as a subprocess and renders the JSON it writes (``verdict``, ``body``).

The same clustered vectors (bench/datasets.py, D = 128) and queries for everyone,
inner-product similarity everywhere; recall@32 against exact brute force (FAISS flat).
Per system:

* durable insert throughput: batches of 1,000 vectors, each call returning only when
  the system's documented default durability says the batch is stored; and "until
  searchable": the same M divided by the insert calls *plus* whatever the system needs
  before a search sees the data (Milvus Lite builds its index at ``flush`` +
  ``load_collection``; memnet, Chroma and Qdrant index during the insert calls);
* query: one caller, one query at a time, k = 32; the smallest search beam
  (HNSW ef among EF_STEPS, IVF nprobe among NPROBE_STEPS) whose recall@32 ≥ 0.95 over
  the N_QUERIES queries is kept, with its latency p50/p99 and QPS (= queries / elapsed).
* Qdrant's local mode is a pure-Python exhaustive scan whose client warns above 20,000
  points; it is measured at QDRANT_M = 20,000 vectors, beside memnet at the same size.

The servers (memnet gRPC + SDK and Chroma's ``chroma run`` over HTTP, bench/peers_wire.py)
are also measured with 8 callers in flight at the beam kept (the "QPS, 8 in flight" column):
the fair comparison for a service is another service.

memnet stores a 128-d value with every key (it is a key-value memory; the peers store
one vector), so it writes twice the bytes. memnet runs twice per path, with an HNSW
bank (M 32, efConstruction 40) and an IVF-Flat bank (√M lists, trained on the first
39 per list). memnet in-process is ``Bank.write`` / ``Bank.search``; memnet gRPC is
``memnet serve`` in a child process driven through the SDK (``MemnetClient.write`` /
``MemnetClient.query_arrays``, which also returns the softmax attention over the 32
memories).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets
import timing
from peer_measure import (
    EF_STEPS,
    INSERT_BATCH,
    N_QUERIES,
    RECALL_TARGET,
    AsyncSearch,
    K,
    PeerResult,
    Search,
    best_in_flight,
    qps_in_flight,
    qps_in_flight_async,
    timed_inserts,
    truth,
    tune_and_measure,
    version,
)

QDRANT_M = 20_000  # Qdrant's local mode warns above 20k points and scans exhaustively


NPROBE_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# The search parameter each memnet index kind tunes for recall, and the values tried.
BEAMS: dict[str, tuple[str, tuple[int, ...]]] = {
    "hnsw": ("ef_search", EF_STEPS),
    "ivf": ("nprobe", NPROBE_STEPS),
}


def ivf_nlist(m: int) -> int:
    """√M lists. Inserts here count until searchable, so they include the k-means
    training on 39 keys per list: with 4·√M lists (the low end of FAISS's 4–16·√N
    guideline) training alone took 1.1 s of 1.9 s for 100k durable writes, with √M
    0.06 s of 0.67 s (149k writes/s); k = 32 at recall 0.95 needs few lists either way."""
    return max(16, round(m**0.5))


def memnet_spec(kind: str, m: int) -> dict[str, Any]:
    """The bank's index: HNSW32 (efConstruction 40) or IVF-Flat with √M lists."""
    if kind == "hnsw":
        return {"kind": "hnsw", "hnsw_m": 32, "ef_construction": 40, "ef_search": 64}
    return {"kind": "ivf", "nlist": ivf_nlist(m), "nprobe": 16}


def run_memnet_inproc(
    ds: datasets.Dataset, queries: np.ndarray, t: np.ndarray, root: Path, *, kind: str = "hnsw"
) -> PeerResult:
    from memnet.store import BankConfig, IndexSpec, MemoryBatch, MemoryStore, Metric

    res = PeerResult(
        f"memnet in-process ({kind.upper()})", version("memnet"), ds.m, "fsync per write (default)"
    )
    store = MemoryStore(root / "memnet")
    spec = IndexSpec.model_validate(memnet_spec(kind, ds.m))
    bank = store.create_bank(
        BankConfig(
            name="peers", key_dim=ds.d, value_dim=ds.d, metric=Metric.INNER_PRODUCT, index=spec
        )
    )
    ids = datasets.ids_for(ds.m)

    def insert(lo: int, hi: int) -> None:
        batch_ids: list[str | None] = list(ids[lo:hi])
        bank.write(MemoryBatch(keys=ds.keys[lo:hi], values=ds.keys[lo:hi], ids=batch_ids))

    timed_inserts(res, insert, ds.m)

    beam_name, beams = BEAMS[kind]

    def make(beam: int | None) -> Search:
        def search(q: np.ndarray) -> list[int]:  # "" pads a row with fewer than K found
            return [int(i) for i in bank.search(q[None], K, **{beam_name: beam}).ids[0] if i]

        return search

    tune_and_measure(res, make, queries, t, efs=beams)
    if kind == "ivf":
        res.note = (
            f"IVF-Flat, nlist {spec.nlist} (trained on the first {39 * spec.nlist:,}); nprobe tuned"
        )
    store.close()
    return res


@contextmanager
def memnet_server(data_dir: Path, flags: tuple[str, ...] = ()) -> Iterator[str]:
    """``memnet serve`` (fsync always, batching on: the defaults) in a child process."""
    exe = str(Path(sys.executable).with_name("memnet"))
    cmd = [exe, "serve", "--port", "0", "--metrics-port", "0", "--data-dir", str(data_dir), *flags]
    env = {**os.environ, "MEMNET_LOG_FORMAT": "json"}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    target = ""
    for line in proc.stderr:
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("msg") == "serving":
            target = entry["address"]
            break
    if not target:
        raise RuntimeError("memnet serve exited before serving")
    drain = threading.Thread(target=lambda: [None for _ in proc.stderr or ()], daemon=True)
    drain.start()
    try:
        yield target
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=600)


@contextmanager
def store_flags(store: str, root: Path) -> Iterator[tuple[str, ...]]:
    """``memnet serve`` flags of a store: none for faiss; for milvus, a Milvus Lite server
    (its own process, bench/lite_server.py) for the time of the run."""
    if store == "faiss":
        yield ()
        return
    from lite_server import lite_server  # bench/lite_server.py

    with lite_server(root / "milvus-lite") as uri:
        yield ("--store", "milvus", "--milvus-uri", uri)


def run_memnet_grpc(
    ds: datasets.Dataset,
    queries: np.ndarray,
    t: np.ndarray,
    root: Path,
    *,
    kind: str = "hnsw",
    store: str = "faiss",
) -> PeerResult:
    from memnet_client import AsyncMemnetClient, MemnetClient
    from memnet_client.models import IndexSpec

    on = "" if store == "faiss" else ", milvus store on a Milvus Lite server"
    durability = "fsync per write (default)" if store == "faiss" else "acknowledged by Milvus"
    res = PeerResult(f"memnet gRPC + SDK ({kind.upper()}{on})", version("memnet"), ds.m, durability)
    with (
        store_flags(store, root) as flags,
        memnet_server(root / "memnet-grpc", flags) as target,
        MemnetClient(target, timeout_s=120.0, write_timeout_s=600.0) as client,
    ):
        client.create_bank(
            "peers",
            model="vector",
            key_dim=ds.d,
            value_dim=ds.d,
            metric="inner_product",
            index=IndexSpec.model_validate(memnet_spec(kind, ds.m)),
        )
        ids = datasets.ids_for(ds.m)

        def insert(lo: int, hi: int) -> None:
            client.write("peers", keys=ds.keys[lo:hi], values=ds.keys[lo:hi], ids=ids[lo:hi])

        timed_inserts(res, insert, ds.m)

        beam_name, beams = BEAMS[kind]

        def make(beam: int | None) -> Search:
            def search(q: np.ndarray) -> list[int]:
                tuning = {beam_name: beam}
                out = client.query_arrays("peers", query_vectors=q[None], k=K, **tuning)  # type: ignore[arg-type]
                return [int(i) for i in out.ids[0, 0] if i]

            return search

        tune_and_measure(res, make, queries, t, efs=beams)
        by_threads = qps_in_flight(make(res.ef), queries)

        @asynccontextmanager
        async def open_async() -> AsyncIterator[AsyncSearch]:
            async with AsyncMemnetClient(target, timeout_s=120.0) as aclient:

                async def search(q: np.ndarray) -> list[int]:
                    tuning = {beam_name: res.ef}
                    out = await aclient.query_arrays(
                        "peers",
                        query_vectors=q[None],
                        k=K,
                        **tuning,  # type: ignore[arg-type]
                    )
                    return [int(i) for i in out.ids[0, 0] if i]

                yield search

        in_flight = best_in_flight(res, by_threads, qps_in_flight_async(open_async, queries))
    res.note = "single queries through Query with RESULT_LAYOUT_ARRAYS (query_arrays); " + in_flight
    return res


def run_chroma(ds: datasets.Dataset, queries: np.ndarray, t: np.ndarray, root: Path) -> PeerResult:
    import chromadb

    res = PeerResult(
        "Chroma PersistentClient", version("chromadb"), ds.m, "default (persistent client)"
    )
    client = chromadb.PersistentClient(path=str(root / "chroma"))
    col = client.create_collection("peers", configuration={"hnsw": {"space": "ip"}})
    ids = datasets.ids_for(ds.m)
    timed_inserts(res, lambda lo, hi: col.add(ids=ids[lo:hi], embeddings=ds.keys[lo:hi]), ds.m)

    def make(ef: int | None) -> Search:
        # A changed ef_search reaches the HNSW segment only when the client reopens it.
        client.get_collection("peers").modify(configuration={"hnsw": {"ef_search": ef}})
        chromadb.api.client.SharedSystemClient.clear_system_cache()
        fresh = chromadb.PersistentClient(path=str(root / "chroma")).get_collection("peers")

        def search(q: np.ndarray) -> list[int]:
            out = fresh.query(query_embeddings=q[None], n_results=K, include=[])
            return [int(i) for i in out["ids"][0]]

        return search

    tune_and_measure(res, make, queries, t)
    res.note = "HNSW defaults (max_neighbors 16, ef_construction 100); ef_search tuned"
    return res


def run_chroma_server(
    ds: datasets.Dataset, queries: np.ndarray, t: np.ndarray, root: Path
) -> PeerResult:
    from peers_wire import run_chroma_server as run  # needs chromadb: imported when asked for

    return run(ds, queries, t, root)


def run_milvus(ds: datasets.Dataset, queries: np.ndarray, t: np.ndarray, root: Path) -> PeerResult:
    from pymilvus import DataType, MilvusClient

    res = PeerResult(
        "Milvus Lite (MilvusClient, .db file)",
        version("milvus-lite"),
        ds.m,
        'default WAL sync_mode "close" (flushed per insert, fsync at close)',
    )
    client = MilvusClient(str(root / "milvus.db"))
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=ds.d)
    index = client.prepare_index_params()
    index.add_index(
        field_name="vec",
        index_type="HNSW",
        metric_type="IP",
        params={"M": 32, "efConstruction": 40},
    )
    client.create_collection("peers", schema=schema, index_params=index)

    def insert(lo: int, hi: int) -> None:
        rows = [{"id": i, "vec": ds.keys[i]} for i in range(lo, hi)]
        client.insert("peers", rows)

    def make_searchable() -> None:  # seals the segment and builds its HNSW index
        client.flush("peers")
        client.load_collection("peers")

    timed_inserts(res, insert, ds.m, make_searchable)

    def make(ef: int | None) -> Search:
        def search(q: np.ndarray) -> list[int]:
            out = client.search(
                "peers",
                data=[q.tolist()],
                limit=K,
                search_params={"metric_type": "IP", "params": {"ef": ef}},
            )
            return [int(hit["id"]) for hit in out[0]]

        return search

    tune_and_measure(res, make, queries, t)
    res.note = "HNSW M 32, efConstruction 40 (as memnet); ef tuned; flush + load after inserts"
    client.close()
    return res


def run_qdrant(ds: datasets.Dataset, queries: np.ndarray, t: np.ndarray, root: Path) -> PeerResult:
    from qdrant_client import QdrantClient, models

    res = PeerResult(
        "Qdrant local mode (path=)", version("qdrant-client"), ds.m, "default (local path)"
    )
    client = QdrantClient(path=str(root / "qdrant"))
    client.create_collection(
        "peers", vectors_config=models.VectorParams(size=ds.d, distance=models.Distance.DOT)
    )

    def insert(lo: int, hi: int) -> None:
        client.upsert(
            "peers", points=models.Batch(ids=list(range(lo, hi)), vectors=ds.keys[lo:hi].tolist())
        )

    timed_inserts(res, insert, ds.m)

    def make(ef: int | None) -> Search:
        def search(q: np.ndarray) -> list[int]:
            out = client.query_points("peers", query=q.tolist(), limit=K)
            return [int(p.id) for p in out.points]

        return search

    tune_and_measure(res, make, queries, t, efs=(None,))
    res.note = "local mode searches exhaustively (no HNSW), so there is no beam to tune"
    client.close()
    return res


RUNNERS: dict[str, Callable[[datasets.Dataset, np.ndarray, np.ndarray, Path], PeerResult]] = {
    "memnet": run_memnet_inproc,
    "memnet-ivf": partial(run_memnet_inproc, kind="ivf"),
    "memnet-grpc": run_memnet_grpc,
    "memnet-grpc-ivf": partial(run_memnet_grpc, kind="ivf"),
    "memnet-grpc-milvus": partial(run_memnet_grpc, store="milvus"),
    "chroma": run_chroma,
    "chroma-server": run_chroma_server,
    "milvus": run_milvus,
    "qdrant": run_qdrant,
}


# memnet on the milvus store, on a Milvus Lite server: slow by design (Milvus Lite scans
# unflushed data in Python), so only when asked: --systems ...,memnet-grpc-milvus
OPT_IN = ("memnet-grpc-milvus",)


def run(sizes: list[int], systems: list[str], *, seed: int = 0) -> dict[str, Any]:
    """Every system at every size, except Qdrant, which runs at QDRANT_M beside memnet."""
    results: list[PeerResult] = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    plan = [(m, [s for s in systems if s != "qdrant"]) for m in sizes]
    if "qdrant" in systems:
        plan.append((QDRANT_M, [s for s in systems if s.startswith("memnet") or s == "qdrant"]))
    for m, names in plan:
        ds = datasets.clustered_data(m, 128, N_QUERIES, seed=seed)
        true_ids = truth(ds.keys, ds.queries)
        for name in names:
            root = Path(tempfile.mkdtemp(prefix=f"bench-peers-{name}-"))
            t0 = time.perf_counter()
            try:
                r = RUNNERS[name](ds, ds.queries, true_ids, root)
            except Exception as err:  # a peer that fails is reported, never invented
                r = PeerResult(name, version(name), m, "", error=f"{type(err).__name__}: {err}")
            finally:
                shutil.rmtree(root, ignore_errors=True)
            print(f"{name} M={m}: {asdict(r)} ({time.perf_counter() - t0:.0f} s)", flush=True)
            results.append(r)
    sizes_run = sorted({m for m, _ in plan})
    return {"started": started, "sizes": sizes_run, "results": [asdict(r) for r in results]}


def _peer_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows: list[list[str]] = []
    for r in results:
        if r["error"]:
            rows.append(
                [
                    f"{r['m']:,}",
                    r["system"],
                    r["version"],
                    "not measured",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    r["error"],
                ]
            )
            continue
        rows.append(
            [
                f"{r['m']:,}",
                r["system"],
                r["version"],
                timing.fmt_int(r["insert_per_s"]),
                timing.fmt_int(r.get("searchable_per_s") or r["insert_per_s"]),
                "exact" if r["ef"] is None else str(r["ef"]),
                f"{r['recall']:.3f}",
                f"{timing.fmt_ms(r['p50_ms'])} / {timing.fmt_ms(r['p99_ms'])}",
                timing.fmt_int(r["qps"]),
                _in_flight_cell(r),
                r["durability"] + ("; " + r["note"] if r["note"] else ""),
            ]
        )
    return rows


def _in_flight_cell(r: dict[str, Any]) -> str:
    return timing.fmt_int(r["qps_in_flight"]) if r.get("qps_in_flight") else "-"


@dataclass(frozen=True)
class Ratio:
    """memnet ÷ peer at one M, measured in the same run."""

    m: int
    ours: str
    theirs: str
    insert: float  # insert calls
    searchable: float  # insert calls + time until searches see the data (the target's)
    qps: float
    peer_met_recall: bool
    qps_in_flight: float | None = None  # None: not measured on both sides

    @property
    def met(self) -> bool:
        in_flight_met = self.qps_in_flight is None or self.qps_in_flight >= 3
        return self.searchable >= 3 and self.qps >= 3 and in_flight_met


def _searchable(r: dict[str, Any]) -> float:
    return float(r.get("searchable_per_s") or r["insert_per_s"])


def ratios(data: dict[str, Any]) -> list[Ratio]:
    out: list[Ratio] = []
    res = data["results"]
    for m in data["sizes"]:
        ours = [  # memnet on the milvus store runs on a peer (Milvus Lite): no ratio
            r
            for r in res
            if r["m"] == m
            and r["system"].startswith("memnet")
            and "milvus store" not in r["system"]
            and not r["error"]
        ]
        theirs = [
            r
            for r in res
            if r["m"] == m and not r["system"].startswith("memnet") and not r["error"]
        ]
        for o in ours:
            for t in theirs:
                out.append(
                    Ratio(
                        m=m,
                        ours=o["system"],
                        theirs=t["system"],
                        insert=o["insert_per_s"] / t["insert_per_s"],
                        searchable=_searchable(o) / _searchable(t),
                        qps=o["qps"] / t["qps"],
                        peer_met_recall=t["recall"] >= RECALL_TARGET,
                        qps_in_flight=o["qps_in_flight"] / t["qps_in_flight"]
                        if o.get("qps_in_flight") and t.get("qps_in_flight")
                        else None,
                    )
                )
    return out


def verdict(data: dict[str, Any]) -> str:
    lines = []
    for r in ratios(data):
        lines.append(
            f"- M = {r.m:,}, {r.ours} vs {r.theirs}: inserts until searchable "
            f"{timing.fmt_ratio(r.searchable)} (insert calls alone "
            f"{timing.fmt_ratio(r.insert)}), query QPS {timing.fmt_ratio(r.qps)}"
            + (
                ""
                if r.qps_in_flight is None
                else f", {timing.fmt_ratio(r.qps_in_flight)} at 8 in flight"
            )
            + " "
            f"(target ≥ 3× on each: {'met' if r.met else 'NOT met'})"
        )
    missing = [r for r in data["results"] if r["error"]]
    for r in missing:
        lines.append(f"- M = {r['m']:,}, {r['system']}: not measured ({r['error']})")
    return "\n".join(lines) if lines else "No peer was measured."


def body(data: dict[str, Any], png_dir: Path, out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = [r for r in data["results"] if not r["error"]]
    parts = [__doc__ or "", f"Run started {data['started']}.", ""]
    parts.append(
        timing.table(
            f"Durable inserts (batches of {INSERT_BATCH:,}) and single-caller queries, k = {K}",
            [
                "M",
                "system",
                "version",
                "inserts/s (calls)",
                "inserts/s until searchable",
                "ef / nprobe",
                f"recall@{K}",
                "p50 / p99 ms",
                "QPS",
                "QPS, 8 in flight",
                "durability; notes",
            ],
            _peer_rows(data["results"]),
        )
    )
    rows = [
        [
            f"{r.m:,}",
            r.ours,
            r.theirs,
            timing.fmt_ratio(r.insert),
            timing.fmt_ratio(r.searchable),
            timing.fmt_ratio(r.qps),
            "-" if r.qps_in_flight is None else timing.fmt_ratio(r.qps_in_flight),
            "yes" if r.peer_met_recall else "no",
        ]
        for r in ratios(data)
    ]
    if rows:
        parts.append(
            timing.table(
                "memnet ÷ peer, same run (target ≥ 3× on inserts until searchable and on QPS)",
                [
                    "M",
                    "memnet",
                    "peer",
                    "insert calls ratio",
                    "until searchable ratio",
                    "QPS ratio",
                    "QPS ratio, 8 in flight",
                    f"peer reached recall {RECALL_TARGET}",
                ],
                rows,
            )
        )
    if res:
        fig, axes = plt.subplots(1, 2, figsize=(13, 1.5 + 0.32 * len(res)))
        labels = [f"{r['system']}, M = {r['m']:,}" for r in res]
        axes[0].barh(labels, [_searchable(r) for r in res])
        axes[0].set_xscale("log")
        axes[0].set_xlabel("durable inserts/s until searchable (log)")
        axes[1].barh(labels, [r["qps"] for r in res])
        axes[1].set_xscale("log")
        axes[1].set_xlabel(f"single-caller QPS at recall@{K} ≥ {RECALL_TARGET} (log)")
        for ax in axes:
            ax.grid(True, axis="x", alpha=0.3)
        axes[1].set_yticklabels([])
        fig.tight_layout()
        path = png_dir / "peers.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        parts.append(f"![peers]({os.path.relpath(path, out.parent)})")
    return "\n".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="100000", help="M, comma-separated (1000000: the 1M run)")
    p.add_argument(
        "--systems",
        default=",".join(n for n in RUNNERS if n not in OPT_IN),
        help=f"of {list(RUNNERS)} (default: all but {list(OPT_IN)})",
    )
    p.add_argument("--json", type=Path, required=True, help="write the results here")
    a = p.parse_args()
    data = run([int(x) for x in a.sizes.split(",")], a.systems.split(","))
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(data, indent=2))
    print(
        timing.table(
            "peers",
            [
                "M",
                "system",
                "version",
                "inserts/s",
                "until searchable",
                "ef",
                "recall",
                "p50/p99 ms",
                "QPS",
                "QPS x8",
                "notes",
            ],
            _peer_rows(data["results"]),
        )
    )


if __name__ == "__main__":
    main()
