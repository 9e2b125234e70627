"""Question-answer examples as JSON Lines: one example per line.

    {"story": ["sentence", ...], "question": "...", "answer": "...",
     "supporting": [0, 2], "task": "name"}

``story`` holds the statements before the question, oldest first; ``supporting``
(optional) indexes into it (0 = the oldest); ``task`` (optional) names the task, and
defaults to the file's task name. The answer is one token or a label; a list answer
is comma-joined ("a,b"), as in bAbI. Text is tokenised as everywhere else (lowercase,
punctuation dropped); the answer is lowercased.

Consecutive lines of one task whose stories extend each other (the same statements,
then maybe more) are questions about one story: a validation split holds out or keeps
all of them together.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from memnet.data.babi import Example
from memnet.data.vocab import tokenize
from memnet.errors import InvalidArgument

KEYS = ("story", "question", "answer", "supporting", "task")


def parse_jsonl(
    lines: Iterable[str],
    *,
    source: str,
    task_id: Callable[[str | None], int],
    story_offset: int = 0,
) -> list[Example]:
    """Parse JSON Lines into examples; ``task_id`` maps a line's ``task`` (None: absent).

    Raises InvalidArgument (field ``data``) naming ``source:line`` for a malformed line.
    """
    examples: list[Example] = []
    story_id = story_offset - 1
    previous: tuple[int, tuple[tuple[str, ...], ...]] | None = None  # (task, story)
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{source}:{lineno}"
        record = _record(raw, where)
        story = tuple(_sentence(s, f"{where}: story[{i}]") for i, s in enumerate(record["story"]))
        if not story:
            raise InvalidArgument(f"{where}: story has no sentence", field="data")
        question = _sentence(record["question"], f"{where}: question")
        answer = record["answer"]
        if not isinstance(answer, str) or not answer.strip():
            raise InvalidArgument(f"{where}: answer must be a non-empty string", field="data")
        task = task_id(_task(record.get("task"), where))
        supporting = _supporting(record.get("supporting", []), len(story), where)
        if previous is None or previous[0] != task or story[: len(previous[1])] != previous[1]:
            story_id += 1
        previous = (task, story)
        examples.append(
            Example(
                task=task,
                story=story,
                line_ids=tuple(range(len(story))),
                question=question,
                answer=answer.strip().lower(),
                supporting=supporting,
                story_id=story_id,
            )
        )
    return examples


def _record(raw: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"{where}: not JSON ({e.msg}, column {e.colno})", field="data") from None
    if not isinstance(record, dict):
        raise InvalidArgument(f"{where}: a line must be a JSON object", field="data")
    unknown = sorted(set(record) - set(KEYS))
    if unknown:
        raise InvalidArgument(
            f"{where}: unknown key {unknown[0]!r}; keys: {', '.join(KEYS)}", field="data"
        )
    for key in ("story", "question", "answer"):
        if key not in record:
            raise InvalidArgument(f"{where}: missing {key!r}", field="data")
    if not isinstance(record["story"], list):
        raise InvalidArgument(f"{where}: story must be a list of sentences", field="data")
    return record


def _sentence(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string", field="data")
    words = tuple(tokenize(value))
    if not words:
        raise InvalidArgument(f"{what} has no words", field="data")
    return words


def _task(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{where}: task must be a non-empty string", field="data")
    return value.strip()


def _supporting(value: object, story_len: int, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise InvalidArgument(f"{where}: supporting must be a list of integers", field="data")
    for i in value:
        if not 0 <= i < story_len:
            raise InvalidArgument(
                f"{where}: supporting index {i} is outside the story (0..{story_len - 1})",
                field="data",
            )
    return tuple(value)
