"""Re-encoding a bank into another model's key space while it keeps serving.

A ``ReindexSession`` holds a second ``BankState`` for the target configuration (the
new model version, and its dimensions and metric) and fills it from a copy of the
bank's live memories taken when it starts, each keeping its id, sequence number,
write time, text and metadata. Every record the bank commits meanwhile is also
queued to the session (the tap), and the caller re-encodes and applies it to the new
state, so writes and deletes during the rebuild end up there too. The bank switches
in ``Bank.finish_reindex``: under its write mutex the last queued records are applied,
a snapshot of the new state with the new configuration is made durable (the one
atomic step: before it a crash leaves the old version, after it the new one), and
the state and configuration are swapped.

The encoding itself (a model) is the caller's: the store knows no models.

While a session runs the bank keeps an intent file (``reindex.json``, the target
configuration) so that a restart can tell an interrupted reindex from none.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memnet.errors import FailedPrecondition
from memnet.store import fs
from memnet.store import state as st
from memnet.store.records import Record, WriteRecord
from memnet.store.state import BankState
from memnet.store.types import BankConfig, JsonObject
from memnet.store.vectors import NewRows, SlotTable

LOG = logging.getLogger(__name__)

INTENT_FILE = "reindex.json"


@dataclass(frozen=True)
class RowChunk:
    """Consecutive live memories of the copy, in seq order."""

    ids: list[str]
    texts: list[str | None]
    metadata: list[JsonObject]
    seqs: np.ndarray  # (N,) int64
    written_ns: np.ndarray  # (N,) int64


@dataclass(frozen=True)
class LiveRows:
    """The bank's live memories when the session started (no vectors: they are redone)."""

    ids: list[str]
    texts: list[str | None]
    metadata: list[JsonObject]
    seqs: np.ndarray  # (M,) int64, ascending
    written_ns: np.ndarray  # (M,) int64

    @classmethod
    def of(cls, table: SlotTable) -> LiveRows:
        """Copy the live rows of ``table`` (the caller holds the bank's lock)."""
        live = table.live_slots()
        slots = live.tolist()
        return cls(
            ids=[table.ids[s] or "" for s in slots],
            texts=[table.texts[s] for s in slots],
            metadata=[table.metadata[s] for s in slots],
            seqs=table.seqs[live].copy(),
            written_ns=table.written_ns[live].copy(),
        )

    def chunks(self, size: int) -> Iterator[RowChunk]:
        for start in range(0, len(self.ids), size):
            stop = start + size
            yield RowChunk(
                self.ids[start:stop],
                self.texts[start:stop],
                self.metadata[start:stop],
                self.seqs[start:stop],
                self.written_ns[start:stop],
            )


class ReindexSession:
    """One bank's rebuild into ``target``; created by ``Bank.start_reindex``."""

    def __init__(self, *, target: BankConfig, rows: LiveRows, start_seq: int) -> None:
        self.target = target
        self.rows = rows
        self.start_seq = start_seq  # the copy holds every record up to this seq
        self.state = BankState.empty(target)
        self.state.last_seq = start_seq
        self.cancelled = threading.Event()
        self.started_at_s = time.time()
        self.done = 0  # memories encoded so far (the copy and the queued writes)
        self._queued: list[Record] = []
        self._queue_lock = threading.Lock()
        self.queued_total = 0  # memories of the records queued so far

    @property
    def total(self) -> int:
        """Memories to encode: the copy plus every write queued so far."""
        return len(self.rows.ids) + self.queued_total

    # ---- the copy ----------------------------------------------------------------------

    def add(self, chunk: RowChunk, keys: np.ndarray, values: np.ndarray) -> None:
        """Append a chunk of the copy with its new (N, Dk) keys and (N, Dv) values."""
        self.state.table.append(
            NewRows(
                ids=chunk.ids,
                keys=np.ascontiguousarray(keys, np.float32),
                values=np.ascontiguousarray(values, np.float32),
                texts=chunk.texts,
                sources=None,
                metadata=chunk.metadata,
                first_seq=int(chunk.seqs[0]) if len(chunk.seqs) else 0,
                written_at_ns=0,
                seqs=chunk.seqs,
                written_ns=chunk.written_ns,
            )
        )
        self.done += len(chunk.ids)

    def index_copy(self) -> None:
        """Train (if needed) and fill the new index with the copied memories."""
        self.state = st.rebuilt(self.state, self.target)

    # ---- the tap -----------------------------------------------------------------------

    def queue(self, record: Record) -> None:
        """Called by the bank for every record it commits while the session is open."""
        with self._queue_lock:
            self._queued.append(record)
            if isinstance(record, WriteRecord):
                self.queued_total += len(record.ids)

    def take_queued(self) -> list[Record]:
        with self._queue_lock:
            taken, self._queued = self._queued, []
            return taken

    def apply(self, record: Record) -> None:
        """Apply one queued record, already re-encoded for the target, to the new state."""
        self.state = st.apply(self.state, record, self.target)


def write_intent(directory: Path, target: BankConfig) -> None:
    """Record durably that a reindex into ``target`` is running."""
    fs.replace_file(directory / INTENT_FILE, target.model_dump_json().encode())


def read_intent(directory: Path) -> BankConfig | None:
    """The target of an interrupted reindex, or None (an unreadable file counts as none)."""
    path = directory / INTENT_FILE
    try:
        return BankConfig.model_validate_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        LOG.warning("%s: unreadable reindex intent (%s); ignored", path, error)
        return None


def clear_intent(directory: Path) -> None:
    path = directory / INTENT_FILE
    if path.exists():
        layer = fs.get()
        layer.unlink(path)
        layer.fsync_dir(directory)


def check_target(current: BankConfig, target: BankConfig) -> None:
    """A reindex keeps the bank's name, index, capacity and description."""
    same = ("name", "index", "capacity", "capacity_policy", "description")
    for field in same:
        if getattr(current, field) != getattr(target, field):
            raise FailedPrecondition(
                f"a reindex may change the model (and its dimensions and metric) only, not {field}",
                field=field,
            )


def config_json(config: BankConfig) -> str:
    return json.dumps(json.loads(config.model_dump_json()), sort_keys=True)
