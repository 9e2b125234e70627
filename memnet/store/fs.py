"""The file-system layer under the log and snapshot writers: every call that changes a
bank's files on disk (open, write, fsync, truncate, rename, mkdir, unlink, directory
fsync) goes through one ``FileSystem`` object.

The real one is thin ``os`` calls. Tests install another one (``installed``) that
remembers what was fsynced and, at a chosen crash point, drops everything that was not,
the way a power cut does (tests/memnet/store/faultfs.py). Reads do not go through it:
they change nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

Buffer = bytes | bytearray | memoryview

WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND


class FileSystem:
    """Thin ``os`` calls; a subclass may watch or fail any of them."""

    def open(self, path: Path, flags: int, mode: int = 0o644) -> int:
        return os.open(path, flags, mode)

    def writev(self, fd: int, buffers: Sequence[Buffer]) -> int:
        return os.writev(fd, buffers)

    def write(self, fd: int, data: Buffer) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def close(self, fd: int) -> None:
        os.close(fd)

    def rename(self, src: Path, dst: Path) -> None:
        os.rename(src, dst)

    def mkdir(self, path: Path) -> None:
        os.mkdir(path)

    def unlink(self, path: Path) -> None:
        os.unlink(path)

    def rmtree(self, path: Path) -> None:
        """Remove a directory tree, ignoring what is already gone."""
        shutil.rmtree(path, ignore_errors=True)

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_current: list[FileSystem] = [FileSystem()]  # the one in use is the last


def get() -> FileSystem:
    """The file system the store writes through."""
    return _current[-1]


@contextmanager
def installed(fs: FileSystem) -> Iterator[FileSystem]:
    """Make ``fs`` the store's file system inside the block (tests)."""
    _current.append(fs)
    try:
        yield fs
    finally:
        _current.remove(fs)


def write_all(fd: int, data: Buffer) -> None:
    """Write every byte of ``data`` to ``fd`` (looping over short writes)."""
    fs = get()
    view = memoryview(data).cast("B")
    while view:
        view = view[fs.write(fd, view) :]


def write_file(path: Path, chunks: Sequence[Buffer]) -> None:
    """Create (or replace the contents of) ``path`` with ``chunks`` and fsync it."""
    fs = get()
    fd = fs.open(path, WRITE_FLAGS)
    try:
        for chunk in chunks:
            write_all(fd, chunk)
        fs.fsync(fd)
    finally:
        fs.close(fd)


def replace_file(path: Path, data: bytes) -> None:
    """Atomically make ``path`` hold ``data``: temp file, fsync, rename, directory fsync."""
    tmp = path.with_name(f".{path.name}.tmp")
    fs = get()
    try:
        write_file(tmp, [data])
        fs.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fs.fsync_dir(path.parent)


class FileWriter:
    """A write-only file object over the layer (for ``np.save`` and FAISS), keeping
    the CRC32C and size of what it wrote."""

    def __init__(self, path: Path) -> None:
        from memnet.store.checksum import crc32c

        self._crc32c = crc32c
        self._fs = get()
        self._fd = self._fs.open(path, WRITE_FLAGS)
        self.crc = 0
        self.size = 0

    def write(self, data: Buffer) -> int:
        view = memoryview(data).cast("B")
        self.crc = self._crc32c(view, self.crc)
        write_all(self._fd, view)
        self.size += len(view)
        return len(view)

    def flush(self) -> None:
        """Nothing is buffered here (``np.save`` calls this)."""

    def sync_and_close(self) -> None:
        try:
            self._fs.fsync(self._fd)
        finally:
            self.close()

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            self._fs.close(fd)
