"""Peers over the wire for bench/peers.py: Chroma's own server (``chroma run``, HTTP).

memnet's service is a server; the fair peer is another server, not an embedded
library. ``chroma run`` serves a persistent directory over HTTP on 127.0.0.1; the
benchmark talks to it through ``chromadb.HttpClient`` with the same data, batches
and recall target as every other system. Queries are measured with one caller and
with ``IN_FLIGHT`` callers (threads sharing one client: memnet's gRPC channel and
Chroma's HTTP client both multiplex them).

Chroma reads a changed ``ef_search`` only when it opens the collection's HNSW segment,
so each ef step restarts the server on the same directory (as the in-process run
reopens its client).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path

import datasets
import numpy as np
from lite_server import free_port
from peer_measure import (
    EF_STEPS,
    RECALL_TARGET,
    AsyncSearch,
    K,
    PeerResult,
    best_in_flight,
    measure_queries,
    qps_in_flight,
    qps_in_flight_async,
    timed_inserts,
    version,
)

START_TIMEOUT_S = 60.0


@contextmanager
def chroma_server(path: Path) -> Iterator[int]:
    """``chroma run`` on ``path`` in a child process; yields its port once it answers."""
    import chromadb

    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
    port = free_port()
    cmd = [exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chroma run did not start (exit {proc.poll()})") from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def run_chroma_server(
    ds: datasets.Dataset, queries: np.ndarray, t: np.ndarray, root: Path
) -> PeerResult:
    import chromadb

    res = PeerResult(
        "Chroma server (chroma run, HTTP)",
        version("chromadb"),
        ds.m,
        "default (chroma run --path)",
    )
    path = root / "chroma-server"
    ids = datasets.ids_for(ds.m)
    notes: list[str] = []
    with chroma_server(path) as port:
        client = chromadb.HttpClient(host="127.0.0.1", port=port)
        col = client.create_collection("peers", configuration={"hnsw": {"space": "ip"}})
        timed_inserts(res, lambda lo, hi: col.add(ids=ids[lo:hi], embeddings=ds.keys[lo:hi]), ds.m)

    def measure_at(ef: int) -> None:
        """Set ef_search, reopen, and measure one caller and IN_FLIGHT callers into res."""
        with chroma_server(path) as port:
            client = chromadb.HttpClient(host="127.0.0.1", port=port)
            client.get_collection("peers").modify(configuration={"hnsw": {"ef_search": ef}})
        with chroma_server(path) as port:  # reopened: the segment reads the new ef
            fresh = chromadb.HttpClient(host="127.0.0.1", port=port).get_collection("peers")

            def search(q: np.ndarray) -> list[int]:
                out = fresh.query(query_embeddings=q[None], n_results=K, include=[])
                return [int(i) for i in out["ids"][0]]

            for q in queries[:5]:
                search(q)  # warm-up
            res.ef = ef
            res.recall, res.p50_ms, res.p99_ms, res.qps = measure_queries(search, queries, t)
            if res.recall >= RECALL_TARGET or ef == EF_STEPS[-1]:  # the ef that is kept
                by_threads = qps_in_flight(search, queries)
                by_asyncio = qps_in_flight_async(partial(_chroma_async, port), queries)
                notes.append(best_in_flight(res, by_threads, by_asyncio))

    for ef in EF_STEPS:
        measure_at(ef)
        if res.recall >= RECALL_TARGET:
            break
    res.note = "; ".join(
        [
            "HNSW defaults (max_neighbors 16, ef_construction 100); ef_search tuned; "
            "HttpClient over loopback (AsyncHttpClient for the asyncio in-flight run)",
            *notes[-1:],
        ]
    )
    return res


@asynccontextmanager
async def _chroma_async(port: int) -> AsyncIterator[AsyncSearch]:
    """Chroma's own asyncio HTTP client on the running server's collection."""
    import chromadb

    client = await chromadb.AsyncHttpClient(host="127.0.0.1", port=port)
    col = await client.get_collection("peers")

    async def search(q: np.ndarray) -> list[int]:
        out = await col.query(query_embeddings=q[None], n_results=K, include=[])
        return [int(i) for i in out["ids"][0]]

    yield search
