"""SIGKILL ``memnet serve`` during a reindex, restart: one version, complete, nothing lost.

At every kill point (right after the reindex starts, in the middle with writes going
on, and just after it finished) the restarted bank must serve every acknowledged
memory with keys that are exactly one model version's encoding of its text (the
version GetBank reports), and a cut-off reindex must resume and finish.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import torch
from reliability_support import ServeProcess, Stubs, record_figures, serve_process

from memnet.api.tensors import from_tensor
from memnet.api.v1 import bank_pb2, memory_pb2
from memnet.model.checkpoint import load_checkpoint, save_checkpoint
from memnet.serving.repository import CHECKPOINT_DIR
from memnet.serving.text_model import TextMemoryModel

DATA = Path(__file__).resolve().parents[2] / "data" / "babi" / "en"
SENTENCES = [
    line.split(" ", 1)[1].strip()
    for task in ("qa1_single-supporting-fact", "qa2_two-supporting-facts")
    for line in (DATA / f"{task}_train.txt").read_text().splitlines()
    if "?" not in line
]
BANK = "r"
INITIAL = 2000


def _models(models_dir: Path) -> dict[int, TextMemoryModel]:
    """babi-joint@1 (shipped) and a @2 with other weights, saved into ``models_dir``."""
    checkpoint = load_checkpoint(CHECKPOINT_DIR / "babi-joint.pt")
    generator = torch.Generator().manual_seed(11)
    weights = {
        name: value + 0.05 * torch.randn(value.shape, generator=generator)
        if value.dtype.is_floating_point
        else value
        for name, value in checkpoint.state_dict.items()
    }
    second = dataclasses.replace(checkpoint, state_dict=weights)
    save_checkpoint(models_dir / "babi-joint" / "2" / "model.pt", second)
    return {1: TextMemoryModel(checkpoint), 2: TextMemoryModel(second)}


def _write(stubs: Stubs, ids: list[str], texts: list[str]) -> None:
    memories = [memory_pb2.MemoryInput(id=i, text=t) for i, t in zip(ids, texts, strict=True)]
    request = memory_pb2.WriteMemoriesRequest(
        bank=BANK, batch=memory_pb2.MemoryBatch(memories=memories)
    )
    stubs.memories.WriteMemories(request, timeout=30)


def _bank(stubs: Stubs) -> bank_pb2.Bank:
    return stubs.banks.GetBank(bank_pb2.GetBankRequest(name=BANK), timeout=10).bank


def _check_one_whole_version(
    stubs: Stubs, texts: dict[str, str], models: dict[int, TextMemoryModel]
) -> int:
    """Every acknowledged memory is there with exactly one version's keys; the version."""
    ids = sorted(texts)
    for _ in range(20):
        before = _bank(stubs).model_version
        request = memory_pb2.GetMemoriesRequest(bank=BANK, ids=ids, include_vectors=True)
        response = stubs.memories.GetMemories(request, timeout=30)
        if _bank(stubs).model_version != before:
            continue  # the resumed reindex switched while we read: read again
        assert not response.missing_ids, f"lost {len(response.missing_ids)} acknowledged"
        keys = np.stack([from_tensor(m.key, field="key", ndim=1) for m in response.memories])
        expected = models[before].encode_memories([texts[m.id] for m in response.memories]).keys
        np.testing.assert_allclose(keys, expected, rtol=1e-5, atol=1e-5)
        return before
    raise AssertionError("the bank kept switching versions")


def _wait_done(stubs: Stubs, target: int, *, timeout_s: float = 60) -> bank_pb2.Bank:
    """The bank once it serves ``target`` with no reindex running (a resumed reindex runs
    in the background after a restart), or once its reindex failed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        bank = _bank(stubs)
        state = bank.reindex.state
        if state == bank_pb2.REINDEX_STATE_FAILED or (
            state != bank_pb2.REINDEX_STATE_REINDEXING and bank.model_version == target
        ):
            return bank
        time.sleep(0.05)
    raise AssertionError(f"the bank did not reach version {target}")


def test_sigkill_during_a_reindex(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    models = _models(models_dir)
    texts: dict[str, str] = {}
    args = ("--models-dir", str(models_dir), "--model-poll-s", "0")
    started = time.monotonic()
    with serve_process(tmp_path / "data", tmp_path / "serve.log", *args) as server:
        server.start()
        with grpc.insecure_channel(server.target) as channel:
            stubs = Stubs(channel)
            spec = bank_pb2.BankSpec(name=BANK, model="babi-joint@1")
            stubs.banks.CreateBank(bank_pb2.CreateBankRequest(spec=spec))
            for start in range(0, INITIAL, 1000):
                ids = [f"m{i}" for i in range(start, start + 1000)]
                batch = [SENTENCES[i % len(SENTENCES)] for i in range(start, start + 1000)]
                _write(stubs, ids, batch)
                texts.update(zip(ids, batch, strict=True))
        # (target version, seconds from ReindexBank to the kill; None = after it finished)
        plan: list[tuple[int, float | None]] = [(2, 0.0), (1, 0.1), (2, None)]
        versions_seen = []
        for cycle, (target, kill_after_s) in enumerate(plan):
            versions_seen.append(_reindex_then_kill(server, target, kill_after_s, cycle, texts))
            server.start()
            with grpc.insecure_channel(server.target) as channel:
                stubs = Stubs(channel)
                versions_seen.append(_check_one_whole_version(stubs, texts, models))
                done = _wait_done(stubs, target)
                assert done.reindex.state in (
                    bank_pb2.REINDEX_STATE_DONE,
                    bank_pb2.REINDEX_STATE_IDLE,
                ), done.reindex.error
                assert done.model_version == target  # resumed to the end, or already there
                assert _check_one_whole_version(stubs, texts, models) == target
        server.kill()
    record_figures(
        "reindex_sigkill",
        kills=len(plan),
        memories=len(texts),
        versions_seen=versions_seen,
        seconds=round(time.monotonic() - started, 1),
    )


def _reindex_then_kill(
    server: ServeProcess,
    target: int,
    kill_after_s: float | None,
    cycle: int,
    texts: dict[str, str],
) -> int:
    """Start a reindex to ``babi-joint@target`` with a writer running, SIGKILL the server;
    the acknowledged writes go into ``texts``. Returns the version GetBank showed last."""
    stop = threading.Event()
    acked: dict[str, str] = {}

    def writer(stubs: Stubs) -> None:
        i = 0
        while not stop.is_set():
            memory_id, text = f"c{cycle}-{i}", SENTENCES[(7 * i) % len(SENTENCES)]
            try:
                _write(stubs, [memory_id], [text])
            except grpc.RpcError:
                return  # the server died: this write was not acknowledged
            acked[memory_id] = text
            i += 1

    with grpc.insecure_channel(server.target) as channel:
        stubs = Stubs(channel)
        thread = threading.Thread(target=writer, args=(stubs,))
        thread.start()
        request = bank_pb2.ReindexBankRequest(bank=BANK, model=f"babi-joint@{target}")
        stubs.banks.ReindexBank(request, timeout=10)
        if kill_after_s is None:
            _wait_done(stubs, target)
        else:
            time.sleep(kill_after_s)
        last = _bank(stubs).model_version
        server.kill()
        stop.set()
        thread.join(30)
    texts.update(acked)
    return last
