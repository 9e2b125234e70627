"""Entity renaming: label-preserving rewrites of bAbI training questions.

A bAbI answer depends on what a story says about its entities, not on their names:
renaming the people, places, objects, animals or colours of a story consistently (in
its statements, its question and its answer) gives another valid question of the same
task. ``EntityRenamer`` draws such a renaming for every training question of a batch,
so that a model trained on 1k stories cannot fit them by their particular names.

The classes below are the bAbI v1.2 (en) word classes whose members a story treats
alike. Constraints that keep a renamed question valid:

- people are renamed within their gender (qa11 refers to them by "he" and "she");
- qa20's places and objects are not renamed: its answers follow fixed rules
  (a hungry person goes to the kitchen);
- directions are renamed so that opposites stay opposite (qa4 and qa19 answer
  "what is the kitchen west of" from "... is east of ..."), and the answer's letters
  (qa19: "n,w") follow their words; qa17's "above"/"below" and "left"/"right" stay in
  their pairs, because "to the left of" and "above" take different words around them;
- qa15's animals keep their plurals with them ("cats" follows "cat"); "sheep" is its
  own plural and is not renamed; qa18's "box" also appears in "box of chocolates" and
  is not renamed.

qa18's generator gives every object a fixed size, so the question alone answers 94 % of
its training questions; renaming qa18's objects removes that prior in training while
the test stories keep it (docs/results.md, twelfth round: task 18 varies by seed).
``classes_without`` leaves such a class out (``memnet train --augment-skip qa18-objects``).

Only the members a task's training questions use are renamed in that task. A question
whose renamed answer is not in the answer vocabulary (qa8's lists, "milk,apple", are
answered in story order and not every order occurs) is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from memnet.data.vocab import Vocabulary
from memnet.errors import InvalidArgument

ALL_TASKS = frozenset(range(1, 21))
NOT_QA20 = ALL_TASKS - {20}


@dataclass(frozen=True)
class EntityClass:
    """Words that may be renamed into each other, in the tasks ``tasks``.

    Each member is a tuple of forms renamed together: (singular, plural) or
    (direction, answer letter). With ``opposites``, members (0, 1), (2, 3), ... are
    pairs of opposites: a renaming maps a pair onto a pair (onto itself unless
    ``exchange_pairs``) and may swap its two members.
    """

    name: str
    members: tuple[tuple[str, ...], ...]
    tasks: frozenset[int]
    opposites: bool = False
    exchange_pairs: bool = True


def _single(*words: str) -> tuple[tuple[str, ...], ...]:
    return tuple((w,) for w in words)


ENTITY_CLASSES: tuple[EntityClass, ...] = (
    EntityClass(
        "female names",
        _single("mary", "sandra", "julie", "emily", "gertrude", "jessica", "winona", "lily"),
        ALL_TASKS,
    ),
    EntityClass(
        "male names",
        _single(
            "john",
            "daniel",
            "bill",
            "fred",
            "jeff",
            "bernhard",
            "brian",
            "greg",
            "julius",
            "antoine",
            "jason",
            "sumit",
            "yann",
        ),
        ALL_TASKS,
    ),
    EntityClass(
        "places",
        _single(
            "bathroom",
            "bedroom",
            "garden",
            "hallway",
            "kitchen",
            "office",
            "cinema",
            "park",
            "school",
        ),
        NOT_QA20,
    ),
    EntityClass("objects", _single("apple", "football", "milk"), NOT_QA20),
    EntityClass("qa16 animals", _single("frog", "lion", "rhino", "swan"), frozenset({16})),
    EntityClass(
        "qa15 animals",
        (("cat", "cats"), ("mouse", "mice"), ("wolf", "wolves")),
        frozenset({15}),
    ),
    EntityClass(
        "colours",
        _single("blue", "gray", "green", "pink", "red", "white", "yellow"),
        frozenset({16, 17}),
    ),
    EntityClass(
        "qa18 objects", _single("chest", "chocolate", "container", "suitcase"), frozenset({18})
    ),
    EntityClass(
        "compass",
        (("north", "n"), ("south", "s"), ("east", "e"), ("west", "w")),
        frozenset({4, 19}),
        opposites=True,
    ),
    EntityClass(
        "qa17 directions",
        _single("above", "below", "left", "right"),
        frozenset({17}),
        opposites=True,
        exchange_pairs=False,
    ),
)


def class_slug(cls: EntityClass) -> str:
    """The class's name as a command-line word: "qa18 objects" -> "qa18-objects"."""
    return cls.name.replace(" ", "-")


def classes_without(skip: tuple[str, ...]) -> tuple[EntityClass, ...]:
    """``ENTITY_CLASSES`` less the classes named (by slug) in ``skip``.

    Raises InvalidArgument (field ``augment_skip``) naming the valid slugs for an
    unknown name.
    """
    slugs = [class_slug(c) for c in ENTITY_CLASSES]
    unknown = [name for name in skip if name not in slugs]
    if unknown:
        raise InvalidArgument(
            f"augment_skip: unknown entity class {', '.join(unknown)}; classes: {', '.join(slugs)}",
            field="augment_skip",
        )
    return tuple(c for c in ENTITY_CLASSES if class_slug(c) not in skip)


def draw_renaming(cls: EntityClass, n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``n`` members of ``cls``: member i becomes member out[i]. (n,) int64."""
    if not cls.opposites:
        return rng.permutation(n)
    pairs = n // 2
    order = rng.permutation(pairs) if cls.exchange_pairs else np.arange(pairs)
    flip = rng.integers(0, 2, pairs)  # (pairs,) 1 = the pair's two members trade places
    i = np.arange(n)
    return 2 * order[i // 2] + (i % 2 ^ flip[i // 2])


@dataclass(frozen=True)
class _TaskClass:
    """One class as used in one task: the members present, as word ids and strings."""

    cls: EntityClass
    word_ids: np.ndarray  # (n, F) int64 id of each member's form, -1 = not a word
    forms: tuple[tuple[str, ...], ...]  # (n, F) the forms as strings (answer parts)


class EntityRenamer:
    """Renames the entities of training batches; built from the training tensors.

    ``task_words`` maps each task to the word ids its training questions use; a
    class is renamed in a task when at least two of its members (all of them, for a
    class of opposites) occur there, and each of its forms is a word for all of them
    or for none (qa19's answer letters are never words).
    """

    def __init__(
        self,
        vocab: Vocabulary,
        answers: Vocabulary,
        task_words: dict[int, set[int]],
        classes: tuple[EntityClass, ...] = ENTITY_CLASSES,
    ) -> None:
        self.vocab_size = len(vocab)
        self._answer_index = answers.index
        self._answer_parts = [a.split(",") for a in answers.words]
        word_index = vocab.index
        self.by_task: dict[int, list[_TaskClass]] = {}
        for task, used in task_words.items():
            chosen = []
            for cls in classes:
                if task not in cls.tasks:
                    continue
                present = [m for m in cls.members if word_index.get(m[0], -1) in used]
                if len(present) < 2 or (cls.opposites and len(present) < len(cls.members)):
                    continue
                ids = np.array([[word_index.get(f, -1) for f in m] for m in present])
                if ((ids >= 0).any(axis=0) & (ids < 0).any(axis=0)).any():
                    continue  # a form that is a word for some members only: cannot follow
                chosen.append(_TaskClass(cls, ids, tuple(present)))
            self.by_task[task] = chosen

    @classmethod
    def for_data(
        cls,
        vocab: Vocabulary,
        answers: Vocabulary,
        stories: torch.Tensor,
        queries: torch.Tensor,
        tasks: torch.Tensor,
        *,
        classes: tuple[EntityClass, ...] = ENTITY_CLASSES,
    ) -> EntityRenamer:
        """From training tensors: stories (N, M, T), queries (N, Tq), tasks (N,)."""
        task_words: dict[int, set[int]] = {}
        for t in tasks.unique().tolist():
            rows = tasks == t
            used = torch.cat([stories[rows].flatten(), queries[rows].flatten()]).unique()
            task_words[int(t)] = set(used.tolist()) - {0}
        return cls(vocab, answers, task_words, classes)

    def describe(self) -> str:
        """'qa1: female names, male names, places; ...' for the training log."""
        return "; ".join(
            f"qa{t}: " + ", ".join(c.cls.name for c in chosen)
            for t, chosen in sorted(self.by_task.items())
            if chosen
        )

    def tables(
        self, tasks: torch.Tensor, answers: torch.Tensor, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One renaming per question: word-id tables (B, V) and the new answers (B,)."""
        B = len(tasks)
        table = np.tile(np.arange(self.vocab_size, dtype=np.int64), (B, 1))  # (B, V)
        new_answers = answers.numpy().copy()  # (B,)
        for b, (task, answer) in enumerate(zip(tasks.tolist(), answers.tolist(), strict=True)):
            chosen = self.by_task.get(task, ())
            if not chosen or answer < 0:
                continue
            renamed: dict[str, str] = {}  # answer parts
            for tc in chosen:
                to = draw_renaming(tc.cls, len(tc.forms), rng)  # (n,)
                src, dst = tc.word_ids, tc.word_ids[to]  # (n, F)
                words = (src >= 0) & (dst >= 0)
                table[b, src[words]] = dst[words]
                for i, j in enumerate(to.tolist()):
                    renamed.update(zip(tc.forms[i], tc.forms[j], strict=True))
            parts: list[str] = self._answer_parts[int(answer)]
            new = self._answer_index.get(",".join(renamed.get(p, p) for p in parts))
            if new is None:  # not an answer class: keep the question as it is
                table[b] = np.arange(self.vocab_size)
            else:
                new_answers[b] = new
        return table, new_answers

    def __call__(
        self,
        stories: torch.Tensor,
        queries: torch.Tensor,
        answers: torch.Tensor,
        tasks: torch.Tensor,
        rng: np.random.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Renamed (stories (B, M, T), queries (B, Tq), answers (B,)); nil (0) stays 0."""
        table_np, new_answers = self.tables(tasks, answers, rng)
        table = torch.from_numpy(table_np)  # (B, V)
        B = len(tasks)
        renamed_stories = table.gather(1, stories.reshape(B, -1)).view_as(stories)
        renamed_queries = table.gather(1, queries.reshape(B, -1)).view_as(queries)
        return renamed_stories, renamed_queries, torch.from_numpy(new_answers)
