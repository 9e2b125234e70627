"""The model card: what a checkpoint records about how it was made and how it scored.

Plain data, no torch: the checkpoint stores it, served models report it
(``ModelInfo.card``), the server sends it (``memnet.api.v1.ModelCard``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

READ_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class DataFile:
    """One file a model was trained or evaluated on: as given, its SHA-256 and size."""

    path: str
    sha256: str
    size_bytes: int

    @classmethod
    def of(cls, path: Path) -> DataFile:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(READ_CHUNK_BYTES):
                digest.update(chunk)
        return cls(str(path), digest.hexdigest(), path.stat().st_size)


def fingerprint(files: Sequence[DataFile]) -> str:
    """SHA-256 over the files' digests in order: the same data gives the same value
    wherever the files are and whatever they are called."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(bytes.fromhex(f.sha256))
    return digest.hexdigest()


@dataclass(frozen=True)
class EvalRecord:
    """One measured result: a split ("validation", "test", ...) of some data."""

    split: str
    mean_error_pct: float
    failed_tasks: int
    tasks: int
    questions: int
    data_fingerprint: str
    measured_at: str  # ISO 8601, UTC

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvalRecord:
        return cls(
            split=str(d["split"]),
            mean_error_pct=float(d["mean_error_pct"]),
            failed_tasks=int(d["failed_tasks"]),
            tasks=int(d["tasks"]),
            questions=int(d["questions"]),
            data_fingerprint=str(d.get("data_fingerprint", "")),
            measured_at=str(d.get("measured_at", "")),
        )


@dataclass(frozen=True)
class ModelCard:
    """How a model was trained (command, settings, data) and what it scored.

    ``settings`` are the training and model options as strings (``"epochs": "150"``,
    ``"model.dim": "100"``); ``data_summary`` describes the data as trained
    (questions, vocabulary, answers, tasks, memory size); ``results`` hold every
    result measured and recorded, oldest first.
    """

    command: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    data_files: tuple[DataFile, ...] = ()  # read in training: training, then validation files
    data_fingerprint: str = ""
    data_summary: dict[str, str] = field(default_factory=dict)
    results: tuple[EvalRecord, ...] = ()
    train_seconds: float = 0.0
    trained_at: str = ""  # ISO 8601, UTC
    memnet_version: str = ""

    def with_result(self, record: EvalRecord) -> ModelCard:
        return replace(self, results=(*self.results, record))

    def latest(self, split: str) -> EvalRecord | None:
        """The last recorded result of ``split``, or None."""
        found = [r for r in self.results if r.split == split]
        return found[-1] if found else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["data_files"] = [asdict(f) for f in self.data_files]
        d["results"] = [asdict(r) for r in self.results]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelCard:
        return cls(
            command=str(d.get("command", "")),
            settings={str(k): str(v) for k, v in dict(d.get("settings", {})).items()},
            data_files=tuple(
                DataFile(str(f["path"]), str(f["sha256"]), int(f["size_bytes"]))
                for f in d.get("data_files", [])
            ),
            data_fingerprint=str(d.get("data_fingerprint", "")),
            data_summary={str(k): str(v) for k, v in dict(d.get("data_summary", {})).items()},
            results=tuple(EvalRecord.from_dict(r) for r in d.get("results", [])),
            train_seconds=float(d.get("train_seconds", 0.0)),
            trained_at=str(d.get("trained_at", "")),
            memnet_version=str(d.get("memnet_version", "")),
        )


def utc_now() -> str:
    """The current time as ISO 8601 UTC, to the second: "2026-12-07T10:00:00Z"."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def flat_settings(options: Mapping[str, Any], *, prefix: str = "") -> dict[str, str]:
    """Options as strings, nested mappings flattened with dots; lists comma-joined."""
    out: dict[str, str] = {}
    for key, value in options.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_settings(value, prefix=f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = ",".join(str(v) for v in value)
        elif value is None:
            out[name] = ""
        else:
            out[name] = str(value)
    return out
