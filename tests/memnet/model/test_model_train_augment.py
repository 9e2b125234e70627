"""Entity renaming (--augment-entities) by discovered classes: renamed questions stay valid."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from model_support import qa1_config

from memnet.data.babi import find_default_data_dir
from memnet.data.vocab import Vocabulary
from memnet.errors import InvalidArgument
from memnet.train.augment import EntityRenamer
from memnet.train.dataset import Splits, load_splits
from memnet.train.trainer import train
from memnet.train.word_classes import Verdict, WordClassReport

OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}
LETTER = {"north": "n", "south": "s", "east": "e", "west": "w"}


@dataclass(frozen=True)
class Question:
    story: list[list[str]]  # statements, oldest first
    question: list[str]
    answer: str


@cache
def _splits() -> Splits:
    data_dir = find_default_data_dir()
    assert data_dir is not None, "bAbI data/babi/en is missing"
    return load_splits(data_dir, [1, 11, 17, 19, 20], memory_size=50, val_fraction=0.1, seed=0)


@cache
def _renamer() -> EntityRenamer:
    sp = _splits()
    return EntityRenamer.for_examples(sp.vocab, sp.answers, sp.train_examples)


def _renamed(task: int, n: int, seed: int) -> tuple[list[Question], list[Question]]:
    """The first ``n`` training questions of ``task`` as words, before and after renaming."""
    sp = _splits()
    tr = sp.train
    idx = (tr.tasks == task).nonzero().flatten()[:n]
    rng = np.random.default_rng(seed)
    stories, queries, answers = _renamer()(
        tr.stories[idx], tr.queries[idx], tr.answers[idx], tr.tasks[idx], rng
    )
    w = sp.vocab.words

    def words(i: int, s: torch.Tensor, q: torch.Tensor, a: torch.Tensor) -> Question:
        rows = s[i, : int(tr.lengths[idx[i]])].tolist()  # slot 0 = newest
        return Question(
            story=[[w[t] for t in row if t] for row in rows][::-1],
            question=[w[t] for t in q[i].tolist() if t],
            answer=sp.answers.words[int(a[i])],
        )

    originals = (tr.stories[idx], tr.queries[idx], tr.answers[idx])
    before = [words(i, *originals) for i in range(len(idx))]
    after = [words(i, stories, queries, answers) for i in range(len(idx))]
    return before, after


def _where_is(q: Question) -> str:
    """qa1: the place in the last statement about the person asked for."""
    person = q.question[-1]
    moves = [s for s in q.story if s[0] == person]
    return str(moves[-1][-1])


def _path(q: Question) -> str:
    """qa19: the two compass letters from the question's first place to its second."""
    step: dict[tuple[str, str], str] = {}  # (from, to) -> direction
    for s in q.story:
        a, direction, b = s[1], s[3], s[-1]  # "the A is DIR of the B"
        step[(b, a)], step[(a, b)] = direction, OPPOSITE[direction]
    start, goal = q.question[-4], q.question[-1]
    paths = [
        f"{LETTER[d1]},{LETTER[d2]}"
        for (x, mid), d1 in step.items()
        if x == start
        for (y, end), d2 in step.items()
        if y == mid and end == goal
    ]
    assert len(set(paths)) == 1, paths
    return paths[0]


@pytest.mark.parametrize(("task", "solve", "min_moved"), [(1, _where_is, 100), (19, _path, 0)])
def test_a_renamed_question_keeps_the_answer_its_story_implies(
    task: int, solve: Callable[[Question], str], min_moved: int
) -> None:
    before, after = _renamed(task, 200, seed=5)
    assert all(solve(q) == q.answer for q in before)  # the solver is right
    assert all(solve(q) == q.answer for q in after)
    changed = [b.story != a.story for b, a in zip(before, after, strict=True)]
    assert sum(changed) > 150  # most questions got another renaming than the identity
    moved = [b.answer != a.answer for b, a in zip(before, after, strict=True)]
    assert sum(moved) >= min_moved  # qa19's answers are letters: no class holds them


def test_renaming_is_one_to_one_and_leaves_unsafe_classes_alone() -> None:
    compass = {"north", "south", "east", "west"}
    for task, fixed in [
        (11, {"he", "she", "moved", "went", "journeyed", "travelled"}),
        (17, {"above", "below", "left", "right", "triangle", "rectangle"}),
        (19, compass),
        (20, {"kitchen", "garden", "hungry", "tired", "john", "sumit"}),  # rule-answered
    ]:
        before, after = _renamed(task, 100, seed=1)
        for b, a in zip(before, after, strict=True):
            texts = zip([*b.story, b.question], [*a.story, a.question], strict=True)
            pairs = {(x, y) for sb, sa in texts for x, y in zip(sb, sa, strict=True)}
            forward = dict(pairs)
            assert len(forward) == len(pairs)  # a word is always renamed the same way
            assert len(set(forward.values())) == len(forward)  # and no two words alike
            assert all(forward[w] == w for w in fixed if w in forward)
            if task == 20:
                assert a == b


def test_discovered_classes_on_babi_are_its_entities() -> None:
    report = _renamer().report
    classes = {frozenset(c) for c in report.classes}
    names = {"mary", "john", "daniel", "sandra"}
    assert any(names <= c for c in classes)
    assert any({"kitchen", "garden", "office"} <= c for c in classes)
    compass = next(i for i, c in enumerate(report.classes) if "north" in c)
    assert not any(compass in renamed for renamed in report.renamed.values())
    task4_free = {t: v for (c, t), v in report.verdicts.items() if c == compass}
    assert task4_free == {19: Verdict.STORY_ONLY}  # qa4 is not among these tasks
    assert report.renamed[20] == ()  # qa20: "tired" -> "bedroom" is a rule
    assert "renamed in" in report.describe()


def test_a_question_whose_renamed_answer_is_no_class_is_left_alone() -> None:
    vocab = Vocabulary(("<nil>", "apple", "daniel", "john", "milk", "took"))
    answers = Vocabulary(("apple,milk",))
    report = WordClassReport(
        classes=(("apple", "milk"), ("daniel", "john")),
        verdicts={(0, 8): Verdict.SAFE, (1, 8): Verdict.SAFE},
        renamed={8: (0, 1)},
    )
    renamer = EntityRenamer(vocab, answers, report, {8: {"apple", "daniel", "john", "milk"}})
    stories = torch.tensor([[[3, 5, 1], [3, 5, 4]]] * 64)  # "john took apple", "john took milk"
    queries = torch.tensor([[3]] * 64)
    tasks = torch.full((64,), 8)
    out, q, a = renamer(
        stories, queries, torch.zeros(64, dtype=torch.int64), tasks, np.random.default_rng(0)
    )
    assert torch.equal(a, torch.zeros(64, dtype=torch.int64))
    # "milk,apple" is not an answer: apple and milk are never swapped
    assert torch.equal(out[..., 1:], stories[..., 1:])
    names = out[:, 0, 0]
    assert set(names.tolist()) == {2, 3}  # john -> daniel happens when the objects stay
    assert torch.equal(q[:, 0], names)


def test_a_class_renamed_elsewhere_is_renamed_only_in_tasks_that_use_two_members() -> None:
    vocab = Vocabulary(("<nil>", "ann", "bob", "cy", "went"))
    report = WordClassReport(
        classes=(("ann", "bob", "cy"),),
        verdicts={(0, 1): Verdict.SAFE, (0, 2): Verdict.STORY_ONLY},
        renamed={1: (0,), 2: (0,), 3: (0,)},
    )
    renamer = EntityRenamer(
        vocab, Vocabulary(("x",)), report, {1: {"ann", "bob"}, 2: {"ann", "cy"}, 3: {"bob"}}
    )
    assert [tc.words for tc in renamer.by_task[1]] == [("ann", "bob")]
    assert [tc.words for tc in renamer.by_task[2]] == [("ann", "cy")]
    assert renamer.by_task[3] == []  # one member: nothing to permute


def test_training_with_renaming_records_it_and_trains_on_renamed_questions(
    tmp_path: Path,
) -> None:
    cfg = qa1_config(epochs=1, ls_epochs=0, seed=2)
    model = {"dim": 12, "tying": "kv", "hops": 2}
    plain = train(cfg, model, tmp_path / "p.pt", progress=False)
    renamed = train(replace(cfg, augment_entities=True), model, tmp_path / "r.pt", progress=False)
    assert renamed.train_config["augment_entities"] is True
    assert plain.train_config["augment_entities"] is False
    found = renamed.metrics["word_classes"]
    assert any({"mary", "john"} <= set(c) for c in found["classes"])
    assert found["renamed"]["1"]  # qa1 renames at least one class
    assert "word_classes" not in plain.metrics
    changed = [not torch.equal(v, renamed.state_dict[k]) for k, v in plain.state_dict.items()]
    assert any(changed)


def test_a_renamed_averaged_run_resumed_with_more_epochs_equals_the_longer_run(
    tmp_path: Path,
) -> None:
    # A run stopped and resumed with a larger --epochs must take the same steps, draw
    # the same renamings and keep the same average as one run of the full length.
    cfg = qa1_config(
        epochs=3, ls_epochs=1, decay_every=1, seed=5, ema_decay=0.9, augment_entities=True
    )
    model = {"dim": 12, "tying": "kv", "hops": 2}
    out = tmp_path / "r.pt"
    train(replace(cfg, epochs=1), model, out, progress=False)  # 2 of the 4 epochs
    resumed = train(cfg, model, out, resume=True, progress=False)
    longer = train(cfg, model, tmp_path / "l.pt", progress=False)
    assert [h["epoch"] for h in resumed.metrics["history"]] == [1, 2, 3, 4]
    for a, b in zip(resumed.metrics["history"], longer.metrics["history"], strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-4
        assert abs(a["val_acc"] - b["val_acc"]) < 1e-6
    for k, v in longer.state_dict.items():
        torch.testing.assert_close(resumed.state_dict[k], v)


def test_resuming_with_another_renaming_is_refused(tmp_path: Path) -> None:
    cfg = qa1_config(epochs=1, ls_epochs=0, augment_entities=True)
    model = {"dim": 8, "tying": "kv", "hops": 1}
    out = tmp_path / "r.pt"
    train(cfg, model, out, progress=False)
    longer = replace(cfg, epochs=2)
    with pytest.raises(InvalidArgument, match="--augment-entities") as err:
        train(replace(longer, augment_entities=False), model, out, resume=True, progress=False)
    assert err.value.field == "augment_entities"
    resumed = train(longer, model, out, resume=True, progress=False)  # same setting: resumes
    assert len(resumed.metrics["history"]) == 2
