"""ReindexBank: re-encoding under load, the switch, cancelling, a full disk, restarts."""

from __future__ import annotations

import dataclasses
import errno
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from server_support import Running, StartServer, rpc_error

from memnet.api.tensors import from_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, query_pb2
from memnet.model.checkpoint import load_checkpoint
from memnet.serving.contract import EncodedMemories, EncodedTexts, QueryOutput
from memnet.serving.repository import CHECKPOINT_DIR, ModelRepository
from memnet.serving.text_model import TextMemoryModel
from memnet.store import snapshot
from memnet.store.reindex import INTENT_FILE

DATA = Path(__file__).resolve().parents[2] / "data" / "babi" / "en"
SENTENCES = [
    line.split(" ", 1)[1].strip()
    for task in ("qa1_single-supporting-fact", "qa2_two-supporting-facts")
    for line in (DATA / f"{task}_train.txt").read_text().splitlines()
    if "?" not in line
]
LATE = SENTENCES[-500:]  # the texts of writes that arrive during a reindex


class SlowText:
    """A text model that takes ``delay_s`` per encode_memories call (a long reindex)."""

    def __init__(self, model: TextMemoryModel, delay_s: float) -> None:
        self.model, self.delay_s, self.info = model, delay_s, model.info

    def encode_memories(self, texts: list[str]) -> EncodedMemories:
        time.sleep(self.delay_s)
        return self.model.encode_memories(texts)

    def encode_queries(self, texts: list[str]) -> EncodedTexts:
        return self.model.encode_queries(texts)

    def query(self, queries: np.ndarray, memory: object, options: object) -> QueryOutput:
        return self.model.query(queries, memory, options)  # type: ignore[arg-type]


def _second_version(delay_s: float) -> SlowText:
    checkpoint = load_checkpoint(CHECKPOINT_DIR / "babi-joint.pt")
    generator = torch.Generator().manual_seed(7)
    weights = {
        name: value + 0.05 * torch.randn(value.shape, generator=generator)
        if value.dtype.is_floating_point
        else value
        for name, value in checkpoint.state_dict.items()
    }
    return SlowText(TextMemoryModel(dataclasses.replace(checkpoint, state_dict=weights)), delay_s)


def _catalog(*, delay_s: float, with_v2: bool = True) -> ModelRepository:
    repository = ModelRepository()
    repository.refresh()
    if with_v2:
        repository.add(_second_version(delay_s), version=2, fingerprint="f" * 64)  # type: ignore[arg-type]
    return repository


def _write(server: Running, bank: str, texts: list[str], ids: list[str] | None = None) -> None:
    memories = [
        memory_pb2.MemoryInput(text=t, id=ids[i] if ids else "") for i, t in enumerate(texts)
    ]
    batch = memory_pb2.MemoryBatch(memories=memories)
    server.memories.WriteMemories(memory_pb2.WriteMemoriesRequest(bank=bank, batch=batch))


def _bank(server: Running, name: str) -> bank_pb2.Bank:
    return server.banks.GetBank(bank_pb2.GetBankRequest(name=name)).bank


ENDED = (bank_pb2.REINDEX_STATE_DONE, bank_pb2.REINDEX_STATE_FAILED)


def _wait(server: Running, name: str, timeout_s: float = 60) -> bank_pb2.Bank:
    """The bank once its reindex has ended (done or failed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        bank = _bank(server, name)
        if bank.reindex.state in ENDED:
            return bank
        time.sleep(0.05)
    raise AssertionError(f"the reindex of {name} did not end in {timeout_s} s")


def _reindex(server: Running, name: str, model: str) -> bank_pb2.Bank:
    request = bank_pb2.ReindexBankRequest(bank=name, model=model)
    return server.banks.ReindexBank(request).bank


def _stored_keys(server: Running, bank: str, ids: list[str]) -> np.ndarray:
    request = memory_pb2.GetMemoriesRequest(bank=bank, ids=ids, include_vectors=True)
    memories = server.memories.GetMemories(request).memories
    assert [m.id for m in memories] == ids
    return np.stack([from_tensor(m.key, field="key", ndim=1) for m in memories])


def test_reindex_under_writes_and_queries_switches_without_losing_anything(
    start_server: StartServer,
) -> None:
    catalog = _catalog(delay_s=0.05)
    server = start_server(models=catalog)
    server.banks.CreateBank(
        bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name="b", model="babi-joint@1"))
    )
    base = SENTENCES[:1200]
    _write(server, "b", base, [f"m{i}" for i in range(len(base))])
    acked: list[str] = []
    answered: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            try:
                _write(server, "b", [LATE[i % len(LATE)]], [f"w{i}"])
                acked.append(f"w{i}")
            except grpc.RpcError as error:
                failures.append(error)
            i += 1

    def reader() -> None:
        while not stop.is_set():
            try:
                request = query_pb2.QueryRequest(bank="b", questions=["Where is Mary?"], k=8)
                answered.append(server.queries.Query(request).model_version)
            except grpc.RpcError as error:
                failures.append(error)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    try:
        started = _reindex(server, "b", "babi-joint@2")
        assert started.reindex.state == bank_pb2.REINDEX_STATE_REINDEXING
        assert (started.reindex.from_model, started.reindex.to_model) == (
            "babi-joint@1",
            "babi-joint@2",
        )
        during = len(acked)
        done = _wait(server, "b")
        after_switch = len(acked)
        time.sleep(0.3)  # writes and queries after the switch
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not failures, failures[:3]
    assert done.reindex.state == bank_pb2.REINDEX_STATE_DONE, done.reindex.error
    assert done.model_version == 2 and done.model_fingerprint == "f" * 64
    assert after_switch > during, "no write landed during the rebuild"
    assert set(answered) <= {1, 2} and answered[-1] == 2
    bank = _bank(server, "b")
    assert bank.memory_count == len(base) + len(acked)
    v2 = catalog.get("babi-joint@2").served()
    ids = [f"m{i}" for i in range(0, len(base), 37)] + acked  # every write of the rebuild
    texts = [base[int(i[1:])] for i in ids if i[0] == "m"] + [
        LATE[int(i[1:]) % len(LATE)] for i in acked
    ]
    np.testing.assert_allclose(
        _stored_keys(server, "b", ids), v2.encode_memories(texts).keys, rtol=1e-5, atol=1e-5
    )


def test_vector_banks_and_vector_targets_are_refused(start_server: StartServer) -> None:
    server = start_server(models=_catalog(delay_s=0))
    server.vector_bank("vec", 4)
    error = rpc_error(lambda: _reindex(server, "vec", "babi-joint@2"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "own vectors" in error.details()
    server.banks.CreateBank(bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name="t")))
    error = rpc_error(lambda: _reindex(server, "t", "vector"))
    assert (
        error.code() == grpc.StatusCode.FAILED_PRECONDITION and "takes vectors" in error.details()
    )


def test_a_cancelled_reindex_leaves_the_bank_as_it_was(start_server: StartServer) -> None:
    server = start_server(models=_catalog(delay_s=0.3))
    server.banks.CreateBank(
        bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name="b", model="babi-joint@1"))
    )
    _write(server, "b", SENTENCES[:3000])
    _reindex(server, "b", "babi-joint@2")
    error = rpc_error(lambda: _reindex(server, "b", "babi-joint@2"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "already" in error.details()
    cancelled = server.banks.CancelReindex(bank_pb2.CancelReindexRequest(bank="b")).bank
    assert cancelled.reindex.state == bank_pb2.REINDEX_STATE_FAILED
    assert "cancelled" in cancelled.reindex.error and cancelled.model_version == 1
    assert not (server.settings.data_dir / "banks" / "b" / INTENT_FILE).exists()
    request = query_pb2.QueryRequest(bank="b", questions=["Where is Mary?"])
    assert server.queries.Query(request).model_version == 1


def test_a_full_disk_fails_the_reindex_not_the_bank(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server(models=_catalog(delay_s=0))
    server.banks.CreateBank(
        bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name="b", model="babi-joint@1"))
    )
    _write(server, "b", SENTENCES[:300])

    def no_space(*args: object, **kwargs: object) -> dict[str, int]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(snapshot, "_write_files", no_space)
    _reindex(server, "b", "babi-joint@2")
    failed = _wait(server, "b")
    assert failed.reindex.state == bank_pb2.REINDEX_STATE_FAILED
    assert "disk is full" in failed.reindex.error and failed.model_version == 1
    monkeypatch.undo()
    _write(server, "b", SENTENCES[300:310])  # the bank goes on
    assert _bank(server, "b").memory_count == 310


def test_a_restart_resumes_a_cut_off_reindex_or_abandons_it(
    start_server: StartServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start_server(models=_catalog(delay_s=0.3), data_dir=data_dir)
    for name in ("resumed", "abandoned"):
        spec = bank_pb2.BankSpec(name=name, model="babi-joint@1")
        first.banks.CreateBank(bank_pb2.CreateBankRequest(spec=spec))
        _write(first, name, SENTENCES[:2000])
        _reindex(first, name, "babi-joint@2")
    first.service.stop(0).wait(30)  # a stop leaves the intent, like a crash
    for name in ("resumed", "abandoned"):
        assert (data_dir / "banks" / name / INTENT_FILE).exists()
    (data_dir / "banks" / "abandoned" / INTENT_FILE).write_text(
        (data_dir / "banks" / "abandoned" / INTENT_FILE)
        .read_text()
        .replace('"model_version":2', '"model_version":9')
    )
    second = start_server(models=_catalog(delay_s=0), data_dir=data_dir)
    resumed = _wait(second, "resumed")
    assert resumed.reindex.state == bank_pb2.REINDEX_STATE_DONE and resumed.model_version == 2
    assert resumed.memory_count == 2000
    abandoned = _wait(second, "abandoned")
    assert abandoned.reindex.state == bank_pb2.REINDEX_STATE_FAILED
    assert "not resumed" in abandoned.reindex.error and abandoned.model_version == 1
    assert not (data_dir / "banks" / "abandoned" / INTENT_FILE).exists()
