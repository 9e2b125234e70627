"""Question-answer examples as padded tensors, memory slot 0 = the newest statement.

Ordering the memory by recency makes the slot index the time index of temporal
encoding (Sukhbaatar et al. 2015, §4.1: T_A(i) for the i-th most recent sentence),
which is also the recency rank a bank reports (``SearchResult.recency``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from memnet.data.babi import Example
from memnet.data.vocab import Vocabulary

@dataclass(frozen=True)
class BabiTensors:
    stories: torch.Tensor  # (N, M, T) int64 word ids, slot 0 = newest, 0 = nil
    lengths: torch.Tensor  # (N,) int64 statements in memory (<= M)
    queries: torch.Tensor  # (N, Tq) int64
    answers: torch.Tensor  # (N,) int64 answer class, -1 = not in the answer vocabulary
    support: torch.Tensor  # (N, S) int64 memory slots of the supporting facts, -1 = none
    # S = the most supporting facts of any question (bAbI: 3, qa3), at least 1
    tasks: torch.Tensor  # (N,) int64 task id (bAbI: the task number)

    def __len__(self) -> int:
        return int(self.answers.shape[0])

    def subset(self, index: torch.Tensor) -> BabiTensors:
        return BabiTensors(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def memory_mask(self) -> torch.Tensor:
        """(N, M) bool, True where a slot holds a statement."""
        M = self.stories.shape[1]
        return torch.arange(M).unsqueeze(0) < self.lengths.unsqueeze(1)


def _pad(ids: Sequence[int], length: int) -> list[int]:
    return list(ids[:length]) + [0] * max(0, length - len(ids))


def tensorize(
    examples: Sequence[Example],
    vocab: Vocabulary,
    answers: Vocabulary,
    *,
    memory_size: int,
    sentence_len: int,
    query_len: int,
) -> BabiTensors:
    """Pad examples into tensors; keeps the ``memory_size`` most recent statements."""
    answer_index = answers.index
    S = max([1, *(len(ex.supporting) for ex in examples)])
    stories, lengths, queries, targets, support, tasks = [], [], [], [], [], []
    for ex in examples:
        recent = list(reversed(ex.story))[:memory_size]  # slot 0 = newest
        recent_ids = list(reversed(ex.line_ids))[:memory_size]
        slots = [_pad(vocab.encode(list(s))[0], sentence_len) for s in recent]
        slots += [[0] * sentence_len] * (memory_size - len(slots))
        stories.append(slots)
        lengths.append(len(recent))
        queries.append(_pad(vocab.encode(list(ex.question))[0], query_len))
        targets.append(answer_index.get(ex.answer, -1))
        slot_of = {line_id: slot for slot, line_id in enumerate(recent_ids)}
        sup = [slot_of.get(s, -1) for s in ex.supporting]
        support.append(sup + [-1] * (S - len(sup)))
        tasks.append(ex.task)
    return BabiTensors(
        stories=torch.tensor(stories, dtype=torch.int64).view(len(examples), memory_size, -1),
        lengths=torch.tensor(lengths, dtype=torch.int64),
        queries=torch.tensor(queries, dtype=torch.int64).view(len(examples), -1),
        answers=torch.tensor(targets, dtype=torch.int64),
        support=torch.tensor(support, dtype=torch.int64).view(len(examples), S),
        tasks=torch.tensor(tasks, dtype=torch.int64),
    )


def build_vocabularies(examples: Sequence[Example]) -> tuple[Vocabulary, Vocabulary]:
    """Word vocabulary (nil at 0) and answer vocabulary, in order of first appearance.

    Not sorted by spelling: the ids, and so the initial embedding of each word, follow
    where a word first occurs, so that a copy of the data with every word renamed
    trains the same network, weight for weight.
    """
    words = (w for ex in examples for s in (*ex.story, ex.question) for w in s)
    vocab = Vocabulary.in_order_seen(words)
    answers = Vocabulary.in_order_seen((ex.answer for ex in examples), with_nil=False)
    return vocab, answers
