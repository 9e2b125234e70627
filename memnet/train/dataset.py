"""bAbI splits for training: train / validation (held out from train) / test."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memnet.data.babi import Example, load_task, task_file
from memnet.data.tensors import BabiTensors, build_vocabularies, tensorize
from memnet.data.vocab import Vocabulary
from memnet.errors import InvalidArgument

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Splits:
    train: BabiTensors
    valid: BabiTensors
    vocab: Vocabulary
    answers: Vocabulary
    sentence_len: int
    query_len: int
    task_names: dict[int, str]


def task_names(
    data_dir: Path, tasks: list[int], fallback_dir: Path | None = None
) -> dict[int, str]:
    names = {}
    for t in tasks:
        path = task_file(data_dir, t, "test") or (
            task_file(fallback_dir, t, "test") if fallback_dir else None
        )
        names[t] = path.name.split("_", 1)[1].rsplit("_", 1)[0] if path else ""
    return names


VAL_SPLITS = ("story", "question")


def split_train_valid(
    examples: list[Example], fraction: float, rng: np.random.Generator, *, by: str = "story"
) -> tuple[list[Example], list[Example]]:
    """Hold out ``fraction`` of one task's training stories (or questions) for validation.

    ``by="story"`` holds out whole stories, every question of a story on one side: bAbI
    asks the same question of the same story more than once (qa15, qa17, qa18), so a
    question-level split puts exact copies of training questions into validation.
    ``by="question"`` draws questions independently (the split of runs up to
    2026-12-01, kept to reproduce them).
    """
    if by not in VAL_SPLITS:
        raise InvalidArgument(f"val_split must be one of {VAL_SPLITS}", field="val_split")
    # The unit held out: a story, or a question (its index); one permutation draws them.
    units = [ex.story_id if by == "story" else i for i, ex in enumerate(examples)]
    distinct = sorted(set(units))
    order = rng.permutation(len(distinct))
    held = {distinct[i] for i in order[: round(fraction * len(distinct))].tolist()}
    return (
        [ex for ex, unit in zip(examples, units, strict=True) if unit not in held],
        [ex for ex, unit in zip(examples, units, strict=True) if unit in held],
    )


def task_repeats(counts: list[int]) -> list[int]:
    """How often to repeat each task's training questions so the tasks weigh alike.

    Each task is repeated round(largest / own) times (at least once): in 10k with qa3
    taken from its 1k file, qa3's 900 questions are repeated 10 times to match the
    others' 9,000.
    """
    largest = max(counts, default=0)
    return [max(1, round(largest / n)) if n else 1 for n in counts]


def load_splits(
    data_dir: Path,
    tasks: list[int],
    *,
    memory_size: int,
    val_fraction: float,
    seed: int,
    fallback_dir: Path | None = None,
    val_split: str = "story",
    balance_tasks: bool = False,
) -> Splits:
    """Train and validation tensors; the vocabularies come from the training files.

    ``balance_tasks`` repeats each task's training questions ``task_repeats`` times so
    that every task weighs about the same in an epoch (validation is never repeated).
    """
    rng = np.random.default_rng(seed)
    train_by_task: list[list[Example]] = []
    valid_ex: list[Example] = []
    for t in tasks:
        examples = load_task(data_dir, t, "train", fallback_dir=fallback_dir)
        tr, va = split_train_valid(examples, val_fraction, rng, by=val_split)
        train_by_task.append(tr)
        valid_ex += va
    repeats = task_repeats([len(tr) for tr in train_by_task]) if balance_tasks else None
    train_ex: list[Example] = []
    for i, tr in enumerate(train_by_task):
        train_ex += tr * (repeats[i] if repeats else 1)
    if repeats and max(repeats) > 1:
        LOG.info(
            "balanced tasks: %s",
            ", ".join(f"qa{t} x{r}" for t, r in zip(tasks, repeats, strict=True) if r > 1),
        )
    # Word and answer lists come from the whole training files (validation questions
    # included: their words and labels are known, their gradients are not used).
    vocab, answers = build_vocabularies(train_ex + valid_ex)
    sentence_len = max(len(s) for ex in train_ex for s in ex.story[-memory_size:])
    query_len = max(len(ex.question) for ex in train_ex)
    dims = {"memory_size": memory_size, "sentence_len": sentence_len, "query_len": query_len}
    LOG.info(
        "bAbI tasks %s: %d train, %d valid, V=%d, A=%d, T=%d",
        tasks,
        len(train_ex),
        len(valid_ex),
        len(vocab),
        len(answers),
        sentence_len,
    )
    return Splits(
        train=tensorize(train_ex, vocab, answers, **dims),
        valid=tensorize(valid_ex, vocab, answers, **dims),
        vocab=vocab,
        answers=answers,
        sentence_len=sentence_len,
        query_len=query_len,
        task_names=task_names(data_dir, tasks, fallback_dir),
    )


def load_test(
    data_dir: Path,
    tasks: list[int],
    *,
    vocab: Vocabulary,
    answers: Vocabulary,
    memory_size: int,
    sentence_len: int,
    query_len: int,
    split: str = "test",
) -> BabiTensors:
    examples: list[Example] = []
    for t in tasks:
        examples += load_task(data_dir, t, split)
    return tensorize(
        examples,
        vocab,
        answers,
        memory_size=memory_size,
        sentence_len=sentence_len,
        query_len=query_len,
    )
