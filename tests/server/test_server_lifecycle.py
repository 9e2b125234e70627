"""Health, reflection, graceful shutdown (no acknowledged write lost) and metrics."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

import grpc
import numpy as np
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from server_support import Catalog, Running, SlowDouble, StartServer, rpc_error

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, query_pb2

SERVICES = {
    "memnet.api.v1.BankService",
    "memnet.api.v1.MemoryService",
    "memnet.api.v1.QueryService",
    "memnet.api.v1.ModelService",
}


def test_health_is_serving_for_every_service_and_reflection_lists_them(server: Running) -> None:
    for service in ("", *SERVICES):
        response = server.health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service
    listed = set(ProtoReflectionDescriptorDatabase(server.channel).get_services())
    assert SERVICES | {"grpc.health.v1.Health"} <= listed
    database = ProtoReflectionDescriptorDatabase(server.channel)
    assert database.FindFileContainingSymbol("memnet.api.v1.QueryService").package == (
        "memnet.api.v1"
    )


def test_graceful_shutdown_drains_and_keeps_every_acknowledged_write(
    start_server: StartServer,
) -> None:
    slow = SlowDouble(delay_s=0.6)
    server = start_server(models=Catalog(None, slow), grace_s=5.0)
    server.vector_bank("b", dim=4, model="slow")
    acknowledged: list[str] = []
    stop_writing = threading.Event()

    def writer(worker: int) -> None:
        keys = np.random.default_rng(worker).standard_normal((10, 4)).astype(np.float32)
        n = 0
        while not stop_writing.is_set():
            ids = [f"w{worker}-{n}-{j}" for j in range(10)]
            try:
                server.write_vectors("b", keys, ids=ids)
            except grpc.RpcError:
                return
            acknowledged.extend(ids)
            n += 1

    watch = server.health.Watch(health_pb2.HealthCheckRequest(service=""))
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for thread in writers:
        thread.start()
    in_flight: list[object] = []
    query = threading.Thread(
        target=lambda: in_flight.append(
            server.queries.Query(
                query_pb2.QueryRequest(bank="b", query_vectors=to_tensor(np.ones((1, 4))))
            )
        )
    )
    time.sleep(0.3)
    query.start()
    time.sleep(0.1)  # the query is now inside the slow model
    stopped = server.service.stop(5.0)
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()  # an open Watch stream would hold the drain for the whole grace
    assert stopped.wait(15)
    stop_writing.set()
    for thread in [*writers, query]:
        thread.join(10)
    assert len(in_flight) == 1 and isinstance(in_flight[0], query_pb2.QueryResponse)
    assert len(acknowledged) >= 30
    reopened = start_server(models=Catalog(None, slow))
    got = reopened.memories.GetMemories(memory_pb2.GetMemoriesRequest(bank="b", ids=acknowledged))
    assert not got.missing_ids and len(got.memories) == len(acknowledged)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_metrics_count_calls_by_method_and_code(start_server: StartServer) -> None:
    server = start_server(metrics_port=_free_port(), metrics_bank_labels="names")
    server.vector_bank("b", dim=4)
    server.write_vectors("b", np.eye(4, dtype=np.float32))
    server.queries.Query(
        query_pb2.QueryRequest(bank="b", query_vectors=to_tensor(np.ones((2, 4), np.float32)))
    )
    rpc_error(lambda: server.banks.GetBank(bank_pb2.GetBankRequest(name="missing")))
    url = f"http://127.0.0.1:{server.service.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    get_bank = 'method="/memnet.api.v1.BankService/GetBank"'
    assert f'memnet_requests_total{{code="NOT_FOUND",{get_bank}}} 1.0' in text
    assert f'memnet_errors_total{{code="NOT_FOUND",{get_bank}}} 1.0' in text
    query = 'method="/memnet.api.v1.QueryService/Query"'
    assert f'memnet_requests_total{{code="OK",{query}}} 1.0' in text
    assert f"memnet_request_latency_seconds_count{{{query}}} 1.0" in text
    assert "memnet_query_batch_size_sum 2.0" in text
    assert 'memnet_bank_memories{bank="b"} 4.0' in text
