"""MemoryService through the raw stubs: every RPC, write modes, limits, streaming."""

from __future__ import annotations

import json

import grpc
import numpy as np
from server_support import Running, StartServer, rpc_error

from memnet.api.tensors import from_tensor, to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2


def _vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_write_get_list_count_delete(server: Running) -> None:
    server.vector_bank("b")
    keys = _vectors(25)
    batch = memory_pb2.MemoryBatch(
        memories=[
            memory_pb2.MemoryInput(id=f"m{i:02d}", text=f"note {i}", metadata_json=f'{{"i": {i}}}')
            for i in range(25)
        ],
        keys=to_tensor(keys),
        values=to_tensor(-keys),
    )
    written = server.memories.WriteMemories(memory_pb2.WriteMemoriesRequest(bank="b", batch=batch))
    assert list(written.ids) == [f"m{i:02d}" for i in range(25)]
    assert (written.inserted, written.replaced, written.seq) == (25, 0, 25)

    got = server.memories.GetMemories(
        memory_pb2.GetMemoriesRequest(bank="b", ids=["m03", "nope", "m07"], include_vectors=True)
    )
    assert [m.id for m in got.memories] == ["m03", "m07"]
    assert list(got.missing_ids) == ["nope"]
    first = got.memories[0]
    assert (first.text, json.loads(first.metadata_json), first.seq) == ("note 3", {"i": 3}, 4)
    np.testing.assert_array_equal(from_tensor(first.key, field="key"), keys[3])
    np.testing.assert_array_equal(from_tensor(first.value, field="value"), -keys[3])
    assert first.written_at.seconds > 0
    plain = server.memories.GetMemories(memory_pb2.GetMemoriesRequest(bank="b", ids=["m03"]))
    assert not plain.memories[0].HasField("key")

    count = server.memories.CountMemories(memory_pb2.CountMemoriesRequest(bank="b")).count
    assert count == 25

    seen, token, pages = [], "", 0
    while True:
        page = server.memories.ListMemories(
            memory_pb2.ListMemoriesRequest(bank="b", page_size=10, page_token=token)
        )
        seen += [m.id for m in page.memories]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert (seen, pages) == ([f"m{i:02d}" for i in range(25)], 3)

    deleted = server.memories.DeleteMemories(
        memory_pb2.DeleteMemoriesRequest(bank="b", ids=["m00", "m01", "unknown"])
    )
    assert deleted.deleted == 2
    assert server.memories.CountMemories(memory_pb2.CountMemoriesRequest(bank="b")).count == 23

    replaced = server.write_vectors("b", _vectors(2, seed=1), ids=["m05", "new"])
    assert (replaced.inserted, replaced.replaced) == (1, 1)
    generated = server.write_vectors("b", _vectors(3, seed=2))
    assert len(set(generated.ids)) == 3 and all(generated.ids)


def test_insert_mode_rejects_existing_ids_and_writes_nothing(server: Running) -> None:
    server.vector_bank("b")
    server.write_vectors("b", _vectors(2), ids=["a", "b"])
    error = rpc_error(
        lambda: server.write_vectors(
            "b", _vectors(2, seed=1), ids=["c", "a"], mode=memory_pb2.WRITE_MODE_INSERT
        )
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and "'a'" in error.details()
    got = server.memories.GetMemories(memory_pb2.GetMemoriesRequest(bank="b", ids=["c"]))
    assert list(got.missing_ids) == ["c"]


def test_stream_write_commits_in_order_and_reports_progress_on_failure(server: Running) -> None:
    server.vector_bank("b")

    def stream(n_messages: int, bad_at: int | None = None):  # type: ignore[no-untyped-def]
        for i in range(n_messages):
            keys = _vectors(4, dim=3 if i == bad_at else 8, seed=i)
            yield memory_pb2.StreamWriteMemoriesRequest(
                bank="b" if i == 0 else "",
                batch=memory_pb2.MemoryBatch(keys=to_tensor(keys), values=to_tensor(keys)),
            )

    response = server.memories.StreamWriteMemories(stream(3))
    assert (response.written, response.messages, response.seq) == (12, 3, 12)
    error = rpc_error(lambda: server.memories.StreamWriteMemories(stream(3, bad_at=2)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "8 memories in 2 messages were committed" in error.details()
    assert server.memories.CountMemories(memory_pb2.CountMemoriesRequest(bank="b")).count == 20


def test_write_limits_and_bad_input_store_nothing(start_server: StartServer) -> None:
    server = start_server(max_write_memories=5, max_ids_per_call=3, max_page_size=50)
    server.vector_bank("b")
    server.vector_bank("capped", capacity=3)
    too_many = rpc_error(lambda: server.write_vectors("b", _vectors(6)))
    assert too_many.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_write_memories=5" in too_many.details()
    wrong_dim = rpc_error(lambda: server.write_vectors("b", _vectors(2, dim=4)))
    assert wrong_dim.code() == grpc.StatusCode.INVALID_ARGUMENT and "keys" in wrong_dim.details()
    bad_json = memory_pb2.MemoryBatch(
        memories=[memory_pb2.MemoryInput(metadata_json="[1]")],
        keys=to_tensor(_vectors(1)),
        values=to_tensor(_vectors(1)),
    )
    error = rpc_error(
        lambda: server.memories.WriteMemories(
            memory_pb2.WriteMemoriesRequest(bank="b", batch=bad_json)
        )
    )
    assert "metadata_json" in error.details()
    torn = memory_pb2.MemoryBatch(keys=to_tensor(_vectors(2)), values=to_tensor(_vectors(3)))
    error = rpc_error(
        lambda: server.memories.WriteMemories(memory_pb2.WriteMemoriesRequest(bank="b", batch=torn))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "rows" in error.details()
    empty = rpc_error(
        lambda: server.memories.WriteMemories(memory_pb2.WriteMemoriesRequest(bank="b"))
    )
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT
    text_to_vectors = rpc_error(
        lambda: server.memories.WriteMemories(
            memory_pb2.WriteMemoriesRequest(
                bank="b", batch=memory_pb2.MemoryBatch(memories=[memory_pb2.MemoryInput(text="hi")])
            )
        )
    )
    assert text_to_vectors.code() == grpc.StatusCode.INVALID_ARGUMENT
    server.write_vectors("capped", _vectors(3))
    full = rpc_error(lambda: server.write_vectors("capped", _vectors(1)))
    assert full.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for bank, expected in (("b", 0), ("capped", 3)):
        count = server.memories.CountMemories(memory_pb2.CountMemoriesRequest(bank=bank)).count
        assert count == expected
    many_ids = rpc_error(
        lambda: server.memories.GetMemories(memory_pb2.GetMemoriesRequest(bank="b", ids="abcd"))
    )
    assert "max_ids_per_call=3" in many_ids.details()
    big_page = rpc_error(
        lambda: server.memories.ListMemories(memory_pb2.ListMemoriesRequest(bank="b", page_size=51))
    )
    assert big_page.code() == grpc.StatusCode.INVALID_ARGUMENT and "1..50" in big_page.details()
    bad_token = rpc_error(
        lambda: server.memories.ListMemories(
            memory_pb2.ListMemoriesRequest(bank="b", page_token="%%%")
        )
    )
    assert bad_token.code() == grpc.StatusCode.INVALID_ARGUMENT
    missing = rpc_error(
        lambda: server.memories.CountMemories(memory_pb2.CountMemoriesRequest(bank="nope"))
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_evict_oldest_reports_evicted_ids(server: Running) -> None:
    server.vector_bank("ring", capacity=3, capacity_policy=bank_pb2.CAPACITY_POLICY_EVICT_OLDEST)
    server.write_vectors("ring", _vectors(3), ids=["a", "b", "c"])
    response = server.write_vectors("ring", _vectors(2, seed=1), ids=["d", "e"])
    assert sorted(response.evicted_ids) == ["a", "b"]
    page = server.memories.ListMemories(memory_pb2.ListMemoriesRequest(bank="ring"))
    assert [m.id for m in page.memories] == ["c", "d", "e"]


def test_messages_above_four_mib_are_accepted(server: Running) -> None:
    server.vector_bank("big", dim=256)
    keys = _vectors(5000, dim=256)  # 2 × 5.1 MB of float32
    response = server.write_vectors("big", keys)
    assert len(response.ids) == 5000
    listed = server.memories.GetMemories(
        memory_pb2.GetMemoriesRequest(bank="big", ids=list(response.ids), include_vectors=True)
    )
    assert len(listed.memories) == 5000  # a > 4 MiB response, too
