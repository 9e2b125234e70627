"""The validation split holds out whole stories; the question split (old runs) leaks."""

from __future__ import annotations

import numpy as np
import pytest

from memnet.data.babi import Example, find_default_data_dir, load_task
from memnet.errors import InvalidArgument
from memnet.train.dataset import load_splits, split_train_valid


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
