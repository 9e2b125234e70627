"""The status table, and the statuses only special situations produce."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest
from server_support import (
    BrokenDouble,
    Catalog,
    SlowDouble,
    StartServer,
    rpc_error,
    run_concurrently,
)

from memnet import errors
from memnet.api.tensors import to_tensor
from memnet.api.v1 import memory_pb2, query_pb2
from memnet_server.errors import INTERNAL_MESSAGE, STATUS_BY_ERROR, status_for

ONE = to_tensor(np.ones((1, 4), np.float32))


def test_every_domain_error_has_exactly_its_status() -> None:
    expected = {
        errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
        errors.NotFound: grpc.StatusCode.NOT_FOUND,
        errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
        errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
        errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
        errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
        errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
        errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
        errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    }
    assert expected == STATUS_BY_ERROR
    domain_errors = {
        error_type
        for error_type in errors.MemnetError.__subclasses__()
        if error_type.__module__ == errors.__name__  # the SDK subclasses them too
    }
    assert domain_errors == set(expected)
    for error_type, code in expected.items():
        got = status_for(error_type("got 9, limit 5", field="top_answers"), method="m")
        assert got == (code, "top_answers: got 9, limit 5")
    internal = (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
    assert status_for(KeyError("secret"), method="m") == internal


def test_a_bug_is_internal_and_does_not_leak(start_server: StartServer) -> None:
    server = start_server(models=Catalog(None, BrokenDouble("broken")))
    server.vector_bank("b", dim=4, model="broken")
    server.write_vectors("b", np.eye(4, dtype=np.float32))
    error = rpc_error(
        lambda: server.queries.Query(query_pb2.QueryRequest(bank="b", query_vectors=ONE))
    )
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in error.details() and error.details() == INTERNAL_MESSAGE


def test_bank_whose_model_is_gone_is_failed_precondition(
    start_server: StartServer, tmp_path: pytest.TempPathFactory
) -> None:
    first = start_server(models=Catalog(None, SlowDouble("old-model", delay_s=0.0)))
    first.vector_bank("b", dim=4, model="old-model")
    first.service.stop(0).wait(10)
    second = start_server()  # the same data directory, the shipped models only
    error = rpc_error(
        lambda: second.queries.Query(query_pb2.QueryRequest(bank="b", query_vectors=ONE))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "old-model" in error.details()
    count = second.memories.CountMemories(memory_pb2.CountMemoriesRequest(bank="b")).count
    assert count == 0  # the bank itself is still readable


def test_server_drops_a_queued_query_whose_deadline_passed(start_server: StartServer) -> None:
    slow = SlowDouble(delay_s=0.4)
    server = start_server(models=Catalog(None, slow), batching_workers=1)
    server.vector_bank("b", dim=4, model="slow")
    server.write_vectors("b", np.eye(4, dtype=np.float32))

    def long_query() -> query_pb2.QueryResponse:
        return server.queries.Query(query_pb2.QueryRequest(bank="b", query_vectors=ONE, k=2))

    def short_query() -> query_pb2.QueryResponse:
        time.sleep(0.1)  # queue behind the long one, with different parameters (k)
        return server.queries.Query(
            query_pb2.QueryRequest(bank="b", query_vectors=ONE, k=3), timeout=0.15
        )

    first, second = run_concurrently([long_query, short_query])
    assert isinstance(first, query_pb2.QueryResponse)
    assert isinstance(second, grpc.RpcError)
    assert second.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(0.3)
    assert slow.batch_sizes == [1]  # the expired query never reached the model


def test_overload_is_resource_exhausted_not_an_unbounded_queue(start_server: StartServer) -> None:
    slow = SlowDouble(delay_s=0.4)
    server = start_server(models=Catalog(None, slow), max_concurrent_rpcs=2)
    server.vector_bank("b", dim=4, model="slow")
    server.write_vectors("b", np.eye(4, dtype=np.float32))
    results = run_concurrently(
        [
            lambda: server.queries.Query(query_pb2.QueryRequest(bank="b", query_vectors=ONE))
            for _ in range(5)
        ]
    )
    refused = [r for r in results if isinstance(r, grpc.RpcError)]
    assert 1 <= len(refused) <= 3
    assert all(r.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for r in refused)
    assert any(isinstance(r, query_pb2.QueryResponse) for r in results)


def test_full_batch_queue_is_resource_exhausted(start_server: StartServer) -> None:
    slow = SlowDouble(delay_s=0.4)
    server = start_server(models=Catalog(None, slow), batching_workers=1, max_queued_queries=1)
    server.vector_bank("b", dim=4, model="slow")
    server.write_vectors("b", np.eye(4, dtype=np.float32))
    results = run_concurrently(
        [
            lambda k=k: server.queries.Query(
                query_pb2.QueryRequest(bank="b", query_vectors=ONE, k=k)
            )
            for k in (1, 2, 3, 4)
        ]
    )
    refused = [r for r in results if isinstance(r, grpc.RpcError)]
    assert refused and all(r.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for r in refused)
    assert "max_queued_queries=1" in refused[0].details()
