"""Model versions over the API: binding, pick-up without a restart, failures, unloading."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import grpc
import pytest
import torch
from server_support import StartServer, rpc_error

from memnet.api.v1 import bank_pb2, memory_pb2, model_pb2, query_pb2
from memnet.model.checkpoint import load_checkpoint, save_checkpoint
from memnet.serving.repository import CHECKPOINT_DIR
from memnet_server.app import load_models
from memnet_server.config import ServerSettings

SHIPPED = CHECKPOINT_DIR / "babi-joint.pt"
STORY = ["Mary moved to the bathroom.", "John went to the hallway."]


def perturbed(path: Path, *, seed: int) -> Path:
    """A copy of the shipped checkpoint with slightly different weights (another version)."""
    checkpoint = load_checkpoint(SHIPPED)
    generator = torch.Generator().manual_seed(seed)
    weights = {
        name: value + 0.05 * torch.randn(value.shape, generator=generator)
        if value.dtype.is_floating_point
        else value
        for name, value in checkpoint.state_dict.items()
    }
    save_checkpoint(path, dataclasses.replace(checkpoint, state_dict=weights))
    return path


def _text_bank(name: str, model: str = "") -> bank_pb2.CreateBankRequest:
    return bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name=name, model=model))


def _write(bank: str, texts: list[str]) -> memory_pb2.WriteMemoriesRequest:
    memories = [memory_pb2.MemoryInput(text=t) for t in texts]
    return memory_pb2.WriteMemoriesRequest(
        bank=bank, batch=memory_pb2.MemoryBatch(memories=memories)
    )


def _query(bank: str) -> query_pb2.QueryRequest:
    return query_pb2.QueryRequest(bank=bank, questions=["Where is Mary?"], k=4)


def _start(start_server: StartServer, models_dir: Path, **settings: object):  # type: ignore[no-untyped-def]
    return start_server(
        models=load_models(ServerSettings(models_dir=models_dir)), models_dir=models_dir, **settings
    )


def test_banks_record_their_version_and_new_versions_come_without_a_restart(
    start_server: StartServer, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    server = _start(start_server, models, model_poll_s=0.2)
    first = server.banks.CreateBank(_text_bank("first")).bank
    assert (first.spec.model, first.model_version) == ("babi-joint", 1)
    assert first.model_fingerprint == load_models(ServerSettings()).get("babi-joint").fingerprint
    assert "babi-joint@1" in first.key_space
    server.memories.WriteMemories(_write("first", STORY))
    perturbed(models / "babi-joint" / "2" / "model.pt", seed=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the poller picks version 2 up
        latest = server.models.GetModel(model_pb2.GetModelRequest(name="babi-joint")).model
        if latest.version == 2:
            break
        time.sleep(0.1)
    assert latest.version == 2 and [v.version for v in latest.versions] == [1, 2]
    second = server.banks.CreateBank(_text_bank("second")).bank
    assert second.model_version == 2  # NAME means the latest ready version
    pinned = server.banks.CreateBank(_text_bank("pinned", "babi-joint@1")).bank
    assert pinned.model_version == 1
    answer = server.queries.Query(_query("first"))
    assert (answer.model, answer.model_version) == ("babi-joint", 1)  # its own version still
    server.memories.WriteMemories(_write("second", STORY))
    assert server.queries.Query(_query("second")).model_version == 2


def test_a_bad_checkpoint_is_reported_and_the_old_version_keeps_serving(
    start_server: StartServer, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    bad = models / "babi-joint" / "2" / "model.pt"
    bad.parent.mkdir(parents=True)
    server = _start(start_server, models, model_poll_s=0)
    server.banks.CreateBank(_text_bank("b"))
    server.memories.WriteMemories(_write("b", STORY))
    bad.write_bytes(b"\x00garbage")
    loaded = server.models.LoadModel(model_pb2.LoadModelRequest(name="babi-joint"))
    (changed,) = loaded.changed
    assert changed.version == 2 and changed.state == model_pb2.MODEL_VERSION_STATE_FAILED
    assert "not a readable checkpoint" in changed.error
    model = server.models.GetModel(model_pb2.GetModelRequest(name="babi-joint")).model
    assert model.version == 1  # the latest READY version
    assert [(v.version, v.state) for v in model.versions] == [
        (1, model_pb2.MODEL_VERSION_STATE_READY),
        (2, model_pb2.MODEL_VERSION_STATE_FAILED),
    ]
    assert server.queries.Query(_query("b")).results[0].answer  # still answering
    error = rpc_error(
        lambda: server.models.GetModel(model_pb2.GetModelRequest(name="babi-joint@2"))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    metrics = server.service.metrics.registry.get_sample_value("memnet_model_load_failures_total")
    assert metrics == 1.0


def test_unloading_a_version_in_use_is_refused_naming_the_banks(
    start_server: StartServer, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    perturbed(models / "alt" / "1" / "model.pt", seed=2)
    server = _start(start_server, models, model_poll_s=0)
    server.banks.CreateBank(_text_bank("uses-alt", "alt"))
    unload = model_pb2.UnloadModelRequest(name="alt", version=1)
    error = rpc_error(lambda: server.models.UnloadModel(unload))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "uses-alt" in error.details()
    server.banks.DeleteBank(bank_pb2.DeleteBankRequest(name="uses-alt"))
    server.models.UnloadModel(unload)
    error = rpc_error(lambda: server.models.GetModel(model_pb2.GetModelRequest(name="alt")))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_a_replaced_checkpoint_is_never_used_on_keys_the_old_one_wrote(
    start_server: StartServer, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    path = perturbed(models / "alt" / "1" / "model.pt", seed=3)
    server = _start(start_server, models, model_poll_s=0)
    server.banks.CreateBank(_text_bank("b", "alt@1"))
    server.memories.WriteMemories(_write("b", STORY))
    perturbed(path, seed=4)  # same version number, other weights
    server.models.LoadModel(model_pb2.LoadModelRequest(name="alt"))
    for call in (
        lambda: server.queries.Query(_query("b")),
        lambda: server.memories.WriteMemories(_write("b", STORY)),
    ):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "reindex" in error.details() and "alt@1" in error.details()


def test_admin_calls_need_the_admin_right(start_server: StartServer, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {"name": "w", "key": "writer", "banks": ["*"], "rights": "write"},
                    {"name": "a", "key": "admin", "banks": ["*"], "rights": "admin"},
                ]
            }
        )
    )
    models = tmp_path / "models"
    models.mkdir()
    server = _start(start_server, models, api_keys_file=keys, model_poll_s=0)
    writer, admin = (("authorization", "Bearer writer"),), (("authorization", "Bearer admin"),)
    server.banks.CreateBank(_text_bank("b"), metadata=writer)
    admin_calls = {
        "LoadModel": lambda md: server.models.LoadModel(model_pb2.LoadModelRequest(), metadata=md),
        "UnloadModel": lambda md: server.models.UnloadModel(
            model_pb2.UnloadModelRequest(name="nope", version=1), metadata=md
        ),
        "ReindexBank": lambda md: server.banks.ReindexBank(
            bank_pb2.ReindexBankRequest(bank="b", model="babi-joint"), metadata=md
        ),
        "CancelReindex": lambda md: server.banks.CancelReindex(
            bank_pb2.CancelReindexRequest(bank="b"), metadata=md
        ),
    }
    for name, call in admin_calls.items():
        error = rpc_error(lambda call=call: call(writer))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, name
        assert "needs admin" in error.details(), name
    server.models.LoadModel(model_pb2.LoadModelRequest(), metadata=admin)
    error = rpc_error(lambda: admin_calls["UnloadModel"](admin))
    assert error.code() == grpc.StatusCode.NOT_FOUND  # past auth: the model is unknown
    server.banks.ReindexBank(
        bank_pb2.ReindexBankRequest(bank="b", model="babi-joint"), metadata=admin
    )


def test_flat_files_are_version_1_of_the_name_stored_in_them(
    start_server: StartServer, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(SHIPPED, models / "any-file-name.pt")  # stores the name "babi-joint"
    perturbed(models / "babi-joint" / "3" / "model.pt", seed=5)
    server = _start(start_server, models, model_poll_s=0)
    model = server.models.GetModel(model_pb2.GetModelRequest(name="babi-joint")).model
    assert [(v.version, Path(v.source).name) for v in model.versions] == [
        (1, "any-file-name.pt"),  # the models dir gives version 1: it wins over the shipped file
        (3, "model.pt"),
    ]
    assert model.version == 3


@pytest.mark.parametrize("ref", ["babi-joint@", "babi-joint@x", "@2"])
def test_malformed_model_refs_are_invalid(start_server: StartServer, ref: str) -> None:
    server = start_server()
    error = rpc_error(lambda: server.banks.CreateBank(_text_bank("b", ref)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "NAME@VERSION" in error.details()
