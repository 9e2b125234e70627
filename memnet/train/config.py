"""A training run's settings: its data (a bAbI directory or named files) and its recipe."""

from __future__ import annotations

from dataclasses import dataclass

from memnet.errors import InvalidArgument


@dataclass(frozen=True)
class TrainConfig:
    """A training run: its data (a bAbI directory or named files) and its recipe."""

    data_dir: str | None = None  # bAbI qaN_*_train.txt files (with ``tasks``)
    tasks: tuple[int, ...] = ()  # bAbI task numbers, with data_dir
    train_files: tuple[str, ...] = ()  # bAbI-format or .jsonl files (instead of data_dir)
    valid_files: tuple[str, ...] = ()  # with train_files; none: held out from train
    task_names: tuple[str, ...] = ()  # with train_files: the tasks trained (empty = all)
    fallback_data_dir: str | None = None  # supplies task files missing from data_dir
    memory_size: int | None = None  # None: the longest training story, at most 50
    sentence_len: int | None = None  # None: the longest training statement
    vocab_file: str | None = None  # the word list to use instead of the data's
    answers_file: str | None = None  # the answer list to use instead of the data's
    epochs: int = 60  # softmax phase
    ls_epochs: int = 30  # linear-start phase before it (0 = none)
    lr: float = 0.01
    ls_lr: float = 0.005
    decay_every: int = 15
    decay: float = 0.5
    batch_size: int = 32
    bucket: int = 20  # batches per length-sorting pool (0 = plain random batches)
    max_grad_norm: float = 40.0
    random_noise: float = 0.1  # fraction of empty memories interleaved in time (0 = off)
    val_fraction: float = 0.1
    val_split: str = "story"  # whole stories held out; "question": runs up to 2026-12-01
    balance_tasks: bool = False  # repeat small tasks' train questions (10k qa3 from 1k)
    augment_entities: bool = False  # rename entities by discovered word classes
    optimizer: str = "sgd"  # "sgd" (reference) or "adam"
    weight_decay: float = 0.0  # L2 penalty applied by the optimizer
    ema_decay: float = 0.0  # weights validated and saved: an EMA of the softmax steps (0 = off)
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema_decay < 1.0:
            raise InvalidArgument(
                f"ema_decay must be in [0, 1), got {self.ema_decay}", field="ema_decay"
            )
        if (self.data_dir is None) == (not self.train_files):
            raise InvalidArgument(
                "give either a bAbI data directory or training files, not both",
                field="train",
            )
        if self.data_dir is not None and not self.tasks:
            raise InvalidArgument("a bAbI data directory needs tasks", field="tasks")
        if self.valid_files and not self.train_files:
            raise InvalidArgument("validation files go with training files", field="valid")
        for name in ("memory_size", "sentence_len"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidArgument(f"{name} must be >= 1, got {value}", field=name)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch`` counted over both phases."""
        if epoch < self.ls_epochs:
            return self.ls_lr
        return self.lr * self.decay ** ((epoch - self.ls_epochs) // self.decay_every)
