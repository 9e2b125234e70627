"""Text -> padded token ids with the model's vocabulary; unknown words reported."""

from __future__ import annotations

import numpy as np

from memnet.data.vocab import Vocabulary, tokenize
from memnet.errors import InvalidArgument

MAX_TEXTS = 100_000


def text_tokens(
    texts: list[str], vocab: Vocabulary, *, field: str
) -> tuple[np.ndarray, list[list[str]]]:
    """(N, T) int64 token ids (0 = nil padding) and the unknown words of each text.

    Unknown words are dropped: a position-encoded sentence is then encoded as if they
    were absent. A text with no word at all is an InvalidArgument.
    """
    if not texts:
        raise InvalidArgument(f"{field} must hold at least one text", field=field)
    if len(texts) > MAX_TEXTS:
        raise InvalidArgument(f"{field} holds more than {MAX_TEXTS} texts", field=field)
    ids: list[list[int]] = []
    unknown: list[list[str]] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidArgument(f"{field}[{i}] must be a string", field=field)
        words = tokenize(text)
        if not words:
            raise InvalidArgument(f"{field}[{i}] is empty (no words)", field=field)
        known, missing = vocab.encode(words)
        ids.append(known)
        unknown.append(missing)
    T = max(1, *(len(x) for x in ids))
    tokens = np.zeros((len(ids), T), np.int64)
    for row, known in enumerate(ids):
        tokens[row, : len(known)] = known
    return tokens, unknown
