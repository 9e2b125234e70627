"""Word classes discovered from the data: who fills which slots, and where renaming is safe."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from memnet.data.babi import Example, load_task
from memnet.data.vocab import tokenize
from memnet.train.word_classes import Verdict, discover, find_classes

PEOPLE = ["ann", "bob", "cy", "dee"]
ROOMS = ["hall", "den", "attic", "porch"]


def _ex(task: int, story: list[str], question: str, answer: str, story_id: int = 0) -> Example:
    return Example(
        task=task,
        story=tuple(tuple(tokenize(s)) for s in story),
        line_ids=tuple(range(len(story))),
        question=tuple(tokenize(question)),
        answer=answer,
        supporting=(),
        story_id=story_id,
    )


def _where_task(rng: random.Random, n: int = 60) -> list[Example]:
    """Task 1: "P went to the R." ... "Where is P?" -> P's last room."""
    out = []
    for i in range(n):
        moves = [(rng.choice(PEOPLE), rng.choice(ROOMS)) for _ in range(4)]
        person = moves[-1][0]
        story = [f"{p} went to the {r}." for p, r in moves]
        out.append(_ex(1, story, f"Where is {person}?", moves[-1][1], i))
    return out


def test_names_and_rooms_fall_into_two_classes_and_question_words_into_none() -> None:
    examples = _where_task(random.Random(0))
    classes = {frozenset(c) for c in find_classes(examples)}
    assert classes == {frozenset(PEOPLE), frozenset(ROOMS)}  # "where", "is" never renamed


def test_verdicts_tell_equality_from_meaning_and_rules() -> None:
    rng = random.Random(1)
    examples = _where_task(rng)
    # Task 2: "is P in the R?" -> "no" whenever R is not in the story: still equality.
    for i in range(40):
        p, r, other = rng.choice(PEOPLE), rng.choice(ROOMS), rng.choice(ROOMS)
        examples.append(
            _ex(
                2,
                [f"{p} went to the {r}."],
                f"is {p} in the {other}?",
                "yes" if r == other else "no",
                100 + i,
            )
        )
    # Task 3: "the R1 is up of the R2. what is the R2 down of?" -> R1: "down" means "up".
    for i in range(40):
        a, b = rng.sample(ROOMS, 2)
        up, down = rng.choice([("up", "down"), ("down", "up")])
        examples.append(
            _ex(3, [f"the {a} is {up} of the {b}."], f"what is the {b} {down} of?", a, 200 + i)
        )
    # Task 4: "P is sleepy. where will P go?" -> a fixed room per mood: a rule.
    moods = {"sleepy": "den", "bored": "porch", "cold": "attic"}
    for i in range(40):
        p, mood = rng.choice(PEOPLE), rng.choice(sorted(moods))
        examples.append(_ex(4, [f"{p} is {mood}."], f"where will {p} go?", moods[mood], 300 + i))
    report = discover(examples)
    rooms = next(i for i, c in enumerate(report.classes) if "den" in c)
    people = next(i for i, c in enumerate(report.classes) if "ann" in c)
    updown = next(i for i, c in enumerate(report.classes) if "up" in c)
    assert report.verdicts[(rooms, 1)] is Verdict.SAFE
    assert report.verdicts[(rooms, 2)] is Verdict.SAFE  # absent rooms always answer "no"
    assert report.verdicts[(updown, 3)] is Verdict.RELATIONAL
    assert report.verdicts[(rooms, 4)] is Verdict.RULE_ANSWERED
    assert rooms in report.renamed[1] and people in report.renamed[2]
    assert updown not in report.renamed[3] and rooms in report.renamed[3]
    assert report.renamed[4] == ()  # a rule may hang on any word: nothing renamed there
    text = report.describe({1: "where", 3: "updown", 4: "moods"})
    assert "kept in moods (rule-answered)" in text and "updown (relational)" in text


def test_a_class_only_in_statements_is_renamed_where_it_is_asked_about_elsewhere() -> None:
    rng = random.Random(2)
    examples = _where_task(rng)
    for i in range(40):  # task 2: people never asked about, only rooms of things
        p, r = rng.choice(PEOPLE), rng.choice(ROOMS)
        examples.append(_ex(2, [f"{p} left the box in the {r}."], "where is the box?", r, 100 + i))
    for i in range(40):  # task 3: moods only in statements, never asked about anywhere
        p = rng.choice(PEOPLE)
        mood = rng.choice(["sleepy", "bored", "cold"])
        examples.append(
            _ex(3, [f"{p} is {mood}.", f"{p} went to the hall."], f"where is {p}?", "hall", 200 + i)
        )
    report = discover(examples)
    people = next(i for i, c in enumerate(report.classes) if "ann" in c)
    moods = next(i for i, c in enumerate(report.classes) if "cold" in c)
    assert report.verdicts[(people, 2)] is Verdict.STORY_ONLY
    assert people in report.renamed[2]  # safe in task 1
    assert report.verdicts[(moods, 3)] is Verdict.STORY_ONLY
    assert moods not in report.renamed[3]  # safe nowhere: may carry meaning


def test_discovery_on_renamed_words_finds_the_renamed_classes_in_the_same_order() -> None:
    data_dir = Path(__file__).resolve().parents[3] / "data" / "babi" / "en"
    examples = [ex for t in (1, 4, 17) for ex in load_task(data_dir, t, "train")][:1500]
    words = sorted({w for ex in examples for s in (*ex.story, ex.question) for w in s})
    words += sorted({a for ex in examples for a in ex.answer.split(",")} - set(words))
    shuffled = words[:]
    random.Random(3).shuffle(shuffled)
    rename = dict(zip(words, [f"w{i}{s[::-1]}" for i, s in enumerate(shuffled)], strict=True))

    def renamed(ex: Example) -> Example:
        return replace(
            ex,
            story=tuple(tuple(rename[w] for w in s) for s in ex.story),
            question=tuple(rename[w] for w in ex.question),
            answer=",".join(rename[a] for a in ex.answer.split(",")),
        )

    plain, copy = discover(examples), discover([renamed(ex) for ex in examples])
    assert copy.classes == tuple(tuple(rename[w] for w in c) for c in plain.classes)
    assert copy.verdicts == plain.verdicts and copy.renamed == plain.renamed


def test_members_whose_identity_predicts_the_answer_are_not_renamed() -> None:
    rng = random.Random(4)
    examples = _where_task(rng)
    size = {"ant": 1, "cup": 2, "box": 3, "van": 4}  # fixed by the "generator"
    for i in range(200):
        a, b = rng.sample(sorted(size), 2)
        small, big = sorted((a, b), key=size.__getitem__)
        story = [f"the {small} fits in the {big}.", f"{rng.choice(PEOPLE)} went to the hall."]
        answer = "yes" if size[a] > size[b] else "no"
        examples.append(_ex(2, story, f"is the {a} bigger than the {b}?", answer, 100 + i))
    report = discover(examples)
    things = next(i for i, c in enumerate(report.classes) if "van" in c)
    rooms = next(i for i, c in enumerate(report.classes) if "den" in c)
    assert report.verdicts[(things, 2)] is Verdict.PREDICTIVE  # "van" is always bigger
    assert things not in report.renamed[2]
    assert report.verdicts[(rooms, 1)] is Verdict.SAFE  # where someone is: no room is special
