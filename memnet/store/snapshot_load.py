"""Reading a snapshot back, verified: nothing that fails its checksum is served.

Format 2 manifests hold every file's size and CRC32C (and their own CRC32C); each file
is checked before it is used. A bad ``index.faiss`` is not fatal (the index is rebuilt
from the verified keys); any other bad file makes the whole snapshot unusable
(``SnapshotError`` naming the file). Format 1 manifests (sizes only) are still read,
with sizes checked as before.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from memnet.store import index as ix
from memnet.store.checksum import file_crc32c
from memnet.store.snapshot import ARRAYS, INDEX_FILE, MANIFEST_FILE, manifest_checksum
from memnet.store.types import BankConfig
from memnet.store.vectors import EMPTY_METADATA, SlotTable

LOG = logging.getLogger(__name__)

# numpy parses a .npy header with ast.literal_eval, and CPython 3.11 builds AST objects
# with per-interpreter state: two banks opening at once (StoreSettings.open_threads) can
# fail with "SystemError: AST constructor recursion depth mismatch". One load at a time.
_NPY_LOAD_LOCK = threading.Lock()


def load_npy(path: Path) -> np.ndarray:
    """The array in the .npy file at ``path`` (no pickles), safe from any thread."""
    with _NPY_LOAD_LOCK:
        return np.load(path, allow_pickle=False)


class SnapshotError(RuntimeError):
    """A snapshot directory that does not match its manifest (or cannot be read)."""


@dataclass
class Loaded:
    seq: int
    config: BankConfig  # the bank's configuration at the snapshot (a reindex changes it)
    table: SlotTable
    index: faiss.Index | None  # None when the snapshot had no usable index file
    trained: bool
    index_problem: str  # why the index file was not used ("" = it was)


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, its own checksum verified (format 2); SnapshotError if unusable."""
    try:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST_FILE).read_bytes())
        if manifest.get("format", 1) >= 2 and manifest["crc32c"] != manifest_checksum(manifest):
            raise SnapshotError(f"{directory / MANIFEST_FILE}: checksum mismatch")
        int(manifest["seq"]), int(manifest["n_slots"])
        return manifest
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SnapshotError(f"{directory / MANIFEST_FILE} is unreadable: {err}") from err


def check_file(directory: Path, manifest: dict[str, Any], name: str) -> str:
    """ "" if ``name`` matches the manifest, else what is wrong with it."""
    path = directory / name
    try:
        if "files" in manifest:
            expected = manifest["files"][name]
            crc, size = file_crc32c(path)
            if size != expected["size"]:
                return f"{path} is {size} bytes, the manifest says {expected['size']}"
            if crc != expected["crc32c"]:
                want = expected["crc32c"]
                return f"{path}: checksum mismatch (crc32c {crc:08x}, expected {want:08x})"
            return ""
        size = manifest["sizes"].get(name)
        actual = path.stat().st_size
        if size is not None and actual != size:
            return f"{path} is {actual} bytes, the manifest says {size}"
        return ""
    except (OSError, KeyError, TypeError) as err:
        return f"{path}: {err}"


def load(directory: Path, config: BankConfig) -> Loaded:
    """Read and verify a snapshot directory; SnapshotError names the first bad file.

    The snapshot's own configuration wins over ``config`` (the bank's config.json),
    which describes snapshots written before configurations were recorded in them.
    """
    t0 = time.perf_counter()
    manifest = read_manifest(directory)
    if "config" in manifest:
        try:
            config = BankConfig.model_validate(manifest["config"])
        except ValueError as err:  # pydantic's ValidationError
            raise SnapshotError(f"{directory / MANIFEST_FILE}: bad config: {err}") from err
    key_dim, value_dim = config.key_dim, config.value_dim
    names = [f"{a}.npy" for a in ARRAYS] + ["source_dims.npy", "sources.npy", "records.json"]
    for name in names:
        if problem := check_file(directory, manifest, name):
            raise SnapshotError(problem)
    n = int(manifest["n_slots"])
    try:
        table = SlotTable(key_dim, value_dim, capacity=0)
        for name in ARRAYS:
            a = load_npy(directory / f"{name}.npy")
            if a.shape[0] != n:
                raise SnapshotError(f"{name}.npy: {a.shape[0]} rows, manifest says {n}")
            setattr(table, name, np.ascontiguousarray(a))  # used as is: no second copy
        dims = load_npy(directory / "source_dims.npy")
        flat = load_npy(directory / "sources.npy")
        body = json.loads((directory / "records.json").read_bytes())
        table.ids = body["ids"]
        table.texts = body["texts"]
        table.metadata = [m or EMPTY_METADATA for m in body["meta"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SnapshotError(f"unreadable snapshot {directory}: {err}") from err
    offsets = np.concatenate([[0], np.cumsum(np.maximum(dims, 0))])
    table.sources = [
        None if d < 0 else flat[offsets[i] : offsets[i + 1]] for i, d in enumerate(dims.tolist())
    ]
    table.slot_of = {mid: s for s, mid in enumerate(table.ids) if mid is not None}
    table.n_slots = n
    index, problem = _read_index(directory, manifest)
    LOG.info(
        "loaded snapshot %s: %d slots in %.1f ms", directory, n, (time.perf_counter() - t0) * 1e3
    )
    return Loaded(int(manifest["seq"]), config, table, index, bool(manifest["trained"]), problem)


def _read_index(directory: Path, manifest: dict[str, Any]) -> tuple[faiss.Index | None, str]:
    """The snapshot's FAISS index, or None and why (to be rebuilt from the keys) if it is
    missing, fails its checksum or size, or is unreadable: the arrays and records are the
    truth."""
    problem = check_file(directory, manifest, INDEX_FILE)
    if not problem:
        try:
            return ix.read(directory / INDEX_FILE), ""
        except (OSError, RuntimeError) as err:
            problem = str(err)
    LOG.warning("snapshot %s: index unusable (%s); rebuilding it from the keys", directory, problem)
    return None, problem
