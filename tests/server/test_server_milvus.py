"""The server on the milvus store: every milvus setting, and Milvus down or slow.

A Milvus that is down answers UNAVAILABLE, one that is too slow DEADLINE_EXCEEDED,
both naming Milvus, and the server's health is NOT_SERVING until Milvus answers again.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from lite_server_support import LiteServer, lite_client, unique_prefix
from server_support import Running, StartServer, rpc_error

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, query_pb2
from memnet.store.types import StoreLimits
from memnet_server import ServerSettings, load_settings
from memnet_server.store_health import open_milvus_store

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _health(server: Running) -> int:
    return int(server.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status)


def _recheck(server: Running) -> int:
    """Run the periodic store check now, then read health as a client does."""
    assert server.service.store_health is not None
    server.service.store_health.check()
    return _health(server)


def _query(server: Running, bank: str, *, timeout: float = 30) -> query_pb2.QueryResponse:
    q = to_tensor(np.ones((1, 4), np.float32))
    return server.queries.Query(
        query_pb2.QueryRequest(bank=bank, query_vectors=q, k=2), timeout=timeout
    )


def _collections(uri: str, db: str = "default") -> list[str]:

    client = lite_client(uri, db)
    try:
        return list(client.list_collections())
    finally:
        client.close()


def test_milvus_settings_take_effect(
    start_server: StartServer, milvus_lite: LiteServer, tmp_path: Path
) -> None:

    db = f"db{unique_prefix()}".rstrip("_")
    client = lite_client(milvus_lite.uri)
    client.create_database(db)
    client.close()
    prefix = unique_prefix()
    server = start_server(
        store="milvus",
        milvus_uri=milvus_lite.uri,
        milvus_db=db,
        milvus_collection_prefix=prefix,
        milvus_timeout_s=20.0,
        milvus_token="root:Milvus",
        data_dir=tmp_path / "unused",
    )
    assert _health(server) == SERVING
    server.vector_bank("v", dim=4)
    server.write_vectors("v", np.eye(4, dtype=np.float32), ids=["a", "b", "c", "d"])
    answer = _query(server, "v")
    assert answer.bank_seq == 4 and answer.results[0].hops[0].memories[0].id
    in_db = _collections(milvus_lite.uri, db)
    assert f"{prefix}catalog" in in_db and any(n.startswith(f"{prefix}bank_") for n in in_db)
    assert not any(n.startswith(prefix) for n in _collections(milvus_lite.uri))  # not default
    assert not (tmp_path / "unused" / "banks").exists()  # nothing on the local disk
    refused = rpc_error(
        lambda: server.banks.CreateBank(
            bank_pb2.CreateBankRequest(
                spec=bank_pb2.BankSpec(
                    name="pq",
                    model="vector",
                    key_dim=4,
                    value_dim=4,
                    index=bank_pb2.IndexSpec(kind=bank_pb2.INDEX_KIND_IVF_PQ),
                )
            )
        )
    )
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.details().startswith("spec.index.kind 'ivf_pq' is not available on the milvus")


def test_reindex_on_the_milvus_store_is_refused_and_the_bank_keeps_serving(
    start_server: StartServer, milvus_lite: LiteServer
) -> None:
    server = start_server(
        store="milvus", milvus_uri=milvus_lite.uri, milvus_collection_prefix=unique_prefix()
    )
    spec = bank_pb2.BankSpec(name="t", model="babi-joint")
    server.banks.CreateBank(bank_pb2.CreateBankRequest(spec=spec))
    refused = rpc_error(
        lambda: server.banks.ReindexBank(
            bank_pb2.ReindexBankRequest(bank="t", model="babi-joint@1")
        )
    )
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "this store cannot re-encode banks" in refused.details()
    bank = server.banks.GetBank(bank_pb2.GetBankRequest(name="t")).bank
    assert bank.reindex.state != bank_pb2.REINDEX_STATE_REINDEXING


def test_the_token_reaches_the_milvus_client(milvus_lite: LiteServer) -> None:
    settings = ServerSettings(
        store="milvus", milvus_uri=milvus_lite.uri, milvus_token="user:secret", milvus_db="default"
    )
    store = open_milvus_store(settings, StoreLimits())
    try:
        assert store.settings.token == "user:secret"  # type: ignore[attr-defined]
        assert "secret" not in repr(settings) and "secret" not in repr(store)
    finally:
        store.close()


def test_milvus_settings_come_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMNET_STORE", "milvus")
    monkeypatch.setenv("MEMNET_MILVUS_URI", "http://milvus:19530")
    monkeypatch.setenv("MEMNET_MILVUS_TOKEN", "root:Milvus")
    monkeypatch.setenv("MEMNET_MILVUS_DB", "banks")
    settings = load_settings(milvus_collection_prefix="team_a_", milvus_timeout_s=3.5)
    assert (settings.store, settings.milvus_uri, settings.milvus_db) == (
        "milvus",
        "http://milvus:19530",
        "banks",
    )
    assert settings.milvus_token is not None
    assert settings.milvus_token.get_secret_value() == "root:Milvus"
    assert (settings.milvus_collection_prefix, settings.milvus_timeout_s) == ("team_a_", 3.5)
    with pytest.raises(ValueError, match="milvus_collection_prefix"):
        load_settings(milvus_collection_prefix="bad-prefix")
    with pytest.raises(ValueError, match="store"):
        load_settings(store="qdrant")


def test_a_server_whose_milvus_is_down_starts_not_serving(
    start_server: StartServer, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    server = start_server(
        store="milvus", milvus_uri=f"http://127.0.0.1:{closed}", milvus_timeout_s=2.0
    )
    assert _health(server) == NOT_SERVING
    error = rpc_error(lambda: server.vector_bank("v", dim=4))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "Milvus" in error.details()


@pytest.mark.timeout(180)
def test_milvus_slow_then_down_then_back(start_server: StartServer, tmp_path: Path) -> None:
    lite = LiteServer.start(tmp_path / "lite")
    try:
        server = start_server(
            store="milvus",
            milvus_uri=lite.uri,
            milvus_collection_prefix=unique_prefix(),
            milvus_timeout_s=1.5,
        )
        server.vector_bank("v", dim=4)
        server.write_vectors("v", np.eye(4, dtype=np.float32), ids=["a", "b", "c", "d"])
        assert _recheck(server) == SERVING
        os.kill(lite.process.pid, signal.SIGSTOP)  # slow: it accepts, never answers
        try:
            slow = rpc_error(lambda: _query(server, "v"))
            assert slow.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "Milvus" in slow.details() and "1.5 s" in slow.details()
            assert _recheck(server) == NOT_SERVING
        finally:
            os.kill(lite.process.pid, signal.SIGCONT)
        assert _recheck(server) == SERVING
        lite.kill()  # down
        down = rpc_error(
            lambda: server.write_vectors("v", np.ones((1, 4), np.float32), ids=["lost"])
        )
        assert down.code() == grpc.StatusCode.UNAVAILABLE and "Milvus" in down.details()
        assert _recheck(server) == NOT_SERVING
        lite = lite.restart()
        assert _recheck(server) == SERVING
        answer = _query(server, "v")
        assert {m.id for m in answer.results[0].hops[0].memories} <= {"a", "b", "c", "d"}
        count = server.memories.CountMemories(memory_pb2.CountMemoriesRequest(bank="v"))
        assert count.count == 4  # every acknowledged write, and not the refused one
    finally:
        lite.kill()
