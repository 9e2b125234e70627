"""Entity renaming: label-preserving rewrites of training questions.

When an answer depends on what a story says about its entities and not on their
names, renaming the entities of a story consistently (in its statements, its question
and its answer) gives another valid question of the same task. ``EntityRenamer`` draws
such a renaming for every training question of a batch, so that a model trained on a
few stories cannot fit them by their particular names.

Which words may be renamed, and in which tasks, is discovered from the training data
(``memnet.train.word_classes``): classes of words that fill the same sentence slots,
renamed in a task only where the answers depend on equality of those words, never on
the words themselves. Only the members a task's training questions use are renamed in
that task. A question whose renamed answer is not in the answer vocabulary (a list
answer such as "a,b" whose other order never occurs in training) is left as it is.
Validation and test questions are never renamed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from memnet.data.babi import Example
from memnet.data.vocab import Vocabulary
from memnet.train.word_classes import WordClassReport, discover


@dataclass(frozen=True)
class _TaskClass:
    """One class as used in one task: the members present, as word ids and strings."""

    word_ids: np.ndarray  # (n,) int64
    words: tuple[str, ...]  # (n,)


class EntityRenamer:
    """Renames the entities of training batches, by the classes of a ``WordClassReport``."""

    def __init__(
        self,
        vocab: Vocabulary,
        answers: Vocabulary,
        report: WordClassReport,
        task_words: dict[int, set[str]],
    ) -> None:
        """``task_words``: the words each task's training questions use."""
        self.report = report
        self.vocab_size = len(vocab)
        self._answer_index = answers.index
        self._answer_parts = [a.split(",") for a in answers.words]
        word_index = vocab.index
        self.by_task: dict[int, list[_TaskClass]] = {}
        for task, used in task_words.items():
            chosen = []
            for c in report.renamed.get(task, ()):
                present = tuple(w for w in report.classes[c] if w in used and w in word_index)
                if len(present) >= 2:
                    ids = np.array([word_index[w] for w in present], dtype=np.int64)
                    chosen.append(_TaskClass(ids, present))
            self.by_task[task] = chosen

    @classmethod
    def for_examples(
        cls, vocab: Vocabulary, answers: Vocabulary, examples: Sequence[Example]
    ) -> EntityRenamer:
        """Discover the classes of the training ``examples`` and rename by them."""
        task_words: dict[int, set[str]] = {}
        for ex in examples:
            words = task_words.setdefault(ex.task, set())
            for sentence in (*ex.story, ex.question):
                words.update(sentence)
        return cls(vocab, answers, discover(examples), task_words)

    def renamed_classes(self) -> list[list[str]]:
        """The classes renamed in at least one task, as word lists (for logs and resume)."""
        used = sorted({c for cs in self.report.renamed.values() for c in cs})
        return [list(self.report.classes[c]) for c in used]

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
                to = rng.permutation(len(tc.words))  # (n,) member i becomes member to[i]
                table[b, tc.word_ids] = tc.word_ids[to]
                renamed.update(zip(tc.words, (tc.words[j] for j in to.tolist()), strict=True))
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
