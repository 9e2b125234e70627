"""Examples from files the user names: bAbI-format text or JSON Lines, one task table.

A file ending in ``.jsonl`` is JSON Lines (``memnet.data.jsonl``); any other file is
bAbI-format text (``memnet.data.babi``), whatever its name. Every file has a task
name: its name without the extension and a trailing split word (``_train``,
``-test``, ``.valid``, ...), or its directory's name when nothing else is left
(``pets/train.jsonl`` -> "pets"). A bAbI-format file is one task; a JSON Lines
example's ``task`` field, when present, names its task instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from memnet.data.babi import Example, parse_babi, read_lines
from memnet.data.jsonl import parse_jsonl
from memnet.errors import InvalidArgument, NotFound

_SPLIT_SUFFIX = re.compile(r"[_.\-](train|test|valid|validation|dev)$", re.IGNORECASE)
JSONL_SUFFIX = ".jsonl"


@dataclass
class TaskTable:
    """Task names and their ids: 1, 2, ... in order of first appearance.

    ``names[id]`` is the task's name. A table built from a checkpoint's tasks keeps
    their ids, so that test files name the same tasks as training files did.
    """

    names: dict[int, str] = field(default_factory=dict)

    def id_of(self, name: str) -> int:
        """The id of task ``name``, given the next free id when it is new."""
        for task, known in self.names.items():
            if known == name:
                return task
        task = max(self.names, default=0) + 1
        self.names[task] = name
        return task

    def select(self, spec: str) -> list[int]:
        """Ids of the tasks named in ``spec`` ("all" or "name,name"); InvalidArgument if unknown."""
        if spec.strip().lower() == "all":
            return sorted(self.names)
        wanted = [s.strip() for s in spec.split(",") if s.strip()]
        ids = {name: task for task, name in self.names.items()}
        unknown = [w for w in wanted if w not in ids]
        if unknown or not wanted:
            raise InvalidArgument(
                f"tasks: no task {unknown[0] if unknown else spec!r} in the data; "
                f"tasks: {', '.join(self.names.values())}",
                field="tasks",
            )
        return sorted({ids[w] for w in wanted})


def task_name_of(path: Path) -> str:
    """'qa1_single-supporting-fact_train.txt' -> 'qa1_single-supporting-fact'."""
    stem = _SPLIT_SUFFIX.sub("", path.stem)
    if stem.lower() in ("train", "test", "valid", "validation", "dev", ""):
        return path.resolve().parent.name or stem
    return stem


def read_examples(paths: Sequence[Path], tasks: TaskTable) -> list[Example]:
    """Every example of ``paths``, in order; story ids are unique across the files.

    Raises NotFound for a missing file and InvalidArgument (``file:line: ...``) for
    malformed content or a file without a question.
    """
    examples: list[Example] = []
    for path in paths:
        if not path.is_file():
            raise NotFound(f"{path}: no such file", field="data")
        offset = 1 + max((ex.story_id for ex in examples), default=-1)
        lines = read_lines(path)
        default_task = task_name_of(path)
        parsed: list[Example]
        if path.suffix.lower() == JSONL_SUFFIX:
            parsed = parse_jsonl(
                lines,
                source=str(path),
                task_id=lambda name: tasks.id_of(name or default_task),
                story_offset=offset,
            )
        else:
            parsed = parse_babi(
                lines, task=tasks.id_of(default_task), source=str(path), story_offset=offset
            )
        if not parsed:
            raise InvalidArgument(f"{path}: no question in the file", field="data")
        examples += parsed
    return examples


def of_tasks(examples: Iterable[Example], tasks: Sequence[int]) -> list[Example]:
    """The examples of ``tasks``, in their order."""
    keep = set(tasks)
    return [ex for ex in examples if ex.task in keep]
