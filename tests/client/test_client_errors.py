"""Typed exceptions for each status the server returns; client-side validation before any RPC."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from client_support import API_KEYS, FAST_RETRY, RunningServer

import memnet.errors as domain
from memnet_client import IndexSpec, MemnetClient, errors

DIM = 4


def test_status_codes_map_to_typed_exceptions_raised_from_the_rpc_error(
    client: MemnetClient, bank_name: Callable[[], str]
) -> None:
    name = bank_name()
    client.create_bank(name, model="vector", key_dim=DIM, value_dim=DIM, capacity=2)

    with pytest.raises(errors.NotFound) as not_found:
        client.count("no-such-bank")
    assert isinstance(not_found.value, domain.NotFound)  # one hierarchy for callers
    assert isinstance(not_found.value.__cause__, grpc.RpcError)
    assert not_found.value.code is grpc.StatusCode.NOT_FOUND
    assert "no-such-bank" in not_found.value.details

    with pytest.raises(errors.AlreadyExists) as exists:
        client.create_bank(name, model="vector", key_dim=DIM, value_dim=DIM)
    assert isinstance(exists.value, domain.AlreadyExists)

    client.write(name, keys=np.ones((1, DIM)), values=np.ones((1, DIM)), ids=["a"])
    with pytest.raises(errors.AlreadyExists):
        client.write(
            name, keys=np.ones((1, DIM)), values=np.ones((1, DIM)), ids=["a"], mode="insert"
        )

    with pytest.raises(errors.InvalidArgument) as invalid:
        client.query(name, query_vectors=np.ones((1, DIM + 1)))
    assert isinstance(invalid.value, domain.InvalidArgument)
    assert invalid.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert not isinstance(invalid.value, errors.ValidationError)

    with pytest.raises(errors.ResourceExhausted):  # capacity 2, policy "reject"
        client.write(name, keys=np.ones((2, DIM)), values=np.ones((2, DIM)))
    assert client.count(name) == 1


def test_auth_statuses_are_typed_and_the_api_key_is_sent(
    auth_server: RunningServer,
) -> None:
    writer_key = API_KEYS["keys"][0]["key"]
    reader_key = API_KEYS["keys"][1]["key"]
    anonymous = MemnetClient(auth_server.target, retry=FAST_RETRY)
    with anonymous, pytest.raises(errors.Unauthenticated) as missing:
        anonymous.list_banks()
    assert isinstance(missing.value, domain.Unauthenticated)
    wrong = MemnetClient(auth_server.target, api_key="wrong", retry=FAST_RETRY)
    with wrong, pytest.raises(errors.Unauthenticated):
        wrong.list_banks()
    with MemnetClient(auth_server.target, api_key=writer_key) as writer:
        writer.create_bank("shared-auth", model="vector", key_dim=DIM, value_dim=DIM)
        writer.create_bank("private-auth", model="vector", key_dim=DIM, value_dim=DIM)
        assert writer.metadata == (("authorization", f"Bearer {writer_key}"),)
    with MemnetClient(auth_server.target, api_key=reader_key) as reader:
        assert reader.count("shared-auth") == 0
        with pytest.raises(errors.PermissionDenied) as read_only:
            reader.write("shared-auth", keys=np.ones((1, DIM)), values=np.ones((1, DIM)))
        assert isinstance(read_only.value, domain.PermissionDenied)
        with pytest.raises(errors.PermissionDenied):
            reader.count("private-auth")


@pytest.fixture
def unreachable() -> Iterator[MemnetClient]:
    """A client whose target has no server: any RPC would fail with UNAVAILABLE."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with MemnetClient(f"127.0.0.1:{port}", retry=FAST_RETRY, timeout_s=2.0) as sdk:
        yield sdk


def test_unreachable_server_raises_unavailable(unreachable: MemnetClient) -> None:
    with pytest.raises(errors.Unavailable) as unavailable:
        unreachable.list_banks()
    assert isinstance(unavailable.value, domain.MemnetError)
    assert unavailable.value.code is grpc.StatusCode.UNAVAILABLE


GOOD = np.ones((2, DIM))
BAD_CALLS: dict[str, tuple[Callable[[MemnetClient], Any], str]] = {
    "nan key": (lambda c: c.write("b", keys=np.array([[np.nan] * DIM]), values=GOOD[:1]), "keys"),
    "overflow to inf": (
        lambda c: c.write("b", keys=np.full((1, DIM), 1e300), values=GOOD[:1]),
        "keys",
    ),
    "1-d keys": (lambda c: c.write("b", keys=np.ones(DIM), values=GOOD[:1]), "keys"),
    "ragged keys": (lambda c: c.write("b", keys=[[1.0, 2.0], [3.0]], values=GOOD), "keys"),
    "list with a bad name": (lambda c: c.list("-x"), "bank"),
    "question not a string": (lambda c: c.query("b", ["Where?"]), "question"),  # type: ignore[arg-type]
    "complex dtype": (lambda c: c.write("b", keys=GOOD.astype(complex), values=GOOD), "keys"),
    "string dtype": (lambda c: c.write("b", keys=[["a"] * DIM] * 2, values=GOOD), "keys"),
    "keys without values": (lambda c: c.write("b", keys=GOOD), "keys"),
    "row counts disagree": (lambda c: c.write("b", keys=GOOD, values=GOOD[:1]), "values"),
    "ids count": (lambda c: c.write("b", keys=GOOD, values=GOOD, ids=["x"]), "ids"),
    "duplicate ids": (lambda c: c.write("b", keys=GOOD, values=GOOD, ids=["x", "x"]), "ids[1]"),
    "id too long": (lambda c: c.write("b", ["t"], ids=["x" * 257]), "ids[0]"),
    "metadata not JSON": (lambda c: c.write("b", ["t"], metadata=[{"x": object()}]), "metadata[0]"),
    "metadata too big": (
        lambda c: c.write("b", ["t"], metadata=[{"x": "y" * 70_000}]),
        "metadata[0]",
    ),
    "metadata not a list": (lambda c: c.write("b", ["t"], metadata={"a": 1}), "metadata"),  # type: ignore[arg-type]
    "texts as a bare string": (lambda c: c.write("b", "Mary went home."), "texts"),
    "empty text": (lambda c: c.write("b", ["ok", "  "]), "texts[1]"),
    "nothing to write": (lambda c: c.write("b"), "texts"),
    "bad mode": (lambda c: c.write("b", ["t"], mode="replace"), "mode"),  # type: ignore[arg-type]
    "bad bank name": (lambda c: c.count("-starts-with-dash"), "bank"),
    "long bank name": (lambda c: c.get_bank("b" * 65), "name"),
    "question and vectors": (lambda c: c.query("b", "q", query_vectors=GOOD), "question"),
    "no question": (lambda c: c.query("b"), "question"),
    "questions as a bare string": (lambda c: c.query("b", questions="Where?"), "questions"),
    "negative k": (lambda c: c.query("b", "q", k=-1), "k"),
    "float hops": (lambda c: c.query("b", "q", hops=1.5), "hops"),  # type: ignore[arg-type]
    "bad attention": (lambda c: c.query("b", "q", attention="dense"), "attention"),  # type: ignore[arg-type]
    "query vectors 3-d": (
        lambda c: c.query("b", query_vectors=np.ones((1, 1, DIM))),
        "query_vectors",
    ),
    "zero ef_search": (lambda c: c.query("b", "q", ef_search=0), "ef_search"),
    "zero tail_samples": (lambda c: c.query("b", "q", tail_samples=0), "tail_samples"),
    "float tail_samples": (lambda c: c.query("b", "q", tail_samples=8.0), "tail_samples"),  # type: ignore[arg-type]
    "page size": (lambda c: c.list_page("b", page_size=0), "page_size"),
    "page size too big": (lambda c: c.list_page("b", page_size=1001), "page_size"),
    "negative timeout": (lambda c: c.count("b", timeout_s=0), "timeout_s"),
    "bad metric": (lambda c: c.create_bank("b", metric="manhattan"), "metric"),  # type: ignore[arg-type]
    "negative dim": (lambda c: c.create_bank("b", key_dim=-1), "key_dim"),
    "index as a dict": (lambda c: c.create_bank("b", index={"kind": "hnsw"}), "index"),  # type: ignore[arg-type]
    "unknown index": (lambda c: c.create_bank("b", index="lsh"), "index"),  # type: ignore[arg-type]
    "zero index param": (
        lambda c: c.create_bank("b", index=IndexSpec(kind="hnsw", hnsw_m=0)),
        "index.hnsw_m",
    ),
    "memory over chunk": (
        lambda c: c.write(
            "b", keys=np.ones((1, 5000)), values=np.ones((1, 5000)), chunk_bytes=16384
        ),
        "chunk_bytes",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_client_side_validation_raises_before_any_rpc(unreachable: MemnetClient, case: str) -> None:
    call, field = BAD_CALLS[case]
    # Against a target with no server, reaching the wire would raise Unavailable instead.
    with pytest.raises(errors.ValidationError) as rejected:
        call(unreachable)
    assert isinstance(rejected.value, ValueError)
    assert isinstance(rejected.value, domain.InvalidArgument)
    assert rejected.value.field is not None and rejected.value.field.startswith(field)


def test_constructor_arguments_are_validated() -> None:
    with pytest.raises(errors.ValidationError, match="max_message_bytes"):
        MemnetClient(max_message_bytes=1000)
    with pytest.raises(errors.ValidationError, match="timeout_s"):
        MemnetClient(timeout_s=-1)
    with pytest.raises(errors.ValidationError, match="api_key"):
        MemnetClient(api_key=" ")
