"""Model versions and reindex through the SDK (sync and async) and ``memnet banks``."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_support import FAST_RETRY, QA1_STORY, RunningServer, serve

from memnet_cli import main
from memnet_client import AsyncMemnetClient, Bank, MemnetClient
from memnet_client.errors import FailedPrecondition, ValidationError
from memnet_server.app import load_models
from memnet_server.config import ServerSettings

SHIPPED = Path(load_models(ServerSettings()).get("babi-joint").source)


@pytest.fixture(scope="module")
def versioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server whose models directory adds babi-joint@2 (a copy of the shipped file)."""
    root = tmp_path_factory.mktemp("versions")
    (root / "models" / "babi-joint" / "2").mkdir(parents=True)
    shutil.copy(SHIPPED, root / "models" / "babi-joint" / "2" / "model.pt")
    with serve(root / "data", models_dir=root / "models", model_poll_s=0) as running:
        yield running


def _wait(client: MemnetClient, name: str) -> Bank:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        bank = client.get_bank(name)
        assert bank.reindex is not None
        if bank.reindex.state != "reindexing":
            return bank
        time.sleep(0.05)
    raise AssertionError("the reindex did not end")


def test_versions_and_reindex_with_the_sync_client(versioned: RunningServer) -> None:
    with MemnetClient(versioned.target, retry=FAST_RETRY) as client:
        model = client.get_model("babi-joint")
        assert model.version == 2 and model.ref == "babi-joint@2"
        assert [(v.version, v.state) for v in model.versions] == [(1, "ready"), (2, "ready")]
        assert model.versions[0].fingerprint == model.fingerprint  # the same file, copied
        assert client.get_model("babi-joint@1").version == 1
        bank = client.create_bank("sync", model="babi-joint@1")
        assert (bank.model_version, bank.model_ref) == (1, "babi-joint@1")
        client.write("sync", QA1_STORY)
        started = client.reindex_bank("sync", "babi-joint", version=2)
        assert started.reindex is not None and started.reindex.to_model == "babi-joint@2"
        done = _wait(client, "sync")
        assert done.reindex is not None and done.reindex.state == "done"
        assert done.model_ref == "babi-joint@2" and done.reindex.done >= len(QA1_STORY)
        assert client.query("sync", "Where is Mary?").model_version == 2
        assert client.load_models("babi-joint") == []  # nothing new in the directory
        with pytest.raises(FailedPrecondition) as in_use:
            client.unload_model("babi-joint", 2)
        assert "sync" in str(in_use.value)
        with pytest.raises(FailedPrecondition):
            client.cancel_reindex("sync")  # none is running
        with pytest.raises(ValidationError):
            client.reindex_bank("sync", "")


def test_reindex_with_the_async_client(versioned: RunningServer) -> None:
    async def run() -> tuple[int, int]:
        async with AsyncMemnetClient(versioned.target, retry=FAST_RETRY) as client:
            await client.create_bank("async", model="babi-joint@2")
            await client.write("async", QA1_STORY)
            await client.reindex_bank("async", "babi-joint@1")
            for _ in range(600):
                bank = await client.get_bank("async")
                assert bank.reindex is not None
                if bank.reindex.state != "reindexing":
                    break
                await asyncio.sleep(0.05)
            versions = await client.load_models()
            return bank.model_version, len(versions)

    assert asyncio.run(run()) == (1, 0)


def test_memnet_banks_reindex_and_get(
    versioned: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    target = ("--target", versioned.target)
    with MemnetClient(versioned.target, retry=FAST_RETRY) as client:
        client.create_bank("cli", model="babi-joint@2")
        client.write("cli", QA1_STORY)
    code = main(["banks", "reindex", "cli", "--model", "babi-joint", "--version", "1", *target])
    out = capsys.readouterr().out
    assert code == 0 and "model:       babi-joint@1" in out and "reindex:     done" in out
    assert main(["banks", "get", "cli", *target]) == 0
    assert "model:       babi-joint@1" in capsys.readouterr().out
    code = main(["banks", "reindex", "cli", "--model", "vector", *target])
    assert code == 2 and "takes vectors" in capsys.readouterr().err
