"""Locks of the store: a readers-writer lock per bank and a cross-process directory lock."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from memnet.errors import FailedPrecondition

LOCK_FILE = "LOCK"


class RWLock:
    """Many readers or one writer; a waiting writer blocks new readers (no writer starvation).

    ``read()`` is taken by every search, so it is a plain context object (no generator)
    and wakes waiters only when a writer is waiting for the last reader to leave.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._read = _ReadLock(self)

    def read(self) -> _ReadLock:
        return self._read

    def readable_now(self) -> bool:
        """Whether ``read()`` would be granted without waiting (no writer holds or waits).
        A hint: a writer may arrive right after it is read."""
        return not (self._writer or self._writers_waiting)

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _ReadLock:
    """The shared side of an ``RWLock`` as a context manager (one per lock, reentrant-safe:
    it keeps no per-entry state)."""

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lock = self._lock
        with lock._cond:
            while lock._writer or lock._writers_waiting:
                lock._cond.wait()
            lock._readers += 1

    def __exit__(self, *exc: object) -> None:
        lock = self._lock
        with lock._cond:
            lock._readers -= 1
            if lock._readers == 0 and lock._writers_waiting:
                lock._cond.notify_all()


class DirLock:
    """An exclusive ``flock`` on ``<dir>/LOCK``, held for the life of the object.

    ``flock`` locks belong to the open file description, so a second open of the
    same directory fails even inside the same process. The kernel drops the lock
    when the process dies (SIGKILL included), so a crash never leaves it stale.
    """

    def __init__(self, directory: Path, *, what: str) -> None:
        self.path = directory / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FailedPrecondition(
                f"{what} directory {directory} is locked by another process or store",
                field="data_dir",
            ) from None
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
