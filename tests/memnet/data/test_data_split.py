"""The validation split holds out whole stories; the question split (old runs) leaks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memnet.data.babi import Example, find_default_data_dir, load_task, task_file
from memnet.errors import InvalidArgument
from memnet.train.dataset import load_splits, split_train_valid, task_repeats


def _qa17() -> list[Example]:
    data_dir = find_default_data_dir()
    assert data_dir is not None, "bAbI data/babi/en is missing"
    return load_task(data_dir, 17, "train")  # repeats questions within a story


def _pairs(examples: list[Example]) -> set[tuple[object, ...]]:
    return {(ex.story_id, ex.question) for ex in examples}


def test_story_split_keeps_every_story_on_one_side() -> None:
    examples = _qa17()
    train, valid = split_train_valid(examples, 0.1, np.random.default_rng(0), by="story")
    assert len(train) + len(valid) == len(examples)
    train_stories = {ex.story_id for ex in train}
    valid_stories = {ex.story_id for ex in valid}
    assert not train_stories & valid_stories
    n_stories = len(train_stories | valid_stories)
    assert len(valid_stories) == round(0.1 * n_stories)
    assert not _pairs(train) & _pairs(valid)  # no question of a training story held out


def test_question_split_leaks_repeated_questions_into_validation() -> None:
    examples = _qa17()
    train, valid = split_train_valid(examples, 0.1, np.random.default_rng(0), by="question")
    assert len(valid) == round(0.1 * len(examples))
    assert {ex.story_id for ex in train} & {ex.story_id for ex in valid}
    # the same question of the same story on both sides: what the story split prevents
    assert len(_pairs(train) & _pairs(valid)) > 0.3 * len(valid)


def test_question_split_is_the_split_of_earlier_runs() -> None:
    examples = _qa17()
    order = np.random.default_rng(3).permutation(len(examples))
    held = sorted(order[: round(0.1 * len(examples))].tolist())
    _, valid = split_train_valid(examples, 0.1, np.random.default_rng(3), by="question")
    assert valid == [examples[i] for i in held]


def test_splits_are_seeded_and_an_unknown_split_is_refused() -> None:
    data_dir = find_default_data_dir()
    assert data_dir is not None
    a = load_splits(data_dir, [17, 18], memory_size=50, val_fraction=0.1, seed=1)
    b = load_splits(data_dir, [17, 18], memory_size=50, val_fraction=0.1, seed=1)
    assert a.valid.queries.equal(b.valid.queries) and a.train.answers.equal(b.train.answers)
    with pytest.raises(InvalidArgument, match="val_split"):
        load_splits(data_dir, [17], memory_size=50, val_fraction=0.1, seed=1, val_split="x")


def test_task_repeats_match_each_task_to_the_largest() -> None:
    assert task_repeats([9000, 900, 9000]) == [1, 10, 1]  # 10k with qa3 from its 1k file
    assert task_repeats([900, 900]) == [1, 1]
    assert task_repeats([1000, 300]) == [1, 3]  # rounded: 3.33 -> 3
    assert task_repeats([1000, 0]) == [1, 1]  # an empty task is not divided by


def _first_stories(src: Path, dst: Path, n_stories: int) -> None:
    """Copy the first ``n_stories`` stories of a bAbI file (a story starts at line id 1)."""
    kept: list[str] = []
    seen = 0
    for line in src.read_text().splitlines(keepends=True):
        if line.split(" ", 1)[0] == "1":
            seen += 1
            if seen > n_stories:
                break
        kept.append(line)
    dst.write_text("".join(kept))


def test_balance_tasks_repeats_the_smaller_tasks_training_questions(tmp_path: Path) -> None:
    data_dir = find_default_data_dir()
    assert data_dir is not None
    for task in (1, 2):
        for split in ("train", "test"):
            src = task_file(data_dir, task, split)
            assert src is not None
            if task == 2 and split == "train":
                _first_stories(src, tmp_path / src.name, 50)  # about a quarter of qa2
            else:
                (tmp_path / src.name).write_bytes(src.read_bytes())
    plain, balanced = (
        load_splits(tmp_path, [1, 2], memory_size=50, val_fraction=0.1, seed=0, balance_tasks=b)
        for b in (False, True)
    )
    n1, n2 = (int((plain.train.tasks == t).sum()) for t in (1, 2))
    assert n1 > 3 * n2 > 0  # the truncated task really is smaller
    repeats = round(n1 / n2)
    assert int((balanced.train.tasks == 1).sum()) == n1
    assert int((balanced.train.tasks == 2).sum()) == repeats * n2
    # every copy is a copy: the same questions, each `repeats` times
    q2 = balanced.train.queries[balanced.train.tasks == 2]
    assert q2.equal(plain.train.queries[plain.train.tasks == 2].repeat(repeats, 1))
    # validation is never repeated, and the vocabularies do not change
    assert balanced.valid.queries.equal(plain.valid.queries)
    assert balanced.vocab.words == plain.vocab.words
