"""``log-state.json``: which log a bank is appending to, and how much of it was fsynced.

Written (temp file, fsync, rename, directory fsync) when a log is created or rotated,
when a bank is opened, and at a clean close: it names the active log, when it was
created, and a size the log is known to have reached *on disk* (fsynced). Opening a
bank compares the log against it: a missing named log, or one shorter than
``synced_bytes``, lost acknowledged data and is corruption, not a torn tail
(docs/durability.md says precisely what this can and cannot detect).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from memnet.store import fs

STATE_FILE = "log-state.json"


class LogStateError(ValueError):
    """A ``log-state.json`` that cannot be read."""


@dataclass(frozen=True)
class LogState:
    log: str  # file name of the active log, e.g. "wal-00000000000000000042.log"
    created_ns: int  # unix time the log was created, nanoseconds
    synced_bytes: int  # the log is known to have held at least this many fsynced bytes


def read(directory: Path) -> LogState | None:
    """The bank's log state, or None for a bank that has none (written before it existed)."""
    path = directory / STATE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        body = json.loads(raw)
        return LogState(str(body["log"]), int(body["created_ns"]), int(body["synced_bytes"]))
    except (ValueError, KeyError, TypeError) as err:
        raise LogStateError(f"{STATE_FILE} is unreadable: {err}") from err


def write(directory: Path, state: LogState) -> None:
    fs.replace_file(directory / STATE_FILE, json.dumps(asdict(state)).encode())


def for_new_log(log: Path, synced_bytes: int) -> LogState:
    return LogState(log.name, time.time_ns(), synced_bytes)
