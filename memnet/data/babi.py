"""The bAbI v1.2 question-answering tasks (Weston et al. 2015): files and parser.

A file is a sequence of stories. Each line is ``<id> <text>``; the id restarts at
1 with every new story. Question lines carry ``<question>\\t<answer>\\t<ids>``,
where ``<ids>`` are the line numbers of the supporting facts. Questions are not
memories: a question's memory is every statement of its story before it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from memnet.data.vocab import tokenize
from memnet.errors import InvalidArgument, NotFound

LOG = logging.getLogger(__name__)

NUM_TASKS = 20
_FILE = re.compile(r"^qa(\d+)_(.+)_(train|test)\.txt$")


@dataclass(frozen=True)
class Example:
    """One question with the statements before it in its story (oldest first)."""

    task: int
    story: tuple[tuple[str, ...], ...]  # tokenised statements, oldest first
    line_ids: tuple[int, ...]  # the bAbI line number of each statement
    question: tuple[str, ...]
    answer: str  # one answer class; list answers stay joined ("a,b")
    supporting: tuple[int, ...]  # line numbers of the supporting facts
    story_id: int = 0  # 0-based index of the story in its file; its questions share it


def parse_babi(
    lines: Iterable[str], *, task: int = 0, source: str = "bAbI", story_offset: int = 0
) -> list[Example]:
    """Parse the lines of one bAbI-format file into examples.

    ``source`` names the file in errors (``source:line: what is wrong``);
    ``story_offset`` is added to every ``story_id`` (several files, one numbering).
    Raises InvalidArgument (field ``data``) for a malformed line.
    """
    examples: list[Example] = []
    story: list[tuple[str, ...]] = []
    ids: list[int] = []
    story_id = story_offset - 1
    last_id = 0
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        head, _, rest = line.strip().partition(" ")
        if not head.isdigit():
            raise InvalidArgument(
                f"{where}: a line must start with its number in the story (1 starts a "
                f"story), got {head[:20]!r}",
                field="data",
            )
        line_id = int(head)
        if line_id == 1 or story_id < story_offset:
            story, ids, last_id = [], [], 0
            story_id += 1
        if line_id <= last_id:
            raise InvalidArgument(
                f"{where}: line number {line_id} after {last_id}: numbers grow within a "
                "story and 1 starts the next one",
                field="data",
            )
        last_id = line_id
        if "\t" in rest:
            examples.append(_question(rest, where, story, ids, task=task, story_id=story_id))
        else:
            words = tuple(tokenize(rest))
            if not words:
                raise InvalidArgument(f"{where}: a statement without words", field="data")
            story.append(words)
            ids.append(line_id)
    return examples


def _question(
    rest: str,
    where: str,
    story: list[tuple[str, ...]],
    ids: list[int],
    *,
    task: int,
    story_id: int,
) -> Example:
    """One question line's ``<question>\\t<answer>[\\t<supporting ids>]``."""
    fields = rest.split("\t")
    question = tuple(tokenize(fields[0]))
    answer = fields[1].strip().lower()
    if not question:
        raise InvalidArgument(f"{where}: a question without words", field="data")
    if not answer:
        raise InvalidArgument(f"{where}: a question without an answer", field="data")
    if not story:
        raise InvalidArgument(f"{where}: a question with no statement before it", field="data")
    try:
        supporting = tuple(int(s) for s in fields[2].split()) if len(fields) > 2 else ()
    except ValueError:
        raise InvalidArgument(
            f"{where}: supporting facts must be line numbers, got {fields[2].strip()[:40]!r}",
            field="data",
        ) from None
    missing = [s for s in supporting if s not in ids]
    if missing:
        raise InvalidArgument(
            f"{where}: supporting fact {missing[0]} is not a statement of this story",
            field="data",
        )
    return Example(
        task=task,
        story=tuple(story),
        line_ids=tuple(ids),
        question=question,
        answer=answer,
        supporting=supporting,
        story_id=story_id,
    )


def task_file(data_dir: Path, task: int, split: str) -> Path | None:
    """The file of one task and split (``qa<task>_<name>_<split>.txt``), or None."""
    for path in sorted(data_dir.glob(f"qa{task}_*_{split}.txt")):
        match = _FILE.match(path.name)
        if match and int(match.group(1)) == task:
            return path
    return None


def load_task(
    data_dir: Path, task: int, split: str, *, fallback_dir: Path | None = None
) -> list[Example]:
    """Examples of one task; ``fallback_dir`` supplies a file missing from ``data_dir``."""
    path = task_file(data_dir, task, split)
    if path is None and fallback_dir is not None:
        path = task_file(fallback_dir, task, split)
        if path is not None:
            LOG.warning("qa%d %s: not in %s, using %s", task, split, data_dir, path)
    if path is None:
        raise NotFound(f"no bAbI file qa{task}_*_{split}.txt in {data_dir}", field="data_dir")
    return parse_babi(read_lines(path), task=task, source=str(path))


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file; InvalidArgument (field ``data``) if it is not one."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise NotFound(f"{path}: cannot read ({e.strerror})", field="data") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InvalidArgument(f"{path}:{line}: not UTF-8 text", field="data") from None
    return text.splitlines()


def parse_tasks(spec: str) -> list[int]:
    """'all' -> 1..20; '1,2,5' -> [1, 2, 5]; '3' -> [3]."""
    if spec.strip().lower() in ("all", "joint"):
        return list(range(1, NUM_TASKS + 1))
    try:
        tasks = sorted({int(t) for t in spec.split(",") if t.strip()})
    except ValueError as e:
        raise InvalidArgument(f"tasks must be 'all' or numbers, got {spec!r}", field="tasks") from e
    if not tasks or any(not 1 <= t <= NUM_TASKS for t in tasks):
        raise InvalidArgument(f"tasks must be in 1..{NUM_TASKS}, got {spec!r}", field="tasks")
    return tasks


def find_default_data_dir() -> Path | None:
    """The repository's shipped ``data/babi/en``, looked up from the package and the cwd."""
    here = Path(__file__).resolve()
    candidates = [p / "data" / "babi" / "en" for p in here.parents] + [
        Path.cwd() / "data" / "babi" / "en"
    ]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("qa1_*_train.txt")):
            return candidate
    return None
