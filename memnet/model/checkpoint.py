"""Checkpoints: weights plus everything needed to rebuild and feed the model."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from memnet.core.card import EvalRecord, ModelCard, flat_settings
from memnet.data.vocab import Vocabulary
from memnet.errors import InvalidArgument, NotFound
from memnet.model.config import ModelConfig
from memnet.model.memn2n import MemN2N

LOG = logging.getLogger(__name__)

FORMAT = "memnet-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    model_config: ModelConfig
    vocab: Vocabulary  # words, index 0 = nil
    answers: Vocabulary  # answer classes, in logit order
    memory_size: int  # sentences of a story kept in memory during training
    sentence_len: int  # T used in training (longer sentences are cut when tensorised)
    query_len: int  # Tq used in training
    state_dict: dict[str, torch.Tensor]
    name: str = "memnet"
    description: str = ""
    train_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    task_names: dict[int, str] = field(default_factory=dict)  # task id -> name, as trained
    card: ModelCard = field(default_factory=ModelCard)

    def build_model(self) -> MemN2N:
        model = MemN2N(self.model_config)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model_config": self.model_config.to_dict(),
            "vocab": list(self.vocab.words),
            "answers": list(self.answers.words),
            "memory_size": self.memory_size,
            "sentence_len": self.sentence_len,
            "query_len": self.query_len,
            "state_dict": self.state_dict,
            "name": self.name,
            "description": self.description,
            "train_config": self.train_config,
            "metrics": self.metrics,
            "task_names": [[task, name] for task, name in sorted(self.task_names.items())],
            "card": self.card.to_dict(),
        }


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    """Write to a temporary name, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt.to_dict(), tmp)
    os.replace(tmp, path)
    LOG.info("saved checkpoint %s (%d bytes)", path, path.stat().st_size)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint; one written before model cards gets a card from what it kept."""
    if not path.is_file():
        raise NotFound(f"checkpoint {path} does not exist", field="checkpoint")
    d = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise InvalidArgument(f"{path} is not a {FORMAT} file", field="checkpoint")
    train_config = dict(d.get("train_config", {}))
    metrics = dict(d.get("metrics", {}))
    task_names = {int(t): str(n) for t, n in d.get("task_names", [])} or {
        int(t): "" for t in train_config.get("tasks", [])
    }
    card = ModelCard.from_dict(d["card"]) if "card" in d else legacy_card(train_config, metrics)
    return Checkpoint(
        model_config=ModelConfig.from_dict(d["model_config"]),
        vocab=Vocabulary(tuple(d["vocab"])),
        answers=Vocabulary(tuple(d["answers"])),
        memory_size=int(d["memory_size"]),
        sentence_len=int(d["sentence_len"]),
        query_len=int(d["query_len"]),
        state_dict=d["state_dict"],
        name=str(d.get("name", path.stem)),
        description=str(d.get("description", "")),
        train_config=train_config,
        metrics=metrics,
        task_names=task_names,
        card=card,
    )


def legacy_card(train_config: dict[str, Any], metrics: dict[str, Any]) -> ModelCard:
    """The card of a checkpoint written before cards: its settings and validation result."""
    results: tuple[EvalRecord, ...] = ()
    if "valid_mean_error_pct" in metrics:
        tasks = metrics.get("valid_tasks", [])
        results = (
            EvalRecord(
                split="validation",
                mean_error_pct=float(metrics["valid_mean_error_pct"]),
                failed_tasks=int(metrics.get("valid_failed_tasks", 0)),
                tasks=len(tasks),
                questions=sum(int(t.get("questions", 0)) for t in tasks),
                data_fingerprint="",
                measured_at="",
            ),
        )
    return ModelCard(
        settings=flat_settings(train_config),
        results=results,
        train_seconds=float(metrics.get("train_seconds", 0.0)),
    )


def record_result(path: Path, record: EvalRecord) -> Checkpoint:
    """Add ``record`` to the card of the checkpoint at ``path`` (rewritten atomically)."""
    ckpt = load_checkpoint(path)
    updated = replace(ckpt, card=ckpt.card.with_result(record))
    save_checkpoint(path, updated)
    return updated
