"""The call wrapper and the channel: retries, deadlines, metadata, chunking, TLS, the raw stubs."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from client_support import RunningServer, self_signed, serve

from memnet.api.v1 import bank_pb2, bank_pb2_grpc, memory_pb2, memory_pb2_grpc
from memnet_client import MemnetClient, RetryPolicy, TlsConfig, errors
from memnet_client._channel import channel_options

QUICK = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05)


class FlakyService(bank_pb2_grpc.BankServiceServicer, memory_pb2_grpc.MemoryServiceServicer):
    """Fails the first ``failures`` calls with UNAVAILABLE; records each call's metadata."""

    def __init__(self, failures: int = 0, delay_s: float = 0.0) -> None:
        self.failures = failures
        self.delay_s = delay_s
        self.calls = 0
        self.metadata: list[dict[str, str | bytes]] = []
        self.fail_at: dict[int, grpc.StatusCode] = {}  # call number -> status

    def _enter(self, context: grpc.ServicerContext) -> None:
        self.calls += 1
        self.metadata.append(dict(context.invocation_metadata()))
        time.sleep(self.delay_s)
        if self.calls <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        if self.calls in self.fail_at:
            context.abort(self.fail_at[self.calls], f"call {self.calls} refused")

    def ListBanks(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter(context)
        return bank_pb2.ListBanksResponse()

    def CreateBank(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter(context)
        return bank_pb2.CreateBankResponse(bank=bank_pb2.Bank(spec=request.spec))

    def WriteMemories(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter(context)
        return memory_pb2.WriteMemoriesResponse(
            ids=[m.id or "generated" for m in request.batch.memories]
        )


@pytest.fixture
def fake() -> Iterator[Callable[..., tuple[FlakyService, str]]]:
    servers: list[grpc.Server] = []

    def start(**options: Any) -> tuple[FlakyService, str]:
        service = FlakyService(**options)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        bank_pb2_grpc.add_BankServiceServicer_to_server(service, server)
        memory_pb2_grpc.add_MemoryServiceServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return service, f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(0)


def test_idempotent_calls_retry_unavailable_until_they_succeed(fake: Callable[..., Any]) -> None:
    service, target = fake(failures=2)
    with MemnetClient(target, retry=QUICK) as client:
        assert client.list_banks() == []
    assert service.calls == 3


def test_retries_are_bounded_by_max_attempts(fake: Callable[..., Any]) -> None:
    service, target = fake(failures=10)
    with MemnetClient(target, retry=QUICK) as client, pytest.raises(errors.Unavailable) as error:
        client.list_banks()
    assert service.calls == QUICK.max_attempts
    assert isinstance(error.value.__cause__, grpc.RpcError)
    assert error.value.details == "warming up"


def test_non_idempotent_calls_are_not_retried(fake: Callable[..., Any]) -> None:
    service, target = fake(failures=1)
    with MemnetClient(target, retry=QUICK) as client, pytest.raises(errors.Unavailable):
        client.create_bank("b", model="vector", key_dim=2, value_dim=2)
    assert service.calls == 1


def test_writes_retry_only_upserts_with_client_ids(fake: Callable[..., Any]) -> None:
    service, target = fake(failures=1)
    rows = np.ones((2, 2))
    with MemnetClient(target, retry=QUICK) as client:
        with pytest.raises(errors.Unavailable):
            client.write("b", keys=rows, values=rows)  # server-generated ids: not retried
        assert service.calls == 1
        service.failures = 2
        with pytest.raises(errors.Unavailable):
            client.write("b", keys=rows, values=rows, ids=["a", "b"], mode="insert")
        assert service.calls == 2
        service.failures = 3
        result = client.write("b", keys=rows, values=rows, ids=["a", "b"])  # upsert: retried
    assert result.ids == ["a", "b"] and service.calls == 4


def test_a_failed_chunk_reports_what_earlier_chunks_committed(fake: Callable[..., Any]) -> None:
    service, target = fake()
    service.fail_at = {2: grpc.StatusCode.INVALID_ARGUMENT}
    rows = np.ones((5, 2))
    with (
        MemnetClient(target, retry=QUICK) as client,
        pytest.raises(errors.InvalidArgument) as error,
    ):
        client.write("b", keys=rows, values=rows, ids=list("abcde"), max_chunk_memories=2)
    assert service.calls == 2
    assert error.value.__notes__ == [
        "2 of 5 memories were written durably by the first 1 request(s) before this error"
    ]


def test_deadline_applies_to_each_call(fake: Callable[..., Any]) -> None:
    _, target = fake(delay_s=0.5)
    with MemnetClient(target, retry=QUICK, timeout_s=5.0) as client:
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceeded) as error:
            client.list_banks(timeout_s=0.1)
        assert time.monotonic() - started < 0.45
        assert error.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    rows = np.ones((1, 2))
    with MemnetClient(target, retry=QUICK, timeout_s=5.0, write_timeout_s=0.1) as client:
        assert client.list_banks() == []  # reads: timeout_s
        with pytest.raises(errors.DeadlineExceeded):  # writes: write_timeout_s
            client.write("b", keys=rows, values=rows, ids=["a"])


def test_channel_options_carry_the_limits_and_keepalive() -> None:
    options = dict(
        channel_options(max_message_bytes=2**20, keepalive_s=60, tls=TlsConfig(server_name="x"))
    )
    assert options["grpc.max_send_message_length"] == 2**20
    assert options["grpc.max_receive_message_length"] == 2**20
    assert options["grpc.keepalive_time_ms"] == 60_000
    assert options["grpc.ssl_target_name_override"] == "x"


def test_api_key_and_extra_metadata_are_sent_with_every_call(fake: Callable[..., Any]) -> None:
    service, target = fake(failures=1)
    with MemnetClient(
        target, api_key="s3cret", metadata=[("x-request-source", "tests")], retry=QUICK
    ) as client:
        client.list_banks()
    assert service.calls == 2
    for metadata in service.metadata:
        assert metadata["authorization"] == "Bearer s3cret"
        assert metadata["x-request-source"] == "tests"


def test_large_writes_are_chunked_under_the_message_limit(
    server: RunningServer, bank_name: Callable[[], str], capfd: pytest.CaptureFixture[str]
) -> None:
    limit = 64 * 1024
    n, dim = 600, 32  # 600 x 256 bytes of vectors: ~150 KiB, over twice the limit
    keys = np.random.default_rng(1).normal(size=(n, dim)).astype(np.float32)
    name = bank_name()
    with MemnetClient(server.target, max_message_bytes=limit) as client:
        client.create_bank(name, model="vector", key_dim=dim, value_dim=dim)
        ids = [f"m{i}" for i in range(n)]
        whole = memory_pb2.WriteMemoriesRequest(
            bank=name,
            batch=memory_pb2.MemoryBatch(memories=[memory_pb2.MemoryInput(id=i) for i in ids]),
        )
        whole.batch.keys.shape[:] = [n, dim]
        whole.batch.keys.data = keys.tobytes()
        whole.batch.values.CopyFrom(whole.batch.keys)
        with pytest.raises(grpc.RpcError) as too_big:  # the escape hatch: one raw message
            client.stubs.memory.WriteMemories(whole, metadata=client.metadata, timeout=5)
        assert too_big.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED

        result = client.write(
            name, [f"t{i}" for i in range(n)], keys=keys, values=keys, ids=ids, progress=True
        )
        assert result.requests >= 3 and result.ids == ids and result.inserted == n
        assert client.count(name) == n
        last = client.get(name, ["m0", f"m{n - 1}"], include_vectors=True)
        np.testing.assert_array_equal(last[0].key, keys[0])
        np.testing.assert_array_equal(last[1].value, keys[n - 1])
        smaller = client.write(name, keys=keys, values=keys, ids=ids, chunk_bytes=16 * 1024)
        assert smaller.requests > result.requests and smaller.replaced == n
        by_count = client.write(name, keys=keys[:10], values=keys[:10], max_chunk_memories=3)
        assert by_count.requests == 4
    assert "mem" in capfd.readouterr().err  # the tqdm bar went to stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_with_server_name_override_and_client_certificate(tmp_path: Path) -> None:
    server_cert, server_key = self_signed(tmp_path, "memnet.test")
    client_cert, client_key = self_signed(tmp_path, "sdk-client")
    with serve(
        tmp_path / "data",
        tls_cert_file=server_cert,
        tls_key_file=server_key,
        tls_client_ca_file=client_cert,
    ) as running:
        tls = TlsConfig.from_files(
            server_cert, cert=client_cert, key=client_key, server_name="memnet.test"
        )
        with MemnetClient(running.target, tls=tls) as client:
            assert client.list_banks() == []
        no_client_cert = TlsConfig.from_files(server_cert, server_name="memnet.test")
        with (
            MemnetClient(
                running.target, tls=no_client_cert, retry=RetryPolicy(max_attempts=1)
            ) as client,
            pytest.raises(errors.Unavailable),
        ):
            client.list_banks(timeout_s=3)
        system_roots = MemnetClient(running.target, tls=True, retry=RetryPolicy(max_attempts=1))
        with system_roots, pytest.raises(errors.Unavailable):  # self-signed: not trusted
            system_roots.list_banks(timeout_s=3)
        plaintext = MemnetClient(running.target, retry=RetryPolicy(max_attempts=1))
        with plaintext, pytest.raises(errors.Unavailable):
            plaintext.list_banks(timeout_s=3)
    with pytest.raises(errors.ValidationError):
        TlsConfig.from_files(server_cert, cert=client_cert)
