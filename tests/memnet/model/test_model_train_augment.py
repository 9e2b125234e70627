"""Entity renaming (--augment-entities): renamed questions stay valid bAbI questions; resume."""

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
from memnet.train.augment import ENTITY_CLASSES, EntityRenamer, classes_without, draw_renaming
from memnet.train.dataset import Splits, load_splits
from memnet.train.trainer import TrainConfig, train

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


def _renamed(task: int, n: int, seed: int) -> tuple[list[Question], list[Question]]:
    """The first ``n`` training questions of ``task`` as words, before and after renaming."""
    sp = _splits()
    tr = sp.train
    idx = (tr.tasks == task).nonzero().flatten()[:n]
    renamer = EntityRenamer.for_data(sp.vocab, sp.answers, tr.stories, tr.queries, tr.tasks)
    rng = np.random.default_rng(seed)
    stories, queries, answers = renamer(
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


@pytest.mark.parametrize(("task", "solve"), [(1, _where_is), (19, _path)])
def test_a_renamed_question_keeps_the_answer_its_story_implies(
    task: int, solve: Callable[[Question], str]
) -> None:
    before, after = _renamed(task, 200, seed=5)
    assert all(solve(q) == q.answer for q in before)  # the solver is right
    assert all(solve(q) == q.answer for q in after)
    changed = [b.story != a.story for b, a in zip(before, after, strict=True)]
    assert sum(changed) > 150  # most questions got another renaming than the identity
    moved = [b.answer != a.answer for b, a in zip(before, after, strict=True)]
    assert sum(moved) > 100


def test_renaming_is_one_to_one_on_class_words_and_keeps_the_rest() -> None:
    words_of = {c.name: {m[0] for m in c.members} for c in ENTITY_CLASSES}
    female, places = words_of["female names"], words_of["places"]
    for task, fixed in [(11, {"he", "she"}), (20, places), (17, {"triangle", "rectangle"})]:
        before, after = _renamed(task, 100, seed=1)
        for b, a in zip(before, after, strict=True):
            texts = zip([*b.story, b.question], [*a.story, a.question], strict=True)
            pairs = {(x, y) for sb, sa in texts for x, y in zip(sb, sa, strict=True)}
            forward = dict(pairs)
            assert len(forward) == len(pairs)  # a word is always renamed the same way
            assert len(set(forward.values())) == len(forward)  # and no two words alike
            assert all(forward[w] == w for w in fixed if w in forward)
            assert all((x in female) == (y in female) for x, y in pairs)  # gender kept


def test_direction_renamings_keep_opposites_opposite() -> None:
    compass, qa17 = (c for c in ENTITY_CLASSES if c.opposites)
    rng = np.random.default_rng(0)
    for cls, expected in [(compass, 8), (qa17, 4)]:
        drawn = {tuple(draw_renaming(cls, 4, rng).tolist()) for _ in range(200)}
        assert len(drawn) == expected  # the whole group of opposite-keeping renamings
        for to in drawn:
            assert sorted(to) == [0, 1, 2, 3]
            assert all(to[i] // 2 == to[i ^ 1] // 2 for i in range(4))  # a pair stays a pair
            if not cls.exchange_pairs:
                assert all(to[i] // 2 == i // 2 for i in range(4))


def test_a_question_whose_renamed_answer_is_no_class_is_left_alone() -> None:
    vocab = Vocabulary(("<nil>", "apple", "daniel", "john", "milk", "took"))
    answers = Vocabulary(("apple,milk",))
    renamer = EntityRenamer(vocab, answers, {8: {1, 2, 3, 4, 5}})
    stories = torch.tensor([[[3, 5, 1], [3, 5, 4]]] * 64)  # "john took apple", "john took milk"
    queries = torch.tensor([[3]] * 64)
    tasks = torch.full((64,), 8)
    out, q, a = renamer(
        stories, queries, torch.zeros(64, dtype=torch.int64), tasks, np.random.default_rng(0)
    )
    assert torch.equal(a, torch.zeros(64, dtype=torch.int64))
    assert torch.equal(
        out[..., 1:], stories[..., 1:]
    )  # "milk,apple" is not an answer: never swapped
    names = out[:, 0, 0]
    assert set(names.tolist()) == {2, 3}  # john -> daniel happens when the objects stay
    assert torch.equal(q[:, 0], names)


def test_training_with_renaming_records_it_and_trains_on_renamed_questions(
    tmp_path: Path,
) -> None:
    cfg = qa1_config(epochs=1, ls_epochs=0, seed=2)
    model = {"dim": 12, "tying": "kv", "hops": 2}
    plain = train(cfg, model, tmp_path / "p.pt", progress=False)
    renamed = train(replace(cfg, augment_entities=True), model, tmp_path / "r.pt", progress=False)
    assert renamed.train_config["augment_entities"] is True
    assert plain.train_config["augment_entities"] is False
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


def test_a_class_whose_plural_is_missing_for_one_member_is_not_renamed() -> None:
    words = ("<nil>", "afraid", "cat", "cats", "mouse", "wolf", "wolves")  # no "mice"
    renamer = EntityRenamer(Vocabulary(words), Vocabulary(("cat",)), {15: {1, 2, 3, 4, 5, 6}})
    assert renamer.by_task[15] == []
    full = EntityRenamer(
        Vocabulary((*words, "mice")), Vocabulary(("cat",)), {15: {1, 2, 3, 4, 5, 6, 7}}
    )
    assert [c.cls.name for c in full.by_task[15]] == ["qa15 animals"]


def test_a_skipped_class_is_not_renamed_and_the_rest_still_is() -> None:
    words = ("<nil>", "box", "chest", "chocolate", "container", "suitcase", "john", "daniel")
    used = {18: set(range(1, len(words)))}
    answers = Vocabulary(("yes", "no"))
    full = EntityRenamer(Vocabulary(words), answers, used)
    assert [c.cls.name for c in full.by_task[18]] == ["male names", "qa18 objects"]
    kept = EntityRenamer(Vocabulary(words), answers, used, classes_without(("qa18-objects",)))
    assert [c.cls.name for c in kept.by_task[18]] == ["male names"]
    tasks, ans = torch.full((200,), 18), torch.zeros(200, dtype=torch.int64)
    table, _ = kept.tables(tasks, ans, np.random.default_rng(0))  # (200, V)
    assert (table[:, 2:6] == np.arange(2, 6)).all()  # the qa18 objects stay
    assert (table[:, 6] == 7).any()  # john -> daniel still happens


def test_an_unknown_skipped_class_is_refused_naming_the_classes() -> None:
    with pytest.raises(InvalidArgument, match="qa18-objects") as err:
        classes_without(("qa18-object",))
    assert err.value.field == "augment_skip"
    with pytest.raises(InvalidArgument, match="unknown entity class qa18-object"):
        TrainConfig(data_dir="d", tasks=(18,), augment_entities=True, augment_skip=("qa18-object",))


def test_skipping_a_class_without_renaming_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="needs augment_entities") as err:
        TrainConfig(data_dir="d", tasks=(18,), augment_skip=("qa18-objects",))
    assert err.value.field == "augment_skip"


def test_resuming_with_another_renaming_is_refused(tmp_path: Path) -> None:
    cfg = qa1_config(epochs=1, ls_epochs=0, augment_entities=True)
    model = {"dim": 8, "tying": "kv", "hops": 1}
    out = tmp_path / "r.pt"
    first = train(cfg, model, out, progress=False)
    assert first.train_config["augment_skip"] == []
    longer = replace(cfg, epochs=2)
    for changed in (
        replace(longer, augment_entities=False),
        replace(longer, augment_skip=("places",)),
    ):
        with pytest.raises(InvalidArgument, match="--augment-skip") as err:
            train(changed, model, out, resume=True, progress=False)
        assert err.value.field == "augment_entities"
    resumed = train(longer, model, out, resume=True, progress=False)  # same setting: resumes
    assert len(resumed.metrics["history"]) == 2
