"""The models a server can serve, by name: shipped checkpoints plus the pass-through model."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from memnet.errors import NotFound
from memnet.serving.contract import ModelInfo, ServedModel
from memnet.serving.text_model import TextMemoryModel
from memnet.serving.vector_model import VECTOR_MODEL, VectorPassThroughModel

LOG = logging.getLogger(__name__)

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
DEFAULT_MODEL = "babi-joint"


class ModelRegistry:
    """Name -> ``ServedModel``. Thread-safe; models are immutable once added."""

    def __init__(self, *, default_name: str = VECTOR_MODEL) -> None:
        self._models: dict[str, ServedModel] = {}
        self._lock = threading.Lock()
        self.default_name = default_name

    @classmethod
    def load_default(cls, checkpoint_dir: Path | None = None) -> ModelRegistry:
        """Every ``*.pt`` checkpoint shipped in ``memnet/checkpoints`` plus "vector".

        The default model is "babi-joint" when it is there, else "vector".
        """
        registry = cls()
        registry.add(VectorPassThroughModel())
        directory = checkpoint_dir or CHECKPOINT_DIR
        for path in sorted(directory.glob("*.pt")):
            registry.add_checkpoint(path)
        if DEFAULT_MODEL in registry._models:
            registry.default_name = DEFAULT_MODEL
        else:
            LOG.warning(
                "no %s checkpoint in %s: default model is %r",
                DEFAULT_MODEL,
                directory,
                VECTOR_MODEL,
            )
        return registry

    def add(self, model: ServedModel) -> None:
        """Register (or replace) a model under ``model.info.name``."""
        with self._lock:
            self._models[model.info.name] = model

    def add_checkpoint(self, path: str | Path, *, name: str | None = None) -> ModelInfo:
        """Load a text checkpoint (FailedPrecondition if it cannot be served) and register it."""
        t0 = time.perf_counter()
        model = TextMemoryModel.from_checkpoint(path, name=name)
        self.add(model)
        LOG.info(
            "loaded model %r from %s in %.1f ms",
            model.info.name,
            path,
            1000 * (time.perf_counter() - t0),
        )
        return model.info

    def get(self, name: str | None = None) -> ServedModel:
        """The model called ``name`` (the default model for None or "")."""
        key = name or self.default_name
        with self._lock:
            model = self._models.get(key)
        if model is None:
            raise NotFound(
                f"model {key!r} does not exist; known: {sorted(self._models)}", field="model"
            )
        return model

    def models(self) -> list[ServedModel]:
        """Every registered model, sorted by name."""
        with self._lock:
            return [self._models[n] for n in sorted(self._models)]

    def infos(self) -> list[ModelInfo]:
        """Every registered model's info, sorted by name."""
        return [m.info for m in self.models()]
