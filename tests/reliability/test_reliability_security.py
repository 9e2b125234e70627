"""Security: API keys per bank and right, TLS, and keys kept out of the logs.

One server with TLS (a certificate made here by ``openssl``) and an API keys file
with random keys: ``admin`` writes every bank, ``a-writer`` writes bank-a only,
``a-reader`` reads bank-a only. Every memnet RPC is tried with no key, a wrong key,
and each key against bank-a and bank-b; every refusal must leave the banks as they
were, and the bank-b refusals must not reveal whether a bank exists. All server log
records (DEBUG and up, with their structured fields) are searched for the keys.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from reliability_support import (
    LOCALHOST,
    Stubs,
    in_process_server,
    keys_for,
    record_figures,
    vector_bank_request,
    write_request,
)

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, model_pb2, model_pb2_grpc, query_pb2
from memnet_client import MemnetClient, PermissionDenied, TlsConfig, Unauthenticated
from memnet_server.logs import JsonFormatter

DIM = 4
PRINCIPALS = ("admin", "a-writer", "a-reader")
KEYS = {
    name: f"mk-{name}-{secrets.token_urlsafe(24)}" for name in ("admin", "a-writer", "a-reader")
}
WRONG_KEY = f"mk-wrong-{secrets.token_urlsafe(24)}"
OK = grpc.StatusCode.OK
DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=30)


def _certificates(directory: Path) -> None:
    """ca.pem signs server.pem (127.0.0.1); other-ca.pem is a CA the server never used."""
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        _openssl(directory, "req", "-x509", *curve, "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                 "-days", "2", "-subj", f"/CN=memnet reliability {ca}")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(directory, "req", *curve, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=memnet reliability server")  # fmt: skip
    _openssl(directory, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2",
             "-extfile", "san.ext")  # fmt: skip


@dataclass
class Secured:
    port: int
    certificates: Path
    log: io.StringIO

    def channel(self, ca: str = "ca.pem") -> grpc.Channel:
        root = (self.certificates / ca).read_bytes()
        credentials = grpc.ssl_channel_credentials(root_certificates=root)
        return grpc.secure_channel(f"{LOCALHOST}:{self.port}", credentials)

    def client(self, key: str | None) -> MemnetClient:
        tls = TlsConfig.from_files(self.certificates / "ca.pem")
        return MemnetClient(f"{LOCALHOST}:{self.port}", api_key=key, tls=tls)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    directory = tmp_path_factory.mktemp("security")
    _certificates(directory)
    keys_file = directory / "keys.json"
    entries = [
        {"name": "admin", "key": KEYS["admin"], "banks": ["*"], "rights": "write"},
        {"name": "a-writer", "key": KEYS["a-writer"], "banks": ["bank-a"], "rights": "write"},
        {
            "name": "a-reader",
            "key_sha256": hashlib.sha256(KEYS["a-reader"].encode()).hexdigest(),
            "banks": ["bank-a"],
            "rights": "read",
        },
    ]
    keys_file.write_text(json.dumps({"keys": entries}))
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with in_process_server(
            directory / "data",
            api_keys_file=keys_file,
            tls_cert_file=directory / "server.pem",
            tls_key_file=directory / "server.key",
            log_level="DEBUG",
        ) as (_, port):
            secured = Secured(port, directory, log)
            with secured.client(KEYS["admin"]) as admin:
                for bank in ("bank-a", "bank-b"):
                    admin.create_bank(bank, model="vector", key_dim=DIM, value_dim=DIM)
                    ids = [f"{bank}-{i}" for i in range(3)]
                    keys = keys_for(ids, DIM)
                    admin.write(bank, keys=keys, values=keys, ids=ids)
            yield secured
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _metadata(key: str | None) -> tuple[tuple[str, str], ...]:
    return () if key is None else (("authorization", f"Bearer {key}"),)


def _calls(stubs: Stubs, bank: str) -> dict[str, tuple[Callable[..., Any], Any, bool]]:
    """Every memnet RPC that names ``bank``: name → (stub method, request, writes?)."""
    vectors = to_tensor(np.ones((1, DIM), np.float32))
    ids = [f"{bank}-new"]
    write = write_request(bank, keys_for(ids, DIM), ids)
    stream = memory_pb2.StreamWriteMemoriesRequest(bank=bank, batch=write.batch)
    return {
        "CreateBank": (stubs.banks.CreateBank, vector_bank_request(f"{bank}-x", DIM), True),
        "GetBank": (stubs.banks.GetBank, bank_pb2.GetBankRequest(name=bank), False),
        "DeleteBank": (stubs.banks.DeleteBank, bank_pb2.DeleteBankRequest(name=bank), True),
        "WriteMemories": (stubs.memories.WriteMemories, write, True),
        "StreamWriteMemories": (
            lambda r, **kw: stubs.memories.StreamWriteMemories(iter([r]), **kw),
            stream,
            True,
        ),
        "GetMemories": (
            stubs.memories.GetMemories,
            memory_pb2.GetMemoriesRequest(bank=bank, ids=[f"{bank}-0"]),
            False,
        ),
        "DeleteMemories": (
            stubs.memories.DeleteMemories,
            memory_pb2.DeleteMemoriesRequest(bank=bank, ids=[f"{bank}-0"]),
            True,
        ),
        "ListMemories": (
            stubs.memories.ListMemories,
            memory_pb2.ListMemoriesRequest(bank=bank),
            False,
        ),
        "CountMemories": (
            stubs.memories.CountMemories,
            memory_pb2.CountMemoriesRequest(bank=bank),
            False,
        ),
        "Query": (
            stubs.queries.Query,
            query_pb2.QueryRequest(bank=bank, query_vectors=vectors, k=2),
            False,
        ),
    }


def _code(method: Callable[..., Any], request: Any, key: str | None) -> tuple[grpc.StatusCode, str]:
    try:
        method(request, metadata=_metadata(key), timeout=10)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return OK, ""


def _banks(secured: Secured) -> dict[str, tuple[int, int]]:
    with secured.client(KEYS["admin"]) as admin:
        return {b.spec.name: (b.memory_count, b.last_seq) for b in admin.list_banks()}


def test_no_key_or_a_wrong_key_is_unauthenticated_on_every_rpc(secured: Secured) -> None:
    before = _banks(secured)
    refused = 0
    with secured.channel() as channel:
        stubs = Stubs(channel)
        models = model_pb2_grpc.ModelServiceStub(channel)
        calls = {
            **_calls(stubs, "bank-a"),
            "ListBanks": (stubs.banks.ListBanks, bank_pb2.ListBanksRequest(), False),
            "ListModels": (models.ListModels, model_pb2.ListModelsRequest(), False),
            "GetModel": (models.GetModel, model_pb2.GetModelRequest(name="vector"), False),
        }
        for name, (method, request, _) in calls.items():
            for key in (None, WRONG_KEY, ""):
                code, details = _code(method, request, key)
                assert code is UNAUTHENTICATED, f"{name} with key {key!r:.12}: {code} {details}"
                assert WRONG_KEY not in details
                refused += 1
            bad_scheme = (("authorization", KEYS["admin"]),)  # the key without "Bearer"
            with pytest.raises(grpc.RpcError) as caught:
                method(request, metadata=bad_scheme, timeout=10)
            assert caught.value.code() is UNAUTHENTICATED, name
            refused += 1
    with secured.client(None) as anonymous, pytest.raises(Unauthenticated):
        anonymous.count("bank-a")
    assert _banks(secured) == before
    record_figures("security-unauthenticated", rpcs=len(calls), refused_calls=refused)


def test_a_read_only_key_can_read_but_not_write(secured: Secured) -> None:
    before = _banks(secured)
    with secured.channel() as channel:
        for name, (method, request, writes) in _calls(Stubs(channel), "bank-a").items():
            code, details = _code(method, request, KEYS["a-reader"])
            assert code is (DENIED if writes else OK), f"{name}: {code} {details}"
    with secured.client(KEYS["a-reader"]) as reader, pytest.raises(PermissionDenied):
        reader.write("bank-a", keys=np.ones((1, DIM)), values=np.ones((1, DIM)), ids=["x"])
    assert _banks(secured) == before


def test_a_key_for_bank_a_can_neither_read_nor_list_bank_b(secured: Secured) -> None:
    before = _banks(secured)
    with secured.channel() as channel:
        stubs = Stubs(channel)
        for key_name in ("a-writer", "a-reader"):
            key = KEYS[key_name]
            for bank in ("bank-b", "no-such-bank"):  # the same answer: existence is not leaked
                for name, (method, request, _) in _calls(stubs, bank).items():
                    code, details = _code(method, request, key)
                    assert code is DENIED, f"{key_name} {name} on {bank}: {code} {details}"
            listed = stubs.banks.ListBanks(bank_pb2.ListBanksRequest(), metadata=_metadata(key))
            assert [b.spec.name for b in listed.banks] == ["bank-a"], key_name
        ids = ["smuggled"]
        write = write_request("bank-a", keys_for(ids, DIM), ids)
        smuggle = [
            memory_pb2.StreamWriteMemoriesRequest(bank="bank-a", batch=write.batch),
            memory_pb2.StreamWriteMemoriesRequest(bank="bank-b", batch=write.batch),
        ]
        with pytest.raises(grpc.RpcError) as caught:
            stubs.memories.StreamWriteMemories(
                iter(smuggle), metadata=_metadata(KEYS["a-writer"]), timeout=10
            )
        assert caught.value.code() in (DENIED, grpc.StatusCode.INVALID_ARGUMENT)
    after = _banks(secured)
    assert after["bank-b"] == before["bank-b"], "bank-b changed"
    assert after["bank-a"][0] - before["bank-a"][0] <= 1  # the stream's first message may commit


def test_a_tls_client_with_the_wrong_ca_or_no_tls_is_refused(secured: Secured) -> None:
    request = memory_pb2.CountMemoriesRequest(bank="bank-a")
    with secured.channel("other-ca.pem") as channel:
        code, _ = _code(Stubs(channel).memories.CountMemories, request, KEYS["admin"])
        assert code is grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(f"{LOCALHOST}:{secured.port}") as channel:
        code, _ = _code(Stubs(channel).memories.CountMemories, request, KEYS["admin"])
        assert code is grpc.StatusCode.UNAVAILABLE
    with secured.channel() as channel:  # the right CA works
        code, details = _code(Stubs(channel).memories.CountMemories, request, KEYS["admin"])
        assert code is OK, details


def test_keys_never_appear_in_the_logs(secured: Secured) -> None:
    with secured.channel() as channel:  # one more round of failures, all logged at DEBUG/INFO
        stubs = Stubs(channel)
        for key in (*KEYS.values(), WRONG_KEY, None):
            for method, request, _ in _calls(stubs, "bank-b").values():
                _code(method, request, key)
    text = secured.log.getvalue()
    assert "PERMISSION_DENIED" in text and "UNAUTHENTICATED" in text, "no refusal was logged"
    secrets_and_digests = [
        *KEYS.values(),
        WRONG_KEY,
        *(hashlib.sha256(key.encode()).hexdigest() for key in (*KEYS.values(), WRONG_KEY)),
    ]
    leaked = [s[:10] for s in secrets_and_digests if s in text]
    assert not leaked, f"keys (or their SHA-256) appear in the server log: {leaked}"
    record_figures(
        "security-logs",
        log_lines_searched=text.count("\n"),
        secrets_searched=len(secrets_and_digests),
        leaked=0,
    )
