"""A power cut, simulated under the store's file-system layer (after RocksDB's
FaultInjectionTestFS).

``PowerCutFS`` passes every call of ``memnet.store.fs`` to the real file system and
keeps a model of what a power cut would leave: the contents of each file as of its last
``fsync`` (by inode), and the entries of each directory as of its last directory
``fsync``. At the chosen crash point (the n-th counted call) the call fails with EIO, and
so does every later one, as on a dead machine. ``power_cut()`` then replaces the tree with
the model: file tails written after their last fsync are dropped (or, ``tail="zeros"``,
replaced by zeros, or ``tail="prefix"``, cut at a random point), and creations, renames
and deletions whose directory was not fsynced are undone. Files that existed when the
layer was installed count as synced.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

from memnet.store import fs

# The calls that can be crash points: every call that changes files, except the writes
# inside one file between two fsyncs, which leave the same durable state as the fsync
# after them (the ``every_call`` mode counts those too).
CRASH_CALLS = frozenset(
    {"writev", "fsync", "ftruncate", "rename", "mkdir", "unlink", "rmtree", "fsync_dir"}
)


class PowerCut(OSError):
    def __init__(self) -> None:
        super().__init__(errno.EIO, "simulated power cut")


class PowerCutFS(fs.FileSystem):
    def __init__(
        self,
        root: Path,
        *,
        crash_at: int | None = None,
        every_call: bool = False,
        tail: str = "drop",
        seed: int = 0,
    ) -> None:
        self.root = root
        self.crash_at = crash_at
        self.every_call = every_call
        self.tail = tail
        self.rng = random.Random(seed)
        self.calls = 0  # crash points passed so far
        self.trace: list[str] = []  # the crash points' call names, in order
        self.crashed = False
        self._detached = 0
        self._content: dict[int, bytes] = {}  # durable file contents by inode (or detached key)
        self._entries: dict[int, dict[str, tuple[int, bool]]] = {}  # dir key -> name -> (key, dir)
        self._root_key = root.stat().st_ino
        self._sync_tree(root)

    # ---- the model ------------------------------------------------------------------

    def _sync_tree(self, directory: Path) -> None:
        self._sync_entries(directory)
        for p in directory.iterdir():
            if p.is_dir():
                self._sync_tree(p)
            else:
                self._content[p.stat().st_ino] = p.read_bytes()

    def _sync_entries(self, directory: Path) -> None:
        self._entries[directory.stat().st_ino] = {
            p.name: (p.stat().st_ino, p.is_dir()) for p in directory.iterdir()
        }

    def _detach(self, path: Path) -> None:
        """``path`` leaves the namespace: give its inode a key no new file can reuse."""
        if not path.exists():
            return
        if path.is_dir():
            for child in path.iterdir():
                self._detach(child)
        old = path.stat().st_ino
        self._detached -= 1
        new = self._detached
        if old in self._content:
            self._content[new] = self._content.pop(old)
        if old in self._entries:
            self._entries[new] = self._entries.pop(old)
        for entries in self._entries.values():
            for name, (key, is_dir) in list(entries.items()):
                if key == old:
                    entries[name] = (new, is_dir)

    def _tick(self, call: str) -> None:
        if self.crashed:
            raise PowerCut()
        if call in CRASH_CALLS or self.every_call:
            self.calls += 1
            self.trace.append(call)
            if self.calls == self.crash_at:
                self.crashed = True
                raise PowerCut()

    def power_cut(self) -> None:
        """Replace the tree under ``root`` with what the power cut leaves."""
        after = self.root.with_name(self.root.name + ".after-power-cut")
        shutil.rmtree(after, ignore_errors=True)
        self._build(self._root_key, self.root, after)
        shutil.rmtree(self.root)
        after.rename(self.root)

    def _build(self, key: int, live: Path | None, dest: Path) -> None:
        dest.mkdir()
        current = _inodes(live)
        for name, (child, is_dir) in self._entries.get(key, {}).items():
            if is_dir:
                self._build(child, current.get(child), dest / name)
                continue
            data = self._content.get(child, b"")
            now = current.get(child)
            if now is not None and self.tail != "drop":
                extra = now.read_bytes()[len(data) :]
                if self.tail == "zeros":
                    data += bytes(len(extra))
                elif extra:
                    data += extra[: self.rng.randrange(len(extra) + 1)]
            (dest / name).write_bytes(data)

    # ---- the layer --------------------------------------------------------------------

    def open(self, path: Path, flags: int, mode: int = 0o644) -> int:
        self._tick("open")
        return super().open(path, flags, mode)

    def writev(self, fd: int, buffers: Sequence[fs.Buffer]) -> int:
        self._tick("writev")
        return super().writev(fd, buffers)

    def write(self, fd: int, data: fs.Buffer) -> int:
        self._tick("write")
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self._tick("fsync")
        with open(f"/proc/self/fd/{fd}", "rb") as f:  # the same inode, whatever its name now
            self._content[os.fstat(fd).st_ino] = f.read()

    def ftruncate(self, fd: int, size: int) -> None:
        self._tick("ftruncate")
        super().ftruncate(fd, size)

    def close(self, fd: int) -> None:
        super().close(fd)  # never fails: a dead process's files are closed too

    def rename(self, src: Path, dst: Path) -> None:
        self._tick("rename")
        self._detach(Path(dst))
        super().rename(src, dst)

    def mkdir(self, path: Path) -> None:
        self._tick("mkdir")
        super().mkdir(path)

    def unlink(self, path: Path) -> None:
        self._tick("unlink")
        self._detach(Path(path))
        super().unlink(path)

    def rmtree(self, path: Path) -> None:
        self._tick("rmtree")
        self._detach(Path(path))
        super().rmtree(path)

    def fsync_dir(self, path: Path) -> None:
        self._tick("fsync_dir")
        self._sync_entries(Path(path))


def _inodes(directory: Path | None) -> dict[int, Path]:
    """The live files of ``directory`` by inode (to find a file's unsynced tail)."""
    if directory is None or not directory.is_dir():
        return {}
    return {p.stat().st_ino: p for p in directory.iterdir()}
