"""API keys (on and off) and TLS (server-only and mutual) with certificates made here."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from server_support import Running, StartServer, rpc_error

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, bank_pb2_grpc, memory_pb2, model_pb2, query_pb2

WRITER, READER, HASHED = "writer-key-1", "reader-key-2", "hashed-key-3"


def _keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps(
            {
                "keys": [
                    {"name": "ingest", "key": WRITER, "banks": ["*"], "rights": "write"},
                    {"name": "reader", "key": READER, "banks": ["pub-*"], "rights": "read"},
                    {
                        "name": "hashed",
                        "key_sha256": hashlib.sha256(HASHED.encode()).hexdigest(),
                        "banks": ["pub-a"],
                        "rights": "write",
                    },
                ]
            }
        )
    )
    return path


def _as(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def _bank(name: str) -> bank_pb2.CreateBankRequest:
    spec = bank_pb2.BankSpec(name=name, model="vector", key_dim=2, value_dim=2)
    return bank_pb2.CreateBankRequest(spec=spec)


def _write(bank: str) -> memory_pb2.WriteMemoriesRequest:
    keys = to_tensor(np.eye(2, dtype=np.float32))
    batch = memory_pb2.MemoryBatch(keys=keys, values=keys)
    return memory_pb2.WriteMemoriesRequest(bank=bank, batch=batch)


def test_api_keys_gate_every_call_by_bank_and_right(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(api_keys_file=_keys_file(tmp_path))
    for name in ("pub-a", "priv"):
        server.banks.CreateBank(_bank(name), metadata=_as(WRITER))
    server.memories.WriteMemories(_write("pub-a"), metadata=_as(WRITER))

    def code(call, **kwargs) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
        try:
            call(**kwargs)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    count = server.memories.CountMemories
    pub, priv = (memory_pb2.CountMemoriesRequest(bank=b) for b in ("pub-a", "priv"))
    assert code(count, request=pub) == grpc.StatusCode.UNAUTHENTICATED
    assert code(count, request=pub, metadata=_as("wrong")) == grpc.StatusCode.UNAUTHENTICATED
    assert code(count, request=pub, metadata=(("authorization", READER),)) == (
        grpc.StatusCode.UNAUTHENTICATED  # no "Bearer"
    )
    assert code(count, request=pub, metadata=_as(READER)) == grpc.StatusCode.OK
    assert code(count, request=priv, metadata=_as(READER)) == grpc.StatusCode.PERMISSION_DENIED
    write = server.memories.WriteMemories
    assert code(write, request=_write("pub-a"), metadata=_as(READER)) == (
        grpc.StatusCode.PERMISSION_DENIED  # read-only key
    )
    assert code(write, request=_write("pub-a"), metadata=_as(HASHED)) == grpc.StatusCode.OK
    assert code(write, request=_write("priv"), metadata=_as(HASHED)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    stream = server.memories.StreamWriteMemories
    request = memory_pb2.StreamWriteMemoriesRequest(bank="priv", batch=_write("priv").batch)
    assert code(stream, request_iterator=iter([request]), metadata=_as(READER)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    query = query_pb2.QueryRequest(bank="pub-a", query_vectors=to_tensor(np.ones((1, 2))))
    assert code(server.queries.Query, request=query, metadata=_as(READER)) == grpc.StatusCode.OK
    delete = server.banks.DeleteBank
    assert code(delete, request=bank_pb2.DeleteBankRequest(name="pub-a"), metadata=_as(READER)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    listed = server.banks.ListBanks(bank_pb2.ListBanksRequest(), metadata=_as(READER))
    assert [bank.spec.name for bank in listed.banks] == ["pub-a"]
    every = server.banks.ListBanks(bank_pb2.ListBanksRequest(), metadata=_as(WRITER))
    assert [bank.spec.name for bank in every.banks] == ["priv", "pub-a"]
    assert server.models.ListModels(model_pb2.ListModelsRequest(), metadata=_as(READER)).models
    health = server.health.Check(health_pb2.HealthCheckRequest())  # no key needed
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    counted = server.memories.CountMemories(pub, metadata=_as(WRITER)).count
    assert counted == 4  # two writes went through, the refused ones stored nothing


def test_without_a_keys_file_auth_is_off(server: Running) -> None:
    server.banks.CreateBank(_bank("open"))
    server.banks.CreateBank(_bank("open2"), metadata=_as("anything"))
    assert len(server.banks.ListBanks(bank_pb2.ListBanksRequest()).banks) == 2


def test_a_bad_keys_file_stops_startup(start_server: StartServer, tmp_path: Path) -> None:
    bad = tmp_path / "keys.json"
    bad.write_text(json.dumps({"keys": [{"key": "x", "banks": ["*"], "rights": "root"}]}))
    with pytest.raises(ValueError, match="rights"):
        start_server(api_keys_file=bad)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    directory = tmp_path_factory.mktemp("tls")
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=memnet test CA", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", *curve, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=memnet {name}", cwd=directory)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                 "-extfile", "san.ext", cwd=directory)  # fmt: skip
    return directory


def _ping(channel: grpc.Channel) -> int:
    """The number of banks, asked over ``channel``."""
    stub = bank_pb2_grpc.BankServiceStub(channel)
    return len(stub.ListBanks(bank_pb2.ListBanksRequest(), timeout=5).banks)


def test_tls_serves_only_tls_clients(start_server: StartServer, certificates: Path) -> None:
    server = start_server(
        tls_cert_file=certificates / "server.pem", tls_key_file=certificates / "server.key"
    )
    target = f"127.0.0.1:{server.port}"
    trusted = grpc.ssl_channel_credentials(root_certificates=(certificates / "ca.pem").read_bytes())
    with grpc.secure_channel(target, trusted) as channel:
        assert _ping(channel) == 0
    with grpc.insecure_channel(target) as channel:
        error = rpc_error(lambda: _ping(channel))
        assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate(
    start_server: StartServer, certificates: Path
) -> None:
    server = start_server(
        tls_cert_file=certificates / "server.pem",
        tls_key_file=certificates / "server.key",
        tls_client_ca_file=certificates / "ca.pem",
    )
    target = f"127.0.0.1:{server.port}"
    ca = (certificates / "ca.pem").read_bytes()
    with grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=ca)) as channel:
        assert rpc_error(lambda: _ping(channel)).code() == grpc.StatusCode.UNAVAILABLE
    client = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=(certificates / "client.key").read_bytes(),
        certificate_chain=(certificates / "client.pem").read_bytes(),
    )
    with grpc.secure_channel(target, client) as channel:
        assert _ping(channel) == 0
