"""The model repository: named models in numbered versions, loaded and refreshed live.

Layout of ``--models-dir D`` (as Triton's model repository):

    D/NAME/VERSION/model.pt   version VERSION (a positive integer) of model NAME
    D/*.pt                    version 1 of the name stored in the checkpoint

The shipped checkpoints (``memnet/checkpoints/*.pt``) are version 1 of their stored
names unless ``D`` holds versions of the same name, and the pass-through "vector"
model is always there. A version is its number plus the SHA-256 fingerprint of its
checkpoint file: a bank records both, so a replaced file is never used for keys that
another file's weights wrote.

``refresh`` (at start, on a timer, or on request) loads new and replaced checkpoints
off the serving path and swaps them in; a checkpoint that fails to load is reported
(``VersionState.FAILED`` with the error) and the versions before it keep serving.
Queries hold the model object they started with, so a swap never drops one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from memnet.errors import FailedPrecondition, InvalidArgument, NotFound
from memnet.serving.contract import ServedModel
from memnet.serving.vector_model import VECTOR_MODEL, VectorPassThroughModel

LOG = logging.getLogger(__name__)

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
DEFAULT_MODEL = "babi-joint"
MODEL_FILE = "model.pt"
BUILTIN_FINGERPRINT = "builtin"
MAX_VERSION = 1_000_000

Loader = Callable[[Path], ServedModel]
InUse = Callable[[str, int], list[str]]  # (name, version) -> banks that use it


class VersionState(StrEnum):
    READY = "ready"  # loaded and serving
    FAILED = "failed"  # its checkpoint could not be loaded (see ``error``)


@dataclass(frozen=True)
class ModelRef:
    """``NAME`` (the latest ready version) or ``NAME@VERSION`` (that version)."""

    name: str
    version: int | None = None

    @classmethod
    def parse(cls, text: str, *, field: str = "model") -> ModelRef:
        name, sep, number = text.partition("@")
        if not name or (sep and not number):
            raise InvalidArgument(
                f"{field} must be NAME or NAME@VERSION, got {text!r}", field=field
            )
        if not sep:
            return cls(name)
        if not number.isdigit() or not 1 <= int(number) <= MAX_VERSION:
            raise InvalidArgument(
                f"{field} must be NAME or NAME@VERSION with VERSION in 1..{MAX_VERSION}, "
                f"got {text!r}",
                field=field,
            )
        return cls(name, int(number))

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ModelVersion:
    """One version of one model, loaded or failed."""

    name: str
    version: int
    fingerprint: str  # SHA-256 hex of the checkpoint file ("builtin" for the vector model)
    source: str  # the checkpoint's path, or "builtin"
    state: VersionState
    model: ServedModel | None  # None when FAILED
    error: str = ""
    loaded_at_s: float = 0.0  # unix time of the load (or of the failure)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def served(self) -> ServedModel:
        if self.model is None:
            raise FailedPrecondition(
                f"model {self.ref} failed to load: {self.error}", field="model"
            )
        return self.model


def fingerprint_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_text_model(path: Path) -> ServedModel:
    """A text checkpoint as a served model (torch is imported here, not at module import).

    InvalidArgument (or FailedPrecondition: not servable) with a one-line reason."""
    from memnet.serving.text_model import TextMemoryModel

    try:
        return TextMemoryModel.from_checkpoint(path)
    except (InvalidArgument, NotFound, FailedPrecondition):
        raise
    except Exception as error:  # torch's unpickler and the model's own checks
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        raise InvalidArgument(
            f"{path} is not a readable checkpoint ({type(error).__name__}: {first_line})",
            field="checkpoint",
        ) from error


@dataclass(frozen=True)
class _Seen:
    """A checkpoint file as last read: to load it again only when it changes."""

    mtime: float
    size: int
    fingerprint: str  # "" when it failed to load
    name: str  # the model name it gave

    def same_as(self, stat: os.stat_result) -> bool:
        return (self.mtime, self.size) == (stat.st_mtime, stat.st_size)


@dataclass(frozen=True)
class _Found:
    """A checkpoint file the scan found, not yet loaded."""

    version: int
    path: Path
    name: str | None  # None: the name is read from the checkpoint (flat *.pt files)


class ModelRepository:
    """Name → versions → model. Thread-safe; ``refresh`` runs off the serving path."""

    def __init__(
        self,
        *,
        models_dir: Path | None = None,
        builtin_dir: Path | None = CHECKPOINT_DIR,
        default_name: str | None = None,
        loader: Loader = load_text_model,
    ) -> None:
        self.models_dir = models_dir
        self._builtin_dir = builtin_dir
        self._loader = loader
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()  # one refresh at a time
        self._versions: dict[str, dict[int, ModelVersion]] = {}
        self._files: dict[Path, _Seen] = {}  # what each checkpoint file held when last read
        self._default_name = default_name
        self.load_failures = 0  # checkpoints that failed to load, since start
        self.add(VectorPassThroughModel())

    # ---- registration ------------------------------------------------------------------

    def add(
        self, model: ServedModel, *, version: int = 1, fingerprint: str = BUILTIN_FINGERPRINT
    ) -> ModelVersion:
        """Register an in-process model (the vector model, test doubles)."""
        entry = ModelVersion(
            name=model.info.name,
            version=version,
            fingerprint=fingerprint,
            source="builtin",
            state=VersionState.READY,
            model=model,
            loaded_at_s=time.time(),
        )
        with self._lock:
            self._versions.setdefault(entry.name, {})[version] = entry
        return entry

    @property
    def default_name(self) -> str:
        if self._default_name is not None:
            return self._default_name
        with self._lock:
            return DEFAULT_MODEL if DEFAULT_MODEL in self._versions else VECTOR_MODEL

    # ---- scanning and loading ----------------------------------------------------------

    def refresh(self, *, only: str | None = None) -> list[ModelVersion]:
        """Load every new or replaced checkpoint (of model ``only``, if given); returns the
        versions this call loaded or failed to load. A version whose file is gone stays
        loaded until it is unloaded (banks may still use it)."""
        with self._refresh_lock:
            claimed: dict[tuple[str, int], Path] = {}  # (name, version) → file, this scan
            changed: list[ModelVersion] = []
            for item in self._scan():
                entry = self._load_if_changed(item, claimed)
                if entry is not None and (only is None or entry.name == only):
                    changed.append(entry)
            return changed

    def _scan(self) -> list[_Found]:
        """Checkpoint files in priority order: versioned directories, flat files of the
        models dir, then the shipped checkpoints (a version the models dir gives wins)."""
        found: list[_Found] = []
        directory = self.models_dir
        if directory is not None and directory.is_dir():
            for model_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
                for version_dir in sorted(p for p in model_dir.iterdir() if p.is_dir()):
                    path = version_dir / MODEL_FILE
                    if version_dir.name.isdigit() and path.is_file():
                        number = int(version_dir.name)
                        if 1 <= number <= MAX_VERSION:
                            found.append(_Found(number, path, model_dir.name))
            found.extend(_Found(1, path, None) for path in sorted(directory.glob("*.pt")))
        if self._builtin_dir is not None and self._builtin_dir.is_dir():
            found.extend(_Found(1, path, None) for path in sorted(self._builtin_dir.glob("*.pt")))
        return found

    def _load_if_changed(
        self, item: _Found, claimed: dict[tuple[str, int], Path]
    ) -> ModelVersion | None:
        """Load ``item`` if its file changed since the last scan; None if nothing changed
        or an earlier file of this scan already gives its (name, version)."""
        try:
            stat = item.path.stat()
        except OSError:
            return None
        seen = self._files.get(item.path)
        if seen is not None and seen.same_as(stat):
            return self._claim(seen.name, item, claimed, fresh=None)
        t0 = time.perf_counter()
        try:
            fingerprint = fingerprint_file(item.path)
            if seen is not None and seen.fingerprint == fingerprint and seen.name:
                self._files[item.path] = _Seen(stat.st_mtime, stat.st_size, fingerprint, seen.name)
                return self._claim(seen.name, item, claimed, fresh=None)
            model = self._loader(item.path)
            if item.name is not None and model.info.name != item.name:
                model = _renamed(model, item.name)
            entry = ModelVersion(
                name=model.info.name,
                version=item.version,
                fingerprint=fingerprint,
                source=str(item.path),
                state=VersionState.READY,
                model=model,
                loaded_at_s=time.time(),
            )
        except Exception as error:  # a bad checkpoint must not stop the others
            self.load_failures += 1
            name = item.name or item.path.stem
            LOG.error(
                "model %s@%d from %s failed to load: %s", name, item.version, item.path, error
            )
            self._files[item.path] = _Seen(stat.st_mtime, stat.st_size, "", name)
            failed = ModelVersion(
                name=name,
                version=item.version,
                fingerprint="",
                source=str(item.path),
                state=VersionState.FAILED,
                model=None,
                error=f"{type(error).__name__}: {error}",
                loaded_at_s=time.time(),
            )
            return self._claim(name, item, claimed, fresh=failed)
        self._files[item.path] = _Seen(stat.st_mtime, stat.st_size, fingerprint, entry.name)
        LOG.info(
            "loaded model %s from %s in %.1f ms (sha256 %s)",
            entry.ref,
            item.path,
            1e3 * (time.perf_counter() - t0),
            fingerprint[:12],
        )
        return self._claim(entry.name, item, claimed, fresh=entry)

    def _claim(
        self,
        name: str,
        item: _Found,
        claimed: dict[tuple[str, int], Path],
        *,
        fresh: ModelVersion | None,
    ) -> ModelVersion | None:
        """Give (name, version) to ``item`` unless an earlier file of the scan has it;
        install ``fresh`` (a new load or failure) if the file keeps its claim."""
        key = (name, item.version)
        owner = claimed.setdefault(key, item.path)
        if owner != item.path:
            if fresh is not None and item.path.parent != self._builtin_dir:
                LOG.warning(
                    "%s: version %d of %s is already given by %s",
                    item.path,
                    item.version,
                    name,
                    owner,
                )
            return None
        if fresh is None:
            return None
        self._put(fresh, keep_ready=fresh.state is VersionState.FAILED)
        return fresh

    def _put(self, entry: ModelVersion, *, keep_ready: bool) -> None:
        """Install ``entry``; a failed load never replaces a ready version of that number
        (it is recorded under the version's error instead)."""
        with self._lock:
            versions = self._versions.setdefault(entry.name, {})
            current = versions.get(entry.version)
            if keep_ready and current is not None and current.state is VersionState.READY:
                versions[entry.version] = replace(current, error=entry.error)
            else:
                versions[entry.version] = entry

    # ---- lookups -----------------------------------------------------------------------

    def get(self, ref: str | ModelRef | None = None) -> ModelVersion:
        """The ready version ``ref`` names (the latest for a bare NAME; the default model
        for None or ""). NotFound names the known models."""
        parsed = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref or self.default_name)
        with self._lock:
            versions = self._versions.get(parsed.name)
            if not versions:
                known = sorted(self._versions)
                raise NotFound(
                    f"model {parsed.name!r} does not exist; known: {known}", field="model"
                )
            latest: ModelVersion | None = None
            if parsed.version is None:  # the newest ready version
                for candidate in versions.values():
                    if candidate.state is VersionState.READY and (
                        latest is None or candidate.version > latest.version
                    ):
                        latest = candidate
        if parsed.version is None:
            if latest is None:
                raise FailedPrecondition(
                    f"model {parsed.name!r} has no version that loaded", field="model"
                )
            return latest
        entry = versions.get(parsed.version)
        if entry is None:
            raise NotFound(
                f"model {parsed} does not exist; versions: {sorted(versions)}", field="model"
            )
        entry.served()  # FailedPrecondition if it failed to load
        return entry

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (ready or failed), by name then number."""
        with self._lock:
            names = [name] if name is not None else sorted(self._versions)
            return [
                v
                for n in names
                for _, v in sorted(self._versions.get(n, {}).items())
            ]  # fmt: skip

    def latest(self) -> list[ModelVersion]:
        """The latest ready version of every model that has one, by name."""
        out = []
        for name in self.names():
            try:
                out.append(self.get(ModelRef(name)))
            except FailedPrecondition:
                continue
        return out

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._versions)

    # ---- unloading ---------------------------------------------------------------------

    def unload(self, name: str, version: int, *, in_use: InUse) -> None:
        """Forget a version; FailedPrecondition naming the banks that still use it."""
        banks = in_use(name, version)
        if banks:
            shown = ", ".join(banks[:10]) + (
                f" and {len(banks) - 10} more" if len(banks) > 10 else ""
            )
            raise FailedPrecondition(
                f"model {name}@{version} is used by bank(s) {shown}: reindex or delete them first",
                field="model",
            )
        with self._lock:
            versions = self._versions.get(name, {})
            entry = versions.pop(version, None)
            if entry is None:
                raise NotFound(f"model {name}@{version} is not loaded", field="model")
            if not versions:
                del self._versions[name]
        for path, _ in list(self._files.items()):
            if str(path) == entry.source:
                del self._files[path]  # a later refresh may load it again
        LOG.info("unloaded model %s", entry.ref)


def _renamed(model: ServedModel, name: str) -> ServedModel:
    """``model`` served under ``name`` (a directory name wins over the stored name)."""
    model.info = replace(model.info, name=name)
    return model


def describe(entries: Iterable[ModelVersion]) -> str:
    return ", ".join(f"{e.ref} ({e.state.value})" for e in entries)
