"""Tokenisation and vocabularies shared by training and serving.

The tokeniser reproduces the bAbI preprocessing of the reference code: lowercase,
punctuation ('.', '?', ',' ...) removed, split on whitespace. Index 0 of every word
vocabulary is the nil word, whose embedding row is kept at zero (Sukhbaatar et al.
2015, §4.2); unknown words are dropped and reported, never mapped to a real word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

NIL = "<nil>"
_NON_WORD = re.compile(r"[^\w\s]+")


def tokenize(text: str) -> list[str]:
    """'Hello, World!' -> ['hello', 'world']."""
    return _NON_WORD.sub(" ", text.lower()).split()


@dataclass(frozen=True)
class Vocabulary:
    """An ordered word list; ``words[0]`` is the nil word for word vocabularies."""

    words: tuple[str, ...]

    @classmethod
    def build(cls, tokens: Iterable[str], *, with_nil: bool = True) -> Vocabulary:
        words = sorted(set(tokens) - {NIL})
        return cls(tuple(([NIL] if with_nil else []) + words))

    @classmethod
    def in_order_seen(cls, tokens: Iterable[str], *, with_nil: bool = True) -> Vocabulary:
        """Words in order of first appearance (not sorted): a vocabulary whose ids do not
        depend on how the words are spelled, only on where they first occur."""
        seen = dict.fromkeys(t for t in tokens if t != NIL)
        return cls(tuple(([NIL] if with_nil else []) + list(seen)))

    def __len__(self) -> int:
        return len(self.words)

    @property
    def index(self) -> dict[str, int]:
        return _index_of(self.words)

    def encode(self, tokens: list[str]) -> tuple[list[int], list[str]]:
        """Known token ids in order, and the unknown tokens (dropped)."""
        index = self.index
        ids = [index[t] for t in tokens if t in index and t != NIL]
        unknown = [t for t in tokens if t not in index or t == NIL]
        return ids, unknown


_INDEX_CACHE: dict[tuple[str, ...], dict[str, int]] = {}


def _index_of(words: tuple[str, ...]) -> dict[str, int]:
    index = _INDEX_CACHE.get(words)
    if index is None:
        index = {w: i for i, w in enumerate(words)}
        _INDEX_CACHE[words] = index
    return index
