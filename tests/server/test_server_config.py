"""Settings precedence (file < environment < flags) and ``memnet serve`` end to end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from server_support import StartServer

from memnet.api.tensors import to_tensor
from memnet.api.v1 import (
    bank_pb2,
    bank_pb2_grpc,
    memory_pb2,
    memory_pb2_grpc,
    model_pb2,
    query_pb2,
)
from memnet.errors import FailedPrecondition, InvalidArgument
from memnet.serving.repository import CHECKPOINT_DIR
from memnet.store import MemoryStore
from memnet_server import ServerSettings, load_settings
from memnet_server.app import load_models

MEMNET = str(Path(sys.executable).with_name("memnet"))  # the console script of this venv


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MEMNET_"):
            monkeypatch.delenv(name)
    settings = load_settings()
    assert (settings.host, settings.port, settings.metrics_port) == ("127.0.0.1", 50051, 0)
    assert settings.metrics_bank_labels == "hashed"
    assert settings.data_dir == Path("memnet-data")
    assert (settings.max_message_bytes, settings.max_k, settings.default_k) == (64 << 20, 1024, 32)
    assert settings.api_keys_file is None and settings.tls_cert_file is None


def test_flags_beat_environment_beat_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "memnet.toml"
    config.write_text(
        'port = 1111\nmax_k = 64\ndata_dir = "/from/file"\nbatching_enabled = false\n'
    )
    monkeypatch.setenv("MEMNET_PORT", "2222")
    monkeypatch.setenv("MEMNET_DATA_DIR", "/from/env")
    settings = load_settings(config, data_dir=Path("/from/flag"), host=None)
    assert settings.port == 2222  # env over file
    assert settings.data_dir == Path("/from/flag")  # flag over env
    assert settings.max_k == 64 and settings.batching_enabled is False  # file over default
    assert settings.host == "127.0.0.1"  # a None flag falls through
    monkeypatch.setenv("MEMNET_CONFIG", str(config))
    monkeypatch.delenv("MEMNET_PORT")
    assert load_settings().port == 1111


def test_bad_settings_name_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgument, match="max_k"):
        load_settings(max_k=0)
    with pytest.raises(InvalidArgument, match="default_k"):
        load_settings(max_k=8, default_k=16)
    with pytest.raises(InvalidArgument, match="tls_cert_file"):
        load_settings(tls_key_file=tmp_path / "key.pem")
    monkeypatch.setenv("MEMNET_PORT", "not-a-port")
    with pytest.raises(InvalidArgument, match="port"):
        load_settings()
    with pytest.raises(InvalidArgument, match="config"):
        load_settings(tmp_path / "missing.toml")
    assert ServerSettings.model_fields.keys() >= {"grace_s", "worker_threads", "fsync"}


def test_memnet_serve_runs_and_stops_on_sigterm_keeping_writes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "MEMNET_METRICS_PORT": "0", "MEMNET_LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [MEMNET, "serve", "--port", "0", "--data-dir", str(data_dir)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = 0
        assert process.stderr is not None
        for line in process.stderr:
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("msg") == "serving":
                port = int(entry["address"].rsplit(":", 1)[1])
                break
        assert port, "the server never logged that it was serving"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            spec = bank_pb2.BankSpec(name="cli", model="vector", key_dim=2, value_dim=2)
            bank_pb2_grpc.BankServiceStub(channel).CreateBank(
                bank_pb2.CreateBankRequest(spec=spec), timeout=10
            )
            keys = to_tensor(np.eye(2, dtype=np.float32))
            memory_pb2_grpc.MemoryServiceStub(channel).WriteMemories(
                memory_pb2.WriteMemoriesRequest(
                    bank="cli", batch=memory_pb2.MemoryBatch(keys=keys, values=keys)
                ),
                timeout=10,
            )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with MemoryStore(data_dir) as store:
        assert store.bank("cli").count() == 2


def test_settings_take_effect(start_server: StartServer, tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "babi-copy" / "1").mkdir(parents=True)
    shutil.copy(CHECKPOINT_DIR / "babi-joint.pt", models_dir / "babi-copy" / "1" / "model.pt")
    server = start_server(
        models=load_models(ServerSettings(models_dir=models_dir)),
        default_model="vector",
        default_k=3,
        fsync="interval",
        worker_threads=2,
    )
    models = server.models.ListModels(model_pb2.ListModelsRequest()).models
    assert {"babi-joint", "babi-copy", "vector"} <= {m.name for m in models}
    assert [m.name for m in models if m.is_default] == ["vector"]
    spec = bank_pb2.BankSpec(name="b", key_dim=4, value_dim=4)
    assert (
        server.banks.CreateBank(bank_pb2.CreateBankRequest(spec=spec)).bank.spec.model == "vector"
    )
    server.write_vectors("b", np.eye(4, dtype=np.float32))
    query = query_pb2.QueryRequest(bank="b", query_vectors=to_tensor(np.ones((1, 4), np.float32)))
    assert len(server.queries.Query(query).results[0].hops[0].memories) == 3  # default_k
    copy_spec = bank_pb2.BankSpec(name="story", model="babi-copy")
    server.banks.CreateBank(bank_pb2.CreateBankRequest(spec=copy_spec))
    story = memory_pb2.MemoryBatch(memories=[memory_pb2.MemoryInput(text="Mary went home.")])
    server.memories.WriteMemories(memory_pb2.WriteMemoriesRequest(bank="story", batch=story))
    answer = server.queries.Query(
        query_pb2.QueryRequest(bank="story", questions=["Where is Mary?"])
    )
    assert answer.model == "babi-copy" and answer.results[0].answer


def test_snapshot_after_log_mib_bounds_the_log(start_server: StartServer) -> None:
    server = start_server(snapshot_after_log_mib=1)
    server.vector_bank("big", dim=256)
    for i in range(3):  # 3 × 1,000 memories × 2 KiB of vectors: past 1 MiB of log
        keys = np.random.default_rng(i).standard_normal((1000, 256)).astype(np.float32)
        server.write_vectors("big", keys, ids=[f"m{i}-{j}" for j in range(1000)])
    bank_dir = next(server.settings.data_dir.rglob("big"))
    assert list(bank_dir.glob("snapshot-*"))
    assert sum(p.stat().st_size for p in bank_dir.glob("wal-*.log")) < 2 * 1024 * 1024


def test_snapshot_after_log_records_and_age_bound_the_log(start_server: StartServer) -> None:
    by_records = start_server(snapshot_after_log_records=2)
    by_records.vector_bank("b")
    for i in range(2):
        by_records.write_vectors("b", np.ones((1, 8), np.float32), ids=[f"m{i}"])
    bank_dir = next(by_records.settings.data_dir.rglob("b"))
    assert [p.name for p in bank_dir.glob("snapshot-*")] == [f"snapshot-{2:020d}"]
    by_age = start_server(snapshot_after_log_age_s=0.2, data_dir=bank_dir.parents[2] / "aged")
    by_age.vector_bank("old")
    by_age.write_vectors("old", np.ones((1, 8), np.float32), ids=["m0"])
    old_dir = next(by_age.settings.data_dir.rglob("old"))
    deadline = time.monotonic() + 10
    while not list(old_dir.glob("snapshot-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(old_dir.glob("snapshot-*")), "the store's timer snapshots an old log"


def test_ports_in_use_fail_startup_clearly(start_server: StartServer, tmp_path: Path) -> None:
    first = start_server()
    with pytest.raises(FailedPrecondition, match="cannot listen") as caught:
        start_server(port=first.port, data_dir=tmp_path / "other")
    assert caught.value.field == "port"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(FailedPrecondition, match="metrics") as caught:
            start_server(metrics_port=taken.getsockname()[1], data_dir=tmp_path / "third")
    assert caught.value.field == "metrics_port"
