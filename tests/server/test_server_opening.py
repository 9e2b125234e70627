"""Banks that are still opening at startup: the server serves the others meanwhile."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from server_support import StartServer, rpc_error

from memnet.api.v1 import bank_pb2
from memnet.store import bank as bank_module
from memnet_server.app import BANKS_HEALTH_NAME


def _status(server: object, service: str) -> int:
    return server.health.Check(health_pb2.HealthCheckRequest(service=service)).status  # type: ignore[attr-defined]


def test_a_bank_still_opening_answers_failed_precondition_and_health_says_so(
    start_server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    first = start_server(data_dir=data_dir)
    for name in ("fast", "slow"):
        first.vector_bank(name)
        keys = np.ones((3, 8), np.float32)
        first.write_vectors(name, keys, ids=["a", "b", "c"])
    first.service.stop(0).wait(10)

    release = threading.Event()
    real_recover = bank_module.recover

    def recover(directory: Path, *args: object) -> object:
        if directory.name == "slow":
            release.wait(30)  # a long log replay
        return real_recover(directory, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(bank_module, "recover", recover)
    server = start_server(data_dir=data_dir, bank_open_wait_s=0.2)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert _status(server, "") == serving  # the open banks are served
    assert _status(server, BANKS_HEALTH_NAME) == health_pb2.HealthCheckResponse.NOT_SERVING
    fast = server.banks.GetBank(bank_pb2.GetBankRequest(name="fast")).bank
    assert fast.memory_count == 3
    listed = server.banks.ListBanks(bank_pb2.ListBanksRequest()).banks
    assert [b.spec.name for b in listed] == ["fast"]
    error = rpc_error(lambda: server.banks.GetBank(bank_pb2.GetBankRequest(name="slow")))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'slow' is opening" in (error.details() or "")
    release.set()
    assert server.service.engine.store.wait_until_open(30)
    # The watch starts with the status of now (the health flip follows the last open in
    # its own thread), then streams each change: SERVING must come, within its deadline.
    watch = server.health.Watch(
        health_pb2.HealthCheckRequest(service=BANKS_HEALTH_NAME), timeout=10
    )
    statuses = []
    for response in watch:
        statuses.append(response.status)
        if response.status == serving:
            break
    watch.cancel()
    assert statuses[-1] == serving and len(statuses) <= 2
    slow = server.banks.GetBank(bank_pb2.GetBankRequest(name="slow")).bank
    assert slow.memory_count == 3


def test_startup_waits_for_banks_that_open_in_time(
    start_server: StartServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start_server(data_dir=data_dir)
    first.vector_bank("b")
    first.service.stop(0).wait(10)
    server = start_server(data_dir=data_dir)
    assert _status(server, BANKS_HEALTH_NAME) == health_pb2.HealthCheckResponse.SERVING
    assert server.banks.GetBank(bank_pb2.GetBankRequest(name="b")).bank.spec.name == "b"
