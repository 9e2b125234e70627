"""Hostile input that used to reach INTERNAL or an oversized status: factory strings memnet
cannot drive, JSON at the edges of Python's parser, values far past any limit echoed back."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from server_support import Running, StartServer, rpc_error

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, query_pb2
from memnet.errors import InvalidArgument
from memnet_server.errors import MAX_STATUS_MESSAGE_CHARS, status_for

HUGE_INT = "9" * 5000  # past Python's 4,300-digit limit for int(str)
LONE_SURROGATE = '"\\ud800"'  # a JSON escape that no UTF-8 text can hold


def _factory_bank(server: Running, name: str, factory: str) -> bank_pb2.Bank:
    return server.vector_bank(
        name, 16, index=bank_pb2.IndexSpec(kind=bank_pb2.INDEX_KIND_FACTORY, factory=factory)
    )


@pytest.mark.parametrize(
    ("factory", "reason"),
    [
        ("IVF4,Flat,RFlat", "re-scores every candidate"),
        ("IDMap,Flat", "labels memories itself"),
        ("IDMap2,Flat", "labels memories itself"),
        ("NSG16", "cannot grow with writes"),
        ("IVF10000000,Flat", "above 1048576"),
    ],
)
def test_create_bank_refuses_a_factory_string_naming_spec_index_factory(
    server: Running, factory: str, reason: str
) -> None:
    error = rpc_error(lambda: _factory_bank(server, "f", factory))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(f"spec.index.factory {factory!r}")
    assert reason in (error.details() or "")
    assert not server.banks.ListBanks(bank_pb2.ListBanksRequest()).banks


def test_factory_pq_bank_acknowledges_only_what_it_keeps_across_a_restart(
    start_server: StartServer, tmp_path: object
) -> None:
    first = start_server()
    _factory_bank(first, "pq", "IVF4,PQ8")
    keys = np.random.default_rng(0).standard_normal((400, 16)).astype(np.float32)
    for lo in range(0, 400, 100):  # 156 (= 39 * IVF4) used to trigger a PQ training that failed
        first.write_vectors("pq", keys[lo : lo + 100], ids=[f"m{i}" for i in range(lo, lo + 100)])
    data_dir = first.settings.data_dir
    first.channel.close()
    first.service.stop(0).wait(10)
    second = start_server(data_dir=data_dir)
    bank = second.banks.GetBank(bank_pb2.GetBankRequest(name="pq")).bank
    assert bank.memory_count == 400
    got = second.memories.GetMemories(
        memory_pb2.GetMemoriesRequest(bank="pq", ids=["m0", "m399"])
    ).memories
    assert [m.id for m in got] == ["m0", "m399"]


@pytest.mark.parametrize(
    ("label", "value"), [("huge int", HUGE_INT), ("lone surrogate", LONE_SURROGATE)]
)
def test_metadata_json_at_the_parser_edges_is_invalid_argument(
    server: Running, label: str, value: str
) -> None:
    server.vector_bank("j", 4)
    batch = memory_pb2.MemoryBatch(
        memories=[memory_pb2.MemoryInput(id="a", metadata_json=f'{{"a": {value}}}')],
        keys=to_tensor(np.ones((1, 4), np.float32)),
        values=to_tensor(np.ones((1, 4), np.float32)),
    )
    error = rpc_error(
        lambda: server.memories.WriteMemories(
            memory_pb2.WriteMemoriesRequest(bank="j", batch=batch)
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, label
    assert "batch.memories[0].metadata_json" in (error.details() or "")
    assert server.banks.GetBank(bank_pb2.GetBankRequest(name="j")).bank.memory_count == 0
    keyed = f"{{{value}: 1}}" if value == LONE_SURROGATE else None  # a surrogate key, too
    if keyed is not None:
        batch.memories[0].metadata_json = keyed
        error = rpc_error(
            lambda: server.memories.WriteMemories(
                memory_pb2.WriteMemoriesRequest(bank="j", batch=batch)
            )
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("label", "value"), [("huge int", HUGE_INT), ("lone surrogate", LONE_SURROGATE)]
)
def test_metadata_filter_at_the_parser_edges_is_invalid_argument(
    server: Running, label: str, value: str
) -> None:
    server.vector_bank("q", 4)
    server.write_vectors("q", np.ones((2, 4), np.float32))
    request = query_pb2.QueryRequest(
        bank="q",
        query_vectors=to_tensor(np.ones((1, 4), np.float32)),
        k=1,
        metadata_filter_json=f'{{"a": {value}}}',
    )
    error = rpc_error(lambda: server.queries.Query(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, label
    assert "metadata_filter_json" in (error.details() or "")


def test_a_huge_name_is_not_echoed_whole(server: Running) -> None:
    name = "x" * (5 << 20)
    error = rpc_error(lambda: server.banks.GetBank(bank_pb2.GetBankRequest(name=name)))
    assert error.code() == grpc.StatusCode.NOT_FOUND  # not RESOURCE_EXHAUSTED on the client
    details = error.details() or ""
    assert len(details) < 300 and "5,242,880 characters" in details
    model = "m" * (1 << 20)
    error = rpc_error(lambda: server.vector_bank("ok", 4, model=model))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert len(error.details() or "") <= MAX_STATUS_MESSAGE_CHARS + 100
    token = "t" * (1 << 20)
    server.vector_bank("paged", 4)
    error = rpc_error(
        lambda: server.memories.ListMemories(
            memory_pb2.ListMemoriesRequest(bank="paged", page_token=token)
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(error.details() or "") < 300


def test_every_status_message_is_capped() -> None:
    code, message = status_for(InvalidArgument("y" * 100_000, field="y"), method="/m")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert MAX_STATUS_MESSAGE_CHARS <= len(message) <= MAX_STATUS_MESSAGE_CHARS + 60
