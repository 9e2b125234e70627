"""The model repository: versions from a directory, live refresh, failures, unloading."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from model_support import tiny_checkpoint

from memnet.errors import FailedPrecondition, InvalidArgument, NotFound
from memnet.model.checkpoint import save_checkpoint
from memnet.serving.contract import InputKind
from memnet.serving.repository import (
    DEFAULT_MODEL,
    ModelRef,
    ModelRepository,
    VersionState,
    load_text_model,
)


def _save(path: Path, seed: int = 0, **options: str) -> Path:
    save_checkpoint(path, tiny_checkpoint(seed=seed, **options))  # type: ignore[arg-type]
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class CountingLoader:
    def __init__(self) -> None:
        self.paths: list[Path] = []

    def __call__(self, path: Path):  # type: ignore[no-untyped-def]
        self.paths.append(path)
        return load_text_model(path)


def test_versions_flat_files_and_the_latest(tmp_path: Path) -> None:
    one = _save(tmp_path / "alpha" / "1" / "model.pt", seed=1)
    two = _save(tmp_path / "alpha" / "2" / "model.pt", seed=2)
    flat = _save(tmp_path / "loose.pt", seed=3)
    for ignored in ("x", "0"):
        _save(tmp_path / "alpha" / ignored / "model.pt", seed=4)
    repo = ModelRepository(models_dir=tmp_path, builtin_dir=None)
    loaded = repo.refresh()
    assert sorted(v.ref for v in loaded) == ["alpha@1", "alpha@2", "tiny-layerwise@1"]
    latest = repo.get("alpha")
    assert (latest.version, latest.fingerprint, latest.source) == (2, _sha256(two), str(two))
    assert repo.get("alpha@1").fingerprint == _sha256(one)
    assert repo.get("tiny-layerwise").source == str(flat)  # a flat file: its stored name
    assert latest.served().info.name == "alpha"  # the directory name wins over the stored one
    assert repo.get("vector").served().info.input_kind is InputKind.VECTOR
    assert repo.default_name == "vector"  # no babi-joint here
    assert [v.ref for v in repo.latest()] == ["alpha@2", "tiny-layerwise@1", "vector@1"]
    for ref, error in [("nope", NotFound), ("alpha@3", NotFound)]:
        with pytest.raises(error) as caught:
            repo.get(ref)
        assert caught.value.field == "model"


def test_refresh_loads_only_what_changed_and_a_bad_file_keeps_the_old_version(
    tmp_path: Path,
) -> None:
    loader = CountingLoader()
    _save(tmp_path / "alpha" / "1" / "model.pt", seed=1)
    repo = ModelRepository(models_dir=tmp_path, builtin_dir=None, loader=loader)
    repo.refresh()
    assert repo.refresh() == [] and len(loader.paths) == 1  # nothing changed: nothing loaded
    new = _save(tmp_path / "alpha" / "2" / "model.pt", seed=2)
    assert [v.ref for v in repo.refresh()] == ["alpha@2"] and repo.get("alpha").version == 2
    bad = tmp_path / "alpha" / "3" / "model.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"not a checkpoint")
    (failed,) = repo.refresh()
    assert failed.state is VersionState.FAILED and "not a readable checkpoint" in failed.error
    assert repo.get("alpha").version == 2 and repo.load_failures == 1  # v2 keeps serving
    with pytest.raises(FailedPrecondition):
        repo.get("alpha@3")
    shutil.copy(new, bad)  # fixed in place: the next scan loads it
    assert [v.state for v in repo.refresh()] == [VersionState.READY]
    assert repo.get("alpha").version == 3


def test_a_replaced_checkpoint_gets_its_new_fingerprint(tmp_path: Path) -> None:
    path = _save(tmp_path / "alpha" / "1" / "model.pt", seed=1)
    repo = ModelRepository(models_dir=tmp_path, builtin_dir=None)
    repo.refresh()
    before = repo.get("alpha@1")
    _save(path, seed=5)
    (after,) = repo.refresh()
    assert after.version == 1 and after.fingerprint == _sha256(path) != before.fingerprint
    assert repo.get("alpha@1").model is not before.model


def test_a_version_given_twice_keeps_the_first_file(tmp_path: Path) -> None:
    first = _save(tmp_path / "a.pt", seed=1)
    _save(tmp_path / "b.pt", seed=2)  # also version 1 of "tiny-layerwise"
    repo = ModelRepository(models_dir=tmp_path, builtin_dir=None)
    repo.refresh()
    assert repo.get("tiny-layerwise").source == str(first)


def test_unservable_checkpoints_fail_without_stopping_the_others(tmp_path: Path) -> None:
    _save(tmp_path / "adjacent" / "1" / "model.pt", tying="adjacent")  # a key space per hop
    _save(tmp_path / "fine" / "1" / "model.pt")
    repo = ModelRepository(models_dir=tmp_path, builtin_dir=None)
    states = {v.ref: v.state for v in repo.refresh()}
    assert states == {"adjacent@1": VersionState.FAILED, "fine@1": VersionState.READY}


def test_unloading_is_refused_while_banks_use_the_version(tmp_path: Path) -> None:
    _save(tmp_path / "alpha" / "1" / "model.pt")
    repo = ModelRepository(models_dir=tmp_path, builtin_dir=None)
    repo.refresh()
    with pytest.raises(FailedPrecondition) as caught:
        repo.unload("alpha", 1, in_use=lambda name, version: ["b1", "b2"])
    assert "b1, b2" in str(caught.value) and caught.value.field == "model"
    repo.unload("alpha", 1, in_use=lambda name, version: [])
    with pytest.raises(NotFound):
        repo.get("alpha")
    with pytest.raises(NotFound):
        repo.unload("alpha", 1, in_use=lambda name, version: [])
    assert [v.ref for v in repo.refresh()] == ["alpha@1"]  # the file is still there


def test_model_refs() -> None:
    assert ModelRef.parse("alpha") == ModelRef("alpha")
    assert ModelRef.parse("alpha@12") == ModelRef("alpha", 12) and str(ModelRef("a", 3)) == "a@3"
    for bad in ("", "@1", "alpha@", "alpha@x", "alpha@0", "alpha@-1"):
        with pytest.raises(InvalidArgument) as caught:
            ModelRef.parse(bad)
        assert caught.value.field == "model"


def test_the_shipped_checkpoints_are_version_1() -> None:
    repo = ModelRepository()
    repo.refresh()
    assert repo.default_name == DEFAULT_MODEL
    shipped = repo.get(DEFAULT_MODEL)
    assert shipped.version == 1 and len(shipped.fingerprint) == 64
    assert shipped.served().info.input_kind is InputKind.TEXT
