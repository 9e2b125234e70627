"""Bad input: property-based requests (hypothesis over the API messages) and malformed bytes.

Requests are built from the generated protobuf classes with hostile values: huge,
negative and mismatched tensor shapes, NaN/Inf, wrong dimensions, odd unicode,
huge metadata, absurd k, page sizes and batch sizes, unknown enum numbers, random
index factory strings. Then raw bytes go on the wire. The server must answer every
call with a clear status (never INTERNAL or UNKNOWN, never die, never time out), and
a rejected call must leave every bank as it was. Seeded (``derandomize``); short:
a few hundred examples, ``MEMNET_RELIABILITY=long``: thousands.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_strategies import (
    DIM,
    PROTECTED,
    TEXT_BANK,
    VECTOR_BANK,
    nested_object,
    requests,
)
from reliability_support import (
    Stubs,
    fetch_keys,
    in_process_server,
    keys_for,
    record_figures,
    scale,
    vector_bank_request,
    write_request,
)

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, query_pb2

MUTANT_BANK = "fzm"
SEED_IDS = [f"seed-{i}" for i in range(50)]
STORY = ["Mary moved to the bathroom.", "John went to the hallway.", "Daniel went back home."]
MESSAGE_EXAMPLES = scale(300, 4000)
BYTES_EXAMPLES = scale(200, 3000)
TIMEOUT_S = 20.0
NEVER = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DATA_LOSS,
}
PREFIX = "/memnet.api.v1."
UNARY_METHODS = [
    f"{PREFIX}{name}"
    for name in (
        "BankService/CreateBank",
        "BankService/GetBank",
        "BankService/ListBanks",
        "BankService/DeleteBank",
        "MemoryService/WriteMemories",
        "MemoryService/GetMemories",
        "MemoryService/DeleteMemories",
        "MemoryService/ListMemories",
        "MemoryService/CountMemories",
        "QueryService/Query",
        "ModelService/ListModels",
        "ModelService/GetModel",
    )
]
STREAM_METHOD = f"{PREFIX}MemoryService/StreamWriteMemories"


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )


@dataclass
class Target:
    """The fuzzed server: stubs, and the codes it answered (for the figures)."""

    stubs: Stubs
    channel: grpc.Channel
    codes: Counter[str] = field(default_factory=Counter)

    def state(self) -> dict[str, tuple[int, int]]:
        """(memory count, last seq) of the banks a rejected call must not change."""
        out = {}
        for name in PROTECTED:
            bank = self.stubs.banks.GetBank(bank_pb2.GetBankRequest(name=name)).bank
            out[name] = (bank.memory_count, bank.last_seq)
        return out


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    options = [("grpc.max_send_message_length", 64 << 20)]
    with (
        in_process_server(data_dir) as (_, port),
        grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel,
    ):
        stubs = Stubs(channel)
        stubs.banks.CreateBank(vector_bank_request(VECTOR_BANK, DIM))
        stubs.memories.WriteMemories(write_request(VECTOR_BANK, keys_for(SEED_IDS, DIM), SEED_IDS))
        stubs.banks.CreateBank(vector_bank_request(MUTANT_BANK, DIM))
        stubs.banks.CreateBank(bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name=TEXT_BANK)))
        memories = [memory_pb2.MemoryInput(id=f"s{i}", text=t) for i, t in enumerate(STORY)]
        stubs.memories.WriteMemories(
            memory_pb2.WriteMemoriesRequest(
                bank=TEXT_BANK, batch=memory_pb2.MemoryBatch(memories=memories)
            )
        )
        yield Target(stubs, channel)
        found = fetch_keys(stubs, VECTOR_BANK, SEED_IDS)
        expected = keys_for(SEED_IDS, DIM)
        for row, memory_id in enumerate(SEED_IDS):
            np.testing.assert_array_equal(found[memory_id], expected[row])


# ---- the properties ----------------------------------------------------------------------


def _method_for(target: Target, request: Any) -> Callable[..., Any]:
    stubs = target.stubs
    by_type: dict[type, Callable[..., Any]] = {
        memory_pb2.WriteMemoriesRequest: stubs.memories.WriteMemories,
        list: lambda r, **kw: stubs.memories.StreamWriteMemories(iter(r), **kw),
        query_pb2.QueryRequest: stubs.queries.Query,
        memory_pb2.GetMemoriesRequest: stubs.memories.GetMemories,
        memory_pb2.DeleteMemoriesRequest: stubs.memories.DeleteMemories,
        memory_pb2.ListMemoriesRequest: stubs.memories.ListMemories,
        memory_pb2.CountMemoriesRequest: stubs.memories.CountMemories,
        bank_pb2.CreateBankRequest: stubs.banks.CreateBank,
        bank_pb2.GetBankRequest: stubs.banks.GetBank,
        bank_pb2.DeleteBankRequest: stubs.banks.DeleteBank,
    }
    return by_type[type(request)]


def _call(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def _partial_stream(request: Any) -> bool:
    """A stream of several messages commits the ones before a bad one (documented)."""
    return isinstance(request, list) and len(request) > 1


@fuzz_settings(MESSAGE_EXAMPLES)
@given(request=requests)
def test_fuzzed_messages_get_a_clear_status_and_rejected_ones_change_nothing(
    target: Target, request: Any
) -> None:
    before = target.state()
    method = _method_for(target, request)
    code, details = _call(lambda: method(request, timeout=TIMEOUT_S))
    target.codes[code.name] += 1
    shown = repr(request)[:600]
    assert code not in NEVER, f"{code.name}: {details!r} for {shown}"
    if code is not grpc.StatusCode.OK:
        assert details, f"{code.name} without a message for {shown}"
        if not _partial_stream(request):
            assert target.state() == before, f"rejected ({code.name}) yet changed: {shown}"


@fuzz_settings(BYTES_EXAMPLES)
@given(
    method=st.sampled_from([*UNARY_METHODS, STREAM_METHOD]),
    payload=st.one_of(
        st.binary(max_size=400),
        st.tuples(st.integers(0, 200), st.binary(max_size=8)).map(lambda t: _mutate(*t)),
    ),
)
def test_malformed_bytes_never_crash_the_server_or_change_a_bank(
    target: Target, method: str, payload: bytes
) -> None:
    before = target.state()
    if method == STREAM_METHOD:
        stream = target.channel.stream_unary(method)
        code, details = _call(lambda: stream(iter([payload]), timeout=TIMEOUT_S))
    else:
        unary = target.channel.unary_unary(method)
        code, details = _call(lambda: unary(payload, timeout=TIMEOUT_S))
    target.codes[f"bytes:{code.name}"] += 1
    assert code not in NEVER, f"{code.name}: {details!r} for {method} {payload!r:.300}"
    if code is not grpc.StatusCode.OK:
        assert target.state() == before, f"rejected ({code.name}) yet changed: {payload!r:.300}"


def _mutate(position: int, insert: bytes) -> bytes:
    """A valid WriteMemoriesRequest, cut and spliced with ``insert``. Its field 1 (the bank)
    names an unprotected bank: sent to DeleteBank it is a valid request to delete that."""
    ids = ["mutant"]
    valid = write_request(MUTANT_BANK, keys_for(ids, DIM), ids).SerializeToString()
    position %= len(valid) + 1
    return valid[:position] + insert + valid[position + len(insert) :]


UNDECODABLE = {
    "truncated varint": b"\x10\x80\x80\x80",
    "length past the end": b"\x0a\x05ab",
    "invalid wire type": b"\x0f\x01",
    "invalid utf-8 in a string field": b"\x0a\x02\xff\xfe",
    "field number zero": b"\x00\x01",
}


@pytest.mark.parametrize("case", sorted(UNDECODABLE))
def test_undecodable_requests_are_invalid_argument(target: Target, case: str) -> None:
    unary = target.channel.unary_unary(f"{PREFIX}MemoryService/CountMemories")
    code, details = _call(lambda: unary(UNDECODABLE[case], timeout=TIMEOUT_S))
    assert code is grpc.StatusCode.INVALID_ARGUMENT, (code, details)


@pytest.mark.parametrize("where", ["metadata_json", "metadata_filter_json"])
def test_deeply_nested_json_is_invalid_argument(target: Target, where: str) -> None:
    deep = nested_object(5000)
    if where == "metadata_json":
        request: Any = write_request(VECTOR_BANK, keys_for(["deep"], DIM), ["deep"])
        request.batch.memories[0].metadata_json = deep
        method: Callable[..., Any] = target.stubs.memories.WriteMemories
    else:
        vectors = to_tensor(keys_for(["q"], DIM))
        request = query_pb2.QueryRequest(
            bank=VECTOR_BANK, query_vectors=vectors, metadata_filter_json=deep
        )
        method = target.stubs.queries.Query
    before = target.state()
    code, details = _call(lambda: method(request, timeout=TIMEOUT_S))
    assert target.state() == before
    assert code is grpc.StatusCode.INVALID_ARGUMENT, (code, details)


def test_server_still_serving_after_the_fuzzing(target: Target) -> None:
    health = health_pb2_grpc.HealthStub(target.channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert target.state()[VECTOR_BANK][0] >= len(SEED_IDS)
    record_figures(
        "fuzz",
        message_examples=MESSAGE_EXAMPLES,
        bytes_examples=BYTES_EXAMPLES,
        calls=sum(target.codes.values()),
        codes=dict(sorted(target.codes.items())),
    )
