"""Interchangeable word classes, discovered from the training data alone.

Entity renaming (``memnet.train.augment``) trains every question under a fresh
renaming of words that the answers do not depend on by name. Which words those are is
read off the training examples; no word list is given:

1. **Classes: words that fill the same slots.** A *template* is a sentence (statement
   or question) with one word cut out; the words seen in a template's gap are its
   fillers. Two words are linked when the templates they fill overlap: the templates
   both fill, over the smaller word's count of templates, at least ``min_overlap``.
   Only words that occur in statements take part (a word seen only in questions, such
   as a question word, is never renamed); a class is a connected group of linked words.
2. **Per task: is renaming the class safe?** Renaming permutes a class's members
   consistently in a question's statements, its question and its answer, so every
   answer that follows from *which memories mention the same word* still holds. In a
   task, a class is

   - *asked about* when its members occur in questions or answers. It is **safe**
     when every answer member also occurs in the question's statements, and the
     questions that name a member missing from their statements all have one answer
     (a fixed "not so" answer): the answer depends on equality of words alone;
   - **relational** when those questions have different answers (the missing word
     relates to the statements through its meaning, as "up from" to "down from"):
     not renamed in that task;
   - **predictive** when the question's words predict its answer better than the
     same question with the class's members replaced by their pattern of equality
     ("is #0 bigger than #1?"): by more than ``PREDICTIVE_NATS`` of held-out
     log-likelihood per question (leave-one-out counts, add-one smoothing). The
     members' identities then carry a real signal (the data give each one fixed
     properties), which renaming would train the model to ignore: not renamed there;
   - **rule-answered** when some answer member is missing from its question's
     statements (the answer follows from other words by a fixed rule, "sleepy" ->
     "den"): no class at all is renamed in that task, since the rule may hang on any
     of them;
   - *story-only* when its members occur in statements only: renamed when the class
     is safe in at least one task that asks about it.

Everything is ordered by first appearance in the examples, never by spelling, so the
result is the same, word for word, on a copy of the data whose vocabulary is renamed.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from memnet.data.babi import Example

MIN_OVERLAP = 0.3  # share of templates two words must both fill to be linked
PREDICTIVE_NATS = 0.1  # log-likelihood per question the identities must add to count


class Verdict(StrEnum):
    """How a class is used in one task (module docstring)."""

    SAFE = "safe"
    RELATIONAL = "relational"
    PREDICTIVE = "predictive"
    RULE_ANSWERED = "rule-answered"
    STORY_ONLY = "story-only"


@dataclass(frozen=True)
class WordClassReport:
    """The classes found, how each task uses them, and which are renamed where.

    ``classes`` hold words in order of first appearance; ``verdicts`` maps (class
    index, task) to the class's use there, for tasks where at least two members occur;
    ``renamed`` maps each task to the indices of the classes renamed in it.
    """

    classes: tuple[tuple[str, ...], ...]
    verdicts: dict[tuple[int, int], Verdict]
    renamed: dict[int, tuple[int, ...]]

    def describe(self, task_names: dict[int, str] | None = None) -> str:
        """One line per class: its words and the tasks where it is renamed or not, and why."""
        names = task_names or {}
        rule_tasks = {t for (_, t), v in self.verdicts.items() if v is Verdict.RULE_ANSWERED}
        lines = []
        for c, members in enumerate(self.classes):
            used = sorted(t for (k, t) in self.verdicts if k == c)
            renamed = [t for t in used if c in self.renamed.get(t, ())]
            kept = []
            for t in used:
                if t in renamed:
                    continue
                why = self.verdicts[(c, t)].value
                if t in rule_tasks and self.verdicts[(c, t)] is not Verdict.RULE_ANSWERED:
                    why += "; the task is rule-answered"
                kept.append(f"{_task(t, names)} ({why})")
            words = ", ".join(members[:8]) + (f", ... ({len(members)})" if len(members) > 8 else "")
            where = ", ".join(_task(t, names) for t in renamed) or "no task"
            tail = f"; kept in {', '.join(kept)}" if kept else ""
            lines.append(f"[{words}] renamed in {where}{tail}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "classes": [list(c) for c in self.classes],
            "renamed": {str(t): list(cs) for t, cs in sorted(self.renamed.items())},
            "verdicts": [
                {"class": c, "task": t, "verdict": v.value}
                for (c, t), v in sorted(self.verdicts.items())
            ],
        }


def _task(task: int, names: dict[int, str]) -> str:
    return names.get(task) or f"task {task}"


def _first_seen(examples: Sequence[Example]) -> dict[str, int]:
    """Every word of the statements and questions, numbered by first appearance."""
    order: dict[str, int] = {}
    for ex in examples:
        for sentence in (*ex.story, ex.question):
            for w in sentence:
                order.setdefault(w, len(order))
    return order


def find_classes(
    examples: Sequence[Example], *, min_overlap: float = MIN_OVERLAP
) -> list[tuple[str, ...]]:
    """Classes of statement words that fill overlapping templates (module docstring, 1)."""
    order = _first_seen(examples)
    sentences: dict[tuple[str, ...], None] = {}  # distinct sentences, first appearance
    statement_words: set[str] = set()
    for ex in examples:
        for s in ex.story:
            sentences.setdefault(s, None)
            statement_words.update(s)
        sentences.setdefault(ex.question, None)
    fillers: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, None]] = defaultdict(dict)
    for s in sentences:
        for i, w in enumerate(s):
            fillers[(s[:i], s[i + 1 :])][w] = None
    templates: dict[str, int] = defaultdict(int)  # templates with >= 2 fillers, per word
    shared: dict[tuple[str, str], int] = defaultdict(int)  # per pair, in first-seen order
    for words in fillers.values():
        ranked = sorted((w for w in words if w in statement_words), key=order.__getitem__)
        if len(ranked) < 2:
            continue
        for w in ranked:
            templates[w] += 1
        for a, b in itertools.combinations(ranked, 2):
            shared[(a, b)] += 1
    parent = {w: w for w in templates}

    def root(w: str) -> str:
        while parent[w] != w:
            parent[w] = parent[parent[w]]
            w = parent[w]
        return w

    for (a, b), n in shared.items():
        if n >= min_overlap * min(templates[a], templates[b]):
            ra, rb = root(a), root(b)
            if ra != rb:  # the earlier word stays the root: the result follows first appearance
                parent[max(ra, rb, key=order.__getitem__)] = min(ra, rb, key=order.__getitem__)
    groups: dict[str, list[str]] = defaultdict(list)
    for w in sorted(templates, key=order.__getitem__):
        groups[root(w)].append(w)
    classes = [tuple(g) for g in groups.values() if len(g) >= 2]
    return sorted(classes, key=lambda c: order[c[0]])


@dataclass(frozen=True)
class _Question:
    """One example's word sets, computed once for every class."""

    story: frozenset[str]
    question: frozenset[str]
    answer_parts: frozenset[str]
    answer: str
    words: tuple[str, ...]  # the question in order

    @classmethod
    def of(cls, ex: Example) -> _Question:
        story = frozenset(w for s in ex.story for w in s)
        parts = frozenset(ex.answer.split(","))
        return cls(story, frozenset(ex.question), parts, ex.answer, ex.question)

    def pattern(self, members: frozenset[str]) -> tuple[tuple[str, ...], str]:
        """The question and answer with each member replaced by its order of first
        appearance in the question ("#0", "#1"; "#new" for an answer member it lacks)."""
        order: dict[str, int] = {}
        for w in self.words:
            if w in members:
                order.setdefault(w, len(order))
        question = tuple(f"#{order[w]}" if w in order else w for w in self.words)
        answer = ",".join(
            (f"#{order[p]}" if p in order else "#new") if p in members else p
            for p in self.answer.split(",")
        )
        return question, answer


def _verdict(questions: Sequence[_Question], members: frozenset[str]) -> Verdict | None:
    """How one task's questions use a class; None when fewer than two members occur."""
    present: set[str] = set()
    asked = rule = False
    absent_answers: set[str] = set()  # answers of questions naming a member not in the story
    for q in questions:
        in_question = members & q.question
        in_answer = members & q.answer_parts
        present |= (q.story & members) | in_question | in_answer
        asked = asked or bool(in_question or in_answer)
        rule = rule or bool(in_answer - q.story)
        if in_question - q.story:
            absent_answers.add(q.answer)
    if len(present) < 2:
        return None
    if not asked:
        return Verdict.STORY_ONLY
    if rule:
        return Verdict.RULE_ANSWERED
    if len(absent_answers) > 1:
        return Verdict.RELATIONAL
    return (
        Verdict.PREDICTIVE if _identity_gain(questions, members) > PREDICTIVE_NATS else Verdict.SAFE
    )


def _identity_gain(questions: Sequence[_Question], members: frozenset[str]) -> float:
    """Held-out log-likelihood per question of the answer given the question, minus that
    of the pattern answer given the pattern question (``_Question.pattern``), in nats."""
    asked = [q for q in questions if members & q.question]
    if not asked:
        return 0.0
    patterns = [q.pattern(members) for q in asked]
    identity = _loo_log_likelihood([(q.words, q.answer) for q in asked])
    return identity - _loo_log_likelihood(patterns)


def _loo_log_likelihood(pairs: Sequence[tuple[Hashable, str]]) -> float:
    """Mean log P(answer | key), each pair predicted from the counts of the others with
    add-one smoothing over the answers seen."""
    counts: dict[Hashable, Counter[str]] = defaultdict(Counter)
    for key, answer in pairs:
        counts[key][answer] += 1
    n_answers = len({answer for _, answer in pairs})
    total = 0.0
    for key, answer in pairs:
        c = counts[key]
        others_alike = c[answer] - 1  # the pair itself left out
        total += math.log((others_alike + 1) / (c.total() - 1 + n_answers))
    return total / len(pairs)


def discover(examples: Sequence[Example], *, min_overlap: float = MIN_OVERLAP) -> WordClassReport:
    """The classes of ``examples`` and where renaming them keeps every answer valid."""
    classes = find_classes(examples, min_overlap=min_overlap)
    by_task: dict[int, list[_Question]] = defaultdict(list)
    for ex in examples:
        by_task[ex.task].append(_Question.of(ex))
    verdicts: dict[tuple[int, int], Verdict] = {}
    for c, members in enumerate(classes):
        for task, questions in by_task.items():
            verdict = _verdict(questions, frozenset(members))
            if verdict is not None:
                verdicts[(c, task)] = verdict
    safe_somewhere = {c for (c, _), v in verdicts.items() if v is Verdict.SAFE}
    rule_tasks = {t for (_, t), v in verdicts.items() if v is Verdict.RULE_ANSWERED}
    renamed: dict[int, tuple[int, ...]] = {}
    for task in by_task:
        renamed[task] = tuple(
            c
            for c in range(len(classes))
            if task not in rule_tasks
            and (
                verdicts.get((c, task)) is Verdict.SAFE
                or (verdicts.get((c, task)) is Verdict.STORY_ONLY and c in safe_somewhere)
            )
        )
    return WordClassReport(tuple(classes), verdicts, renamed)
