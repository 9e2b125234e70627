"""Training splits: train / validation (given, or held out from train) / test.

Everything the model's sizes depend on comes from the training data: the vocabulary
and the answer set (in order of first appearance), the memory size (the longest
training story, at most ``MEMORY_CAP`` sentences), the sentence and question lengths.
Each can be overridden.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from memnet.data.babi import Example, load_task, read_lines, task_file
from memnet.data.tensors import BabiTensors, build_vocabularies, tensorize
from memnet.data.vocab import NIL, Vocabulary
from memnet.errors import InvalidArgument

LOG = logging.getLogger(__name__)

MEMORY_CAP = 50  # most recent sentences kept by default (the authors' code: 50)


@dataclass(frozen=True)
class Splits:
    train: BabiTensors
    valid: BabiTensors
    vocab: Vocabulary
    answers: Vocabulary
    memory_size: int
    sentence_len: int
    query_len: int
    task_names: dict[int, str]
    train_examples: tuple[Example, ...]  # as trained (repeated tasks repeated)


@dataclass(frozen=True)
class SizeOverrides:
    """Sizes and word lists given instead of read off the training data (None: from the data)."""

    memory_size: int | None = None
    sentence_len: int | None = None
    vocab: Vocabulary | None = None
    answers: Vocabulary | None = None


def task_names(
    data_dir: Path, tasks: list[int], fallback_dir: Path | None = None
) -> dict[int, str]:
    """bAbI task number -> its name in the file names ("single-supporting-fact")."""
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


def by_task(examples: Sequence[Example]) -> list[list[Example]]:
    """The examples grouped by task, tasks in order of first appearance."""
    groups: dict[int, list[Example]] = {}
    for ex in examples:
        groups.setdefault(ex.task, []).append(ex)
    return list(groups.values())


def build_splits(
    train_examples: Sequence[Example],
    valid_examples: Sequence[Example] | None,
    *,
    task_names: dict[int, str],
    val_fraction: float,
    seed: int,
    val_split: str = "story",
    balance_tasks: bool = False,
    sizes: SizeOverrides | None = None,
) -> Splits:
    """Train and validation tensors from examples.

    Without ``valid_examples``, ``val_fraction`` of each task's training stories is held
    out (seeded, tasks in order of first appearance). ``balance_tasks`` repeats each
    task's training questions ``task_repeats`` times so that every task weighs about
    the same in an epoch (validation is never repeated).
    """
    sizes = sizes or SizeOverrides()
    if not train_examples:
        raise InvalidArgument("no training question in the data", field="train")
    rng = np.random.default_rng(seed)
    train_by_task: list[list[Example]] = []
    valid_ex: list[Example] = list(valid_examples or [])
    for group in by_task(train_examples):
        if valid_examples is None:
            tr, va = split_train_valid(group, val_fraction, rng, by=val_split)
            valid_ex += va
        else:
            tr = group
        train_by_task.append(tr)
    tasks = [group[0].task for group in train_by_task]
    repeats = task_repeats([len(tr) for tr in train_by_task]) if balance_tasks else None
    train_ex: list[Example] = []
    for i, tr in enumerate(train_by_task):
        train_ex += tr * (repeats[i] if repeats else 1)
    if repeats and max(repeats) > 1:
        LOG.info(
            "balanced tasks: %s",
            ", ".join(
                f"{task_names.get(t) or t} x{r}"
                for t, r in zip(tasks, repeats, strict=True)
                if r > 1
            ),
        )
    if not valid_ex:
        raise InvalidArgument(
            "no validation question: give validation files or a larger val_fraction",
            field="val_fraction",
        )
    # Word and answer lists come from the whole training files (validation questions
    # included: their words and labels are known, their gradients are not used).
    vocab, answers = build_vocabularies(train_ex + valid_ex)
    vocab, answers = sizes.vocab or vocab, sizes.answers or answers
    _check_answers(train_ex, answers)
    longest = max(len(ex.story) for ex in train_ex)
    memory_size = sizes.memory_size or min(longest, MEMORY_CAP)
    sentence_len = sizes.sentence_len or max(
        len(s) for ex in train_ex for s in ex.story[-memory_size:]
    )
    query_len = max(len(ex.question) for ex in train_ex)
    dims = {"memory_size": memory_size, "sentence_len": sentence_len, "query_len": query_len}
    LOG.info(
        "%d task(s): %d train, %d valid questions, V=%d, A=%d, M=%d (longest story %d), T=%d",
        len(tasks),
        len(train_ex),
        len(valid_ex),
        len(vocab),
        len(answers),
        memory_size,
        longest,
        sentence_len,
    )
    return Splits(
        train=tensorize(train_ex, vocab, answers, **dims),
        valid=tensorize(valid_ex, vocab, answers, **dims),
        vocab=vocab,
        answers=answers,
        memory_size=memory_size,
        sentence_len=sentence_len,
        query_len=query_len,
        task_names={t: task_names.get(t, "") for t in tasks},
        train_examples=tuple(train_ex),
    )


def _check_answers(examples: Sequence[Example], answers: Vocabulary) -> None:
    known = answers.index
    missing = next((ex.answer for ex in examples if ex.answer not in known), None)
    if missing is not None:
        raise InvalidArgument(
            f"training answer {missing!r} is not in the answer list", field="answers"
        )


def read_word_list(path: Path, *, with_nil: bool) -> Vocabulary:
    """A vocabulary (or answer list) from a file: one entry a line, in file order."""
    entries: dict[str, int] = {}  # entry -> line
    for lineno, line in enumerate(read_lines(path), start=1):
        entry = line.strip()
        if not entry or entry == NIL:
            continue
        if entry in entries:
            raise InvalidArgument(
                f"{path}:{lineno}: {entry!r} is listed twice (line {entries[entry]})",
                field="vocab",
            )
        entries[entry] = lineno
    if not entries:
        raise InvalidArgument(f"{path}: the list is empty", field="vocab")
    return Vocabulary(tuple(([NIL] if with_nil else []) + list(entries)))


def babi_files(
    data_dir: Path, tasks: list[int], split: str, fallback_dir: Path | None = None
) -> list[Path]:
    """The files ``load_task`` reads for ``tasks`` (missing ones left out)."""
    paths = []
    for t in tasks:
        path = task_file(data_dir, t, split) or (
            task_file(fallback_dir, t, split) if fallback_dir else None
        )
        if path is not None:
            paths.append(path)
    return paths


def load_splits(
    data_dir: Path,
    tasks: list[int],
    *,
    memory_size: int | None = None,
    val_fraction: float,
    seed: int,
    fallback_dir: Path | None = None,
    val_split: str = "story",
    balance_tasks: bool = False,
    sizes: SizeOverrides | None = None,
) -> Splits:
    """Splits of bAbI tasks from a directory of ``qaN_*_{train,test}.txt`` files."""
    examples: list[Example] = []
    for t in tasks:
        offset = 1 + max((ex.story_id for ex in examples), default=-1)
        examples += [
            replace(ex, story_id=ex.story_id + offset)
            for ex in load_task(data_dir, t, "train", fallback_dir=fallback_dir)
        ]
    overrides = sizes or SizeOverrides()
    if memory_size is not None:
        overrides = replace(overrides, memory_size=memory_size)
    return build_splits(
        examples,
        None,
        task_names=task_names(data_dir, tasks, fallback_dir),
        val_fraction=val_fraction,
        seed=seed,
        val_split=val_split,
        balance_tasks=balance_tasks,
        sizes=overrides,
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
