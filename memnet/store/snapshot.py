"""Atomic snapshots of a bank: arrays (.npy), records (JSON), FAISS index, manifest.

A snapshot is written into ``tmp-snapshot-<seq>/``: every file through the file-system
layer, its CRC32C and size computed as it is written, fsynced; the manifest (format 2:
every file's size and CRC32C, and the manifest's own CRC32C) last; then the directory is
fsynced, renamed to ``snapshot-<seq>/`` and the bank directory fsynced. A crash before
the rename leaves only a ``tmp-`` directory, which opening deletes. Loading
(``snapshot_load``) verifies every checksum before anything is served.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from memnet.store import fs
from memnet.store.checksum import crc32c
from memnet.store.diskfull import disk_full_as_resource_exhausted
from memnet.store.types import BankConfig
from memnet.store.vectors import SlotTable

LOG = logging.getLogger(__name__)

FORMAT = 2  # 1: sizes only (still read); 2: sizes and CRC32C of every file
INDEX_FILE = "index.faiss"
MANIFEST_FILE = "manifest.json"
REPLACED_PREFIX = "replaced-"
ARRAYS = ("keys", "values", "seqs", "written_ns", "alive")


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
            fs.get().rmtree(d)


def remove_temporaries(bank_dir: Path) -> None:
    for p in bank_dir.glob("tmp-*"):
        fs.get().rmtree(p)


def manifest_checksum(manifest: dict[str, Any]) -> int:
    """CRC32C of the manifest's canonical JSON without its own ``crc32c`` field."""
    body = {k: v for k, v in manifest.items() if k != "crc32c"}
    return crc32c(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


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
    layer = fs.get()
    layer.rmtree(tmp)
    try:
        with disk_full_as_resource_exhausted(f"cannot write snapshot {seq} of {bank_dir.name}"):
            layer.mkdir(tmp)
            files = _write_files(tmp, seq, table, index, trained=trained, config=config)
            _replace(bank_dir, tmp, final)
    except BaseException:
        layer.rmtree(tmp)
        raise
    total_mib = sum(f["size"] for f in files.values()) / (1 << 20)
    LOG.info(
        "snapshot %s: %d slots, %.1f MiB in %.1f ms",
        final,
        table.n_slots,
        total_mib,
        (time.perf_counter() - t0) * 1e3,
    )
    return final


def _save_array(path: Path, a: np.ndarray) -> dict[str, int]:
    out = fs.FileWriter(path)
    try:
        np.save(out, a, allow_pickle=False)
        out.sync_and_close()
    finally:
        out.close()
    return {"size": out.size, "crc32c": out.crc}


def _save_bytes(path: Path, data: bytes) -> dict[str, int]:
    out = fs.FileWriter(path)
    try:
        out.write(data)
        out.sync_and_close()
    finally:
        out.close()
    return {"size": out.size, "crc32c": out.crc}


def _save_index(path: Path, index: faiss.Index) -> dict[str, int]:
    out = fs.FileWriter(path)
    try:
        faiss.write_index(index, faiss.PyCallbackIOWriter(out.write))  # type: ignore[attr-defined]
        out.sync_and_close()
    finally:
        out.close()
    return {"size": out.size, "crc32c": out.crc}


def _write_files(
    tmp: Path, seq: int, table: SlotTable, index: faiss.Index, *, trained: bool, config: BankConfig
) -> dict[str, dict[str, int]]:
    """Write and fsync every file of a snapshot into ``tmp``, the manifest last."""
    n = table.n_slots
    files: dict[str, dict[str, int]] = {}
    for name in ARRAYS:
        files[f"{name}.npy"] = _save_array(tmp / f"{name}.npy", getattr(table, name)[:n])
    dims = np.array([-1 if s is None else len(s) for s in table.sources], np.int64)  # (n,)
    present = [s for s in table.sources if s is not None]
    flat = np.concatenate(present).astype(np.float32) if present else np.zeros(0, np.float32)
    files["source_dims.npy"] = _save_array(tmp / "source_dims.npy", dims)
    files["sources.npy"] = _save_array(tmp / "sources.npy", flat)
    body = json.dumps(
        {"ids": table.ids, "texts": table.texts, "meta": table.metadata},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    files["records.json"] = _save_bytes(tmp / "records.json", body)
    files[INDEX_FILE] = _save_index(tmp / INDEX_FILE, index)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "seq": seq,
        "n_slots": n,
        "trained": trained,
        "files": files,
        "sizes": {name: f["size"] for name, f in files.items()},  # format 1 readers
        "config": json.loads(config.model_dump_json()),  # the binding at this snapshot
    }
    manifest["crc32c"] = manifest_checksum(manifest)
    _save_bytes(tmp / MANIFEST_FILE, json.dumps(manifest).encode())
    fs.get().fsync_dir(tmp)
    return files


def _replace(bank_dir: Path, tmp: Path, final: Path) -> None:
    """Rename the complete ``tmp`` to ``final``, never deleting an old ``final`` first.

    An existing ``final`` (a snapshot at the same seq, taken again) is renamed aside to
    ``replaced-<name>`` and deleted only after the new one is renamed in and the
    directory fsynced; ``resolve_interrupted`` sorts out a crash at any step.
    """
    layer = fs.get()
    aside = bank_dir / f"{REPLACED_PREFIX}{final.name}"
    if final.exists():
        layer.rmtree(aside)
        layer.rename(final, aside)
    layer.rename(tmp, final)
    layer.fsync_dir(bank_dir)
    layer.rmtree(aside)


def resolve_interrupted(bank_dir: Path) -> None:
    """Undo or finish a snapshot replacement that a crash interrupted.

    ``replaced-snapshot-<seq>`` next to a ``snapshot-<seq>``: the new one was renamed in,
    the old one is deleted. Alone: the new one never arrived, the old one is renamed back.
    """
    layer = fs.get()
    for aside in bank_dir.glob(f"{REPLACED_PREFIX}snapshot-*"):
        final = bank_dir / aside.name[len(REPLACED_PREFIX) :]
        if final.exists():
            layer.rmtree(aside)
        else:
            LOG.warning("%s: a re-snapshot was interrupted; restoring %s", bank_dir, final.name)
            layer.rename(aside, final)
            layer.fsync_dir(bank_dir)
