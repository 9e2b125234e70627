"""The model card of a training run: command, settings, data fingerprint, results, time."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from memnet import __version__
from memnet.core.card import EvalRecord, ModelCard, fingerprint, flat_settings, utc_now
from memnet.train.config import TrainConfig
from memnet.train.evaluate import EvalReport
from memnet.train.sources import TrainingData


def train_config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """``cfg`` as stored in a checkpoint (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def eval_record(split: str, report: EvalReport, *, data_fingerprint: str) -> EvalRecord:
    return EvalRecord(
        split=split,
        mean_error_pct=round(report.mean_error_pct, 4),
        failed_tasks=report.failed_tasks,
        tasks=len(report.tasks),
        questions=sum(t.questions for t in report.tasks),
        data_fingerprint=data_fingerprint,
        measured_at=utc_now(),
    )


def training_card(
    cfg: TrainConfig,
    model_options: dict[str, Any],
    data: TrainingData,
    valid_report: EvalReport,
    *,
    command: str,
    train_seconds: float,
    renamed: list[list[str]] | None,
) -> ModelCard:
    """The card of a finished run; its validation result is the first of ``results``.

    The validation data's fingerprint is that of the given validation files, or of the
    training files when validation was held out from them.
    """
    splits = data.splits
    train_fingerprint = fingerprint(data.files)
    summary = {
        "train_questions": str(len(splits.train)),
        "valid_questions": str(len(splits.valid)),
        "tasks": str(len(splits.task_names)),
        "vocabulary": str(len(splits.vocab)),
        "answers": str(len(splits.answers)),
        "memory_size": str(splits.memory_size),
        "sentence_len": str(splits.sentence_len),
        "query_len": str(splits.query_len),
        "validation": "given files" if data.valid_files else "held out from train",
    }
    if renamed is not None:
        summary["renamed_word_classes"] = str(len(renamed))
    valid_fingerprint = fingerprint(data.valid_files) if data.valid_files else train_fingerprint
    return ModelCard(
        command=command,
        settings=flat_settings({**train_config_dict(cfg), "model": model_options}),
        data_files=data.files + data.valid_files,
        data_fingerprint=train_fingerprint,
        data_summary=summary,
        results=(eval_record("validation", valid_report, data_fingerprint=valid_fingerprint),),
        train_seconds=round(train_seconds, 1),
        trained_at=utc_now(),
        memnet_version=__version__,
    )
