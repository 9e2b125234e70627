"""Atomic snapshots of a bank: arrays (.npy), records (JSON), FAISS index, manifest.

A snapshot is written into ``tmp-snapshot-<seq>/``, every file is fsynced, the
directory is renamed to ``snapshot-<seq>/`` and the bank directory is fsynced.
A crash before the rename leaves only a ``tmp-`` directory, which opening
deletes; after the rename the snapshot is whole. The manifest records every
file's size and is checked on load.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from memnet.store import index as ix
from memnet.store.diskfull import disk_full_as_resource_exhausted
from memnet.store.types import BankConfig
from memnet.store.vectors import EMPTY_METADATA, SlotTable
from memnet.store.wal import fsync_dir

LOG = logging.getLogger(__name__)

FORMAT = 1
INDEX_FILE = "index.faiss"
REPLACED_PREFIX = "replaced-"
_ARRAYS = ("keys", "values", "seqs", "written_ns", "alive")


class SnapshotError(RuntimeError):
    """A snapshot directory that does not match its manifest."""


@dataclass
class Loaded:
    seq: int
    config: BankConfig  # the bank's configuration at the snapshot (a reindex changes it)
    table: SlotTable
    index: faiss.Index | None  # None when the snapshot had no usable index file
    trained: bool


def snapshot_dirs(bank_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for p in bank_dir.glob("snapshot-*"):
        try:
            found.append((int(p.name.split("-", 1)[1]), p))
        except ValueError:
            continue
    return sorted(found)


def remove_older(bank_dir: Path, seq: int) -> None:
    """Delete every snapshot except ``snapshot-<seq>``."""
    for s, d in snapshot_dirs(bank_dir):
        if s != seq:
            shutil.rmtree(d)


def remove_temporaries(bank_dir: Path) -> None:
    for p in bank_dir.glob("tmp-*"):
        shutil.rmtree(p, ignore_errors=True)


def _save_array(path: Path, a: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, a, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(
    bank_dir: Path,
    seq: int,
    table: SlotTable,
    index: faiss.Index,
    *,
    trained: bool,
    config: BankConfig,
) -> Path:
    """Write a snapshot of ``table`` + ``index`` as of ``seq``, with the bank's ``config``
    (its model binding, which a reindex changes); returns its directory.

    On any failure the temporary directory is removed again (so a full disk is not left
    fuller) and an existing snapshot is untouched; ENOSPC/EDQUOT raise ResourceExhausted.
    """
    t0 = time.perf_counter()
    final = bank_dir / f"snapshot-{seq:020d}"
    tmp = bank_dir / f"tmp-snapshot-{seq:020d}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with disk_full_as_resource_exhausted(f"cannot write snapshot {seq} of {bank_dir.name}"):
            tmp.mkdir()
            sizes = _write_files(tmp, seq, table, index, trained=trained, config=config)
            _replace(bank_dir, tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total_mib = sum(sizes.values()) / (1 << 20)
    LOG.info(
        "snapshot %s: %d slots, %.1f MiB in %.1f ms",
        final,
        table.n_slots,
        total_mib,
        (time.perf_counter() - t0) * 1e3,
    )
    return final


def _write_files(
    tmp: Path, seq: int, table: SlotTable, index: faiss.Index, *, trained: bool, config: BankConfig
) -> dict[str, int]:
    """Write and fsync every file of a snapshot into ``tmp``, the manifest last."""
    n = table.n_slots
    for name in _ARRAYS:
        _save_array(tmp / f"{name}.npy", getattr(table, name)[:n])
    dims = np.array([-1 if s is None else len(s) for s in table.sources], np.int64)  # (n,)
    present = [s for s in table.sources if s is not None]
    flat = np.concatenate(present).astype(np.float32) if present else np.zeros(0, np.float32)
    _save_array(tmp / "source_dims.npy", dims)
    _save_array(tmp / "sources.npy", flat)
    body = json.dumps(
        {"ids": table.ids, "texts": table.texts, "meta": table.metadata},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    with open(tmp / "records.json", "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    ix.write(index, tmp / INDEX_FILE)
    _fsync_file(tmp / INDEX_FILE)
    sizes = {p.name: p.stat().st_size for p in tmp.iterdir()}
    manifest = {
        "format": FORMAT,
        "seq": seq,
        "n_slots": n,
        "trained": trained,
        "sizes": sizes,
        "config": json.loads(config.model_dump_json()),
    }
    with open(tmp / "manifest.json", "w") as f:
        json.dump(manifest, f)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(tmp)
    return sizes


def _replace(bank_dir: Path, tmp: Path, final: Path) -> None:
    """Rename the complete ``tmp`` to ``final``, never deleting an old ``final`` first.

    An existing ``final`` (a snapshot at the same seq, taken again) is renamed aside to
    ``replaced-<name>`` and deleted only after the new one is renamed in and the
    directory fsynced; ``resolve_interrupted`` sorts out a crash at any step.
    """
    aside = bank_dir / f"{REPLACED_PREFIX}{final.name}"
    if final.exists():
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(final, aside)
    os.rename(tmp, final)
    fsync_dir(bank_dir)
    shutil.rmtree(aside, ignore_errors=True)


def resolve_interrupted(bank_dir: Path) -> None:
    """Undo or finish a snapshot replacement that a crash interrupted.

    ``replaced-snapshot-<seq>`` next to a ``snapshot-<seq>``: the new one was renamed in,
    the old one is deleted. Alone: the new one never arrived, the old one is renamed back.
    """
    for aside in bank_dir.glob(f"{REPLACED_PREFIX}snapshot-*"):
        final = bank_dir / aside.name[len(REPLACED_PREFIX) :]
        if final.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            LOG.warning("%s: a re-snapshot was interrupted; restoring %s", bank_dir, final.name)
            os.rename(aside, final)
            fsync_dir(bank_dir)


def load(directory: Path, config: BankConfig) -> Loaded:
    """Read a snapshot directory; raises SnapshotError if it does not match its manifest.

    The snapshot's own configuration wins over ``config`` (the bank's config.json),
    which describes snapshots written before configurations were recorded in them.
    """
    t0 = time.perf_counter()
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        if "config" in manifest:
            config = BankConfig.model_validate(manifest["config"])
        key_dim, value_dim = config.key_dim, config.value_dim
        for name, size in manifest["sizes"].items():
            if name != INDEX_FILE and (directory / name).stat().st_size != size:
                raise SnapshotError(f"{directory / name} is not {size} bytes")
        n = int(manifest["n_slots"])
        table = SlotTable(key_dim, value_dim, capacity=0)
        for name in _ARRAYS:
            a = np.load(directory / f"{name}.npy", allow_pickle=False)
            if a.shape[0] != n:
                raise SnapshotError(f"{name}.npy: {a.shape[0]} rows, manifest says {n}")
            setattr(table, name, np.ascontiguousarray(a))  # used as is: no second copy
        dims = np.load(directory / "source_dims.npy", allow_pickle=False)
        flat = np.load(directory / "sources.npy", allow_pickle=False)
        body = json.loads((directory / "records.json").read_bytes())
    except (OSError, ValueError, KeyError) as err:  # pydantic's ValidationError is a ValueError
        raise SnapshotError(f"unreadable snapshot {directory}: {err}") from err
    table.ids = body["ids"]
    table.texts = body["texts"]
    table.metadata = [m or EMPTY_METADATA for m in body["meta"]]
    offsets = np.concatenate([[0], np.cumsum(np.maximum(dims, 0))])
    table.sources = [
        None if d < 0 else flat[offsets[i] : offsets[i + 1]] for i, d in enumerate(dims.tolist())
    ]
    table.slot_of = {mid: s for s, mid in enumerate(table.ids) if mid is not None}
    table.n_slots = n
    index = _read_index(directory, manifest["sizes"].get(INDEX_FILE))
    LOG.info(
        "loaded snapshot %s: %d slots in %.1f ms", directory, n, (time.perf_counter() - t0) * 1e3
    )
    return Loaded(int(manifest["seq"]), config, table, index, bool(manifest["trained"]))


def _read_index(directory: Path, size: int | None) -> faiss.Index | None:
    """The snapshot's FAISS index, or None (to be rebuilt from the keys) if it is missing,
    not the size the manifest says, or unreadable: the arrays and records are the truth."""
    path = directory / INDEX_FILE
    try:
        actual = path.stat().st_size
        if size is not None and actual != size:
            problem = f"{actual} bytes, manifest says {size}"
        else:
            return ix.read(path)
    except (OSError, RuntimeError) as err:
        problem = str(err)
    LOG.warning("snapshot %s: index unusable (%s); rebuilding it from the keys", directory, problem)
    return None
