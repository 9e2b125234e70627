"""Where a run's examples come from: a bAbI directory, or files the user names.

``load_training_data`` reads the training (and validation) examples of a
``TrainConfig``; ``load_eval_data`` reads test examples for a checkpoint, matching
their tasks to the tasks it was trained on by name. Both return the files they read,
with their SHA-256, for the model card.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from memnet.core.card import DataFile
from memnet.data.babi import load_task, parse_tasks
from memnet.data.files import TaskTable, of_tasks, read_examples
from memnet.data.tensors import BabiTensors, tensorize
from memnet.errors import InvalidArgument
from memnet.train.config import TrainConfig
from memnet.train.dataset import (
    SizeOverrides,
    Splits,
    babi_files,
    build_splits,
    load_splits,
    read_word_list,
    task_names,
)

if TYPE_CHECKING:
    from memnet.model.checkpoint import Checkpoint


@dataclass(frozen=True)
class TrainingData:
    splits: Splits
    files: tuple[DataFile, ...]  # the training files read, in order
    valid_files: tuple[DataFile, ...]  # given validation files ((): held out from train)


def load_training_data(cfg: TrainConfig) -> TrainingData:
    """The splits of ``cfg``'s data; InvalidArgument / NotFound name the file at fault."""
    sizes = SizeOverrides(
        memory_size=cfg.memory_size,
        sentence_len=cfg.sentence_len,
        vocab=read_word_list(Path(cfg.vocab_file), with_nil=True) if cfg.vocab_file else None,
        answers=(
            read_word_list(Path(cfg.answers_file), with_nil=False) if cfg.answers_file else None
        ),
    )
    if cfg.data_dir is not None:
        data_dir = Path(cfg.data_dir)
        fallback = Path(cfg.fallback_data_dir) if cfg.fallback_data_dir else None
        splits = load_splits(
            data_dir,
            list(cfg.tasks),
            val_fraction=cfg.val_fraction,
            val_split=cfg.val_split,
            balance_tasks=cfg.balance_tasks,
            seed=cfg.seed,
            fallback_dir=fallback,
            sizes=sizes,
        )
        paths = babi_files(data_dir, list(cfg.tasks), "train", fallback)
        return TrainingData(splits, tuple(DataFile.of(p) for p in paths), ())
    table = TaskTable()
    train_paths = [Path(p) for p in cfg.train_files]
    valid_paths = [Path(p) for p in cfg.valid_files]
    train = read_examples(train_paths, table)
    valid = read_examples(valid_paths, table) if valid_paths else None
    chosen = table.select(",".join(cfg.task_names)) if cfg.task_names else sorted(table.names)
    train = of_tasks(train, chosen)
    if valid is not None:
        valid = of_tasks(valid, chosen)
    splits = build_splits(
        train,
        valid,
        task_names=table.names,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        val_split=cfg.val_split,
        balance_tasks=cfg.balance_tasks,
        sizes=sizes,
    )
    return TrainingData(
        splits,
        tuple(DataFile.of(p) for p in train_paths),
        tuple(DataFile.of(p) for p in valid_paths),
    )


@dataclass(frozen=True)
class EvalData:
    data: BabiTensors
    task_names: dict[int, str]
    files: tuple[DataFile, ...]
    source: str  # what was read, for reports: the directory or the files


def load_eval_data(
    ckpt: Checkpoint,
    *,
    data_dir: Path | None = None,
    files: list[Path] | None = None,
    tasks: str | None = None,
    split: str = "test",
) -> EvalData:
    """Test (or other split) examples for ``ckpt``, tensorised with its vocabulary and sizes.

    From ``data_dir`` (bAbI files of ``split``; ``tasks`` as numbers, default the
    checkpoint's) or from ``files`` (``tasks`` as names; default the checkpoint's tasks
    found in the files, or every task in them when none is).
    """
    dims = {
        "memory_size": ckpt.memory_size,
        "sentence_len": ckpt.sentence_len,
        "query_len": ckpt.query_len,
    }
    if files:
        table = TaskTable(dict(ckpt.task_names))
        examples = read_examples(files, table)
        present = sorted({ex.task for ex in examples})
        trained = [t for t in present if t in ckpt.task_names]
        chosen = table.select(tasks) if tasks else (trained or present)
        examples = of_tasks(examples, chosen)
        if not examples:
            raise InvalidArgument(f"no question of tasks {tasks!r} in the files", field="tasks")
        return EvalData(
            tensorize(examples, ckpt.vocab, ckpt.answers, **dims),
            {t: table.names[t] for t in chosen},
            tuple(DataFile.of(p) for p in files),
            " ".join(str(p) for p in files),
        )
    if data_dir is None:
        raise InvalidArgument("give a data directory or test files", field="test")
    trained = [int(t) for t in ckpt.train_config.get("tasks", [])]
    numbers = parse_tasks(tasks) if tasks else (trained or parse_tasks("all"))
    babi_examples = [ex for t in numbers for ex in load_task(data_dir, t, split)]
    return EvalData(
        tensorize(babi_examples, ckpt.vocab, ckpt.answers, **dims),
        task_names(data_dir, numbers),
        tuple(DataFile.of(p) for p in babi_files(data_dir, numbers, split)),
        str(data_dir),
    )
