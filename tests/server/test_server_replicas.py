"""Two memnet replicas in front of one Milvus (Lite, its own server process).

Replica A runs in this process, replica B is a ``memnet serve --store milvus``
subprocess (so that it can be SIGKILLed). Both serve the same banks: a write
acknowledged by one is read by the other, concurrent writers lose nothing and get
unique sequence numbers in acknowledgement order, a bank dropped on one is gone on the
other, and when B dies mid-write, A keeps serving and holds every write B acknowledged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from lite_server_support import LiteServer, unique_prefix
from server_support import Running, StartServer, rpc_error

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, query_pb2
from memnet_server import ServerSettings

MEMNET = str(Path(sys.executable).with_name("memnet"))
STARTUP_TIMEOUT_S = 120.0
D = 4

pytestmark = pytest.mark.timeout(300)


class Replica:
    """A ``memnet serve`` subprocess on port 0, with stubs on a channel to it."""

    def __init__(self, uri: str, prefix: str) -> None:
        self.prefix = prefix
        env = {**os.environ, "MEMNET_LOG_FORMAT": "json", "MEMNET_METRICS_PORT": "0"}
        self.process = subprocess.Popen(
            [
                MEMNET, "serve", "--port", "0", "--store", "milvus", "--milvus-uri", uri,
                "--milvus-collection-prefix", prefix, "--default-model", "vector",
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.port = self._wait_for_port()
        threading.Thread(target=self._drain, daemon=True).start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.running = Running(None, self.port, ServerSettings(), self.channel)  # type: ignore[arg-type]

    def _wait_for_port(self) -> int:
        found: list[int] = []

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                entry = json.loads(line) if line.startswith("{") else {}
                if entry.get("msg") == "serving":
                    found.append(int(entry["address"].rsplit(":", 1)[1]))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(STARTUP_TIMEOUT_S)
        if not found:
            self.process.kill()
            raise RuntimeError("the replica never logged that it was serving")
        return found[0]

    def _drain(self) -> None:
        if self.process.stderr is not None:
            for _ in self.process.stderr:
                pass

    def close(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)


@pytest.fixture(scope="module")
def replica_b(milvus_lite: LiteServer) -> Iterator[Replica]:
    """One subprocess replica for the module (starting one costs seconds); the last
    test kills it."""
    b = Replica(milvus_lite.uri, unique_prefix())
    yield b
    b.close()


@pytest.fixture
def replicas(
    start_server: StartServer, milvus_lite: LiteServer, replica_b: Replica, tmp_path: Path
) -> tuple[Running, Replica]:
    a = start_server(
        store="milvus",
        milvus_uri=milvus_lite.uri,
        milvus_collection_prefix=replica_b.prefix,
        default_model="vector",
        data_dir=tmp_path / "a",
    )
    return a, replica_b


def _keys(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


def _write(
    server: Running, bank: str, ids: list[str], seed: int
) -> memory_pb2.WriteMemoriesResponse:
    keys = to_tensor(_keys(len(ids), seed))
    batch = memory_pb2.MemoryBatch(
        memories=[memory_pb2.MemoryInput(id=i) for i in ids], keys=keys, values=keys
    )
    request = memory_pb2.WriteMemoriesRequest(bank=bank, batch=batch)
    return server.memories.WriteMemories(request, timeout=30)


def _all_memories(server: Running, bank: str) -> list[memory_pb2.Memory]:
    out: list[memory_pb2.Memory] = []
    token = ""
    while True:
        page = server.memories.ListMemories(
            memory_pb2.ListMemoriesRequest(bank=bank, page_size=500, page_token=token), timeout=30
        )
        out.extend(page.memories)
        token = page.next_page_token
        if not token:
            return out


def test_replicas_share_banks_writes_and_drops(replicas: tuple[Running, Replica]) -> None:
    a, b_replica = replicas
    b = b_replica.running
    a.vector_bank("shared", dim=D)
    seen = b.banks.GetBank(bank_pb2.GetBankRequest(name="shared"), timeout=30).bank
    assert seen.spec.key_dim == D  # created on A, known to B through the catalog
    acked = _write(a, "shared", ["a0", "a1"], seed=1)
    query = query_pb2.QueryRequest(bank="shared", query_vectors=to_tensor(_keys(1, 1)), k=2)
    answer = b.queries.Query(query, timeout=30)  # read-your-writes across replicas
    assert answer.bank_seq >= acked.seq == 2
    assert answer.results[0].hops[0].memories[0].id == "a0"
    _write(b, "shared", ["b0"], seed=2)
    count = a.memories.CountMemories(memory_pb2.CountMemoriesRequest(bank="shared"), timeout=30)
    assert count.count == 3
    b.banks.DeleteBank(bank_pb2.DeleteBankRequest(name="shared"), timeout=30)
    gone = rpc_error(lambda: a.banks.GetBank(bank_pb2.GetBankRequest(name="shared"), timeout=30))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    missed = rpc_error(lambda: a.queries.Query(query, timeout=30))
    assert missed.code() == grpc.StatusCode.NOT_FOUND


def test_concurrent_writers_on_both_replicas_lose_nothing(
    replicas: tuple[Running, Replica],
) -> None:
    a, b_replica = replicas
    b = b_replica.running
    a.vector_bank("busy", dim=D)
    acks: dict[str, list[tuple[list[str], int]]] = {}
    errors: list[BaseException] = []

    def writer(name: str, server: Running, rounds: int) -> None:
        mine: list[tuple[list[str], int]] = []
        try:
            for r in range(rounds):
                ids = [f"{name}-{r}-{j}" for j in range(3)]
                mine.append((ids, _write(server, "busy", ids, seed=r).seq))
        except BaseException as error:
            errors.append(error)
        acks[name] = mine

    threads = [
        threading.Thread(target=writer, args=(f"{side}{t}", server, 8))
        for side, server in (("a", a), ("b", b))
        for t in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[0]
    stored = {m.id: m.seq for m in _all_memories(a, "busy")}
    written = [i for mine in acks.values() for ids, _ in mine for i in ids]
    assert len(written) == 4 * 8 * 3 and set(written) == set(stored)  # nothing lost
    assert len(set(stored.values())) == len(stored)  # seqs unique across replicas
    for mine in acks.values():  # each writer's acknowledged writes: seqs in order
        seqs = [seq for _, seq in mine]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        for ids, seq in mine:  # a write's memories hold the seqs up to the one returned
            assert [stored[i] for i in ids] == list(range(seq - 2, seq + 1))


def test_a_replica_killed_mid_write_loses_no_acknowledged_write(
    replicas: tuple[Running, Replica],
) -> None:
    a, b_replica = replicas
    b = b_replica.running
    a.vector_bank("crash", dim=D)
    acked: dict[str, list[str]] = {"a": [], "b": []}
    stop = threading.Event()
    a_errors: list[BaseException] = []

    def hammer(side: str, server: Running) -> None:
        n = 0
        while not stop.is_set():
            ids = [f"{side}-{n}-{j}" for j in range(4)]
            n += 1
            try:
                _write(server, "crash", ids, seed=n)
            except grpc.RpcError as error:
                if side == "a":
                    a_errors.append(error)
                return  # B died (or A failed: recorded)
            acked[side].extend(ids)

    threads = [threading.Thread(target=hammer, args=(s, srv)) for s, srv in (("a", a), ("b", b))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acked["b"]) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(b_replica.process.pid, signal.SIGKILL)  # mid-write: B is writing in a loop
    b_replica.process.wait(30)
    time.sleep(1.0)  # A keeps serving after B is gone
    stop.set()
    for thread in threads:
        thread.join(60)
    assert not a_errors, a_errors[0]
    assert len(acked["b"]) >= 20 and len(acked["a"]) > 0
    health = a.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stored = {m.id for m in _all_memories(a, "crash")}
    assert set(acked["b"]) <= stored and set(acked["a"]) <= stored
    _write(a, "crash", ["after"], seed=99)  # the survivor still writes
    assert a.memories.GetMemories(
        memory_pb2.GetMemoriesRequest(bank="crash", ids=["after"]), timeout=30
    ).memories
