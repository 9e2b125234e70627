"""Opening a bank: newest verified snapshot, then ``apply`` folded over the log after it.

Rules (docs/durability.md):
1. A ``replaced-snapshot-<seq>`` (a re-snapshot at the same seq cut short) is put back
   if its replacement never arrived, else deleted; ``tmp-*`` directories are
   unfinished snapshots and are deleted.
2. ``log-state.json`` names the active log and how much of it was fsynced: a missing
   named log, or one shorter than that, lost acknowledged records (``BankDamaged``).
3. The newest ``snapshot-<seq>`` whose files pass their checksums is loaded; a bad
   ``index.faiss`` is rebuilt from the verified keys (``index_rebuilt``). A snapshot
   with any other bad file is never served: an older one is used only if the logs
   replay from it without a gap to at least the bad one's seq; else ``BankDamaged``.
4. The logs are replayed (``replay``): records at or below the snapshot's seq are
   skipped; a torn tail of the newest log is cut; any other damage or a sequence gap
   is ``BankDamaged``, and no byte is changed.
5. The newest log stays the active log (a log of the old frame format is followed by
   a new one), is fsynced, and ``log-state.json`` is rewritten to name it.

``BankDamaged`` makes the store quarantine the bank; ``memnet repair`` salvages it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from memnet.errors import FailedPrecondition
from memnet.store import frames, fs, logstate, snapshot, snapshot_load
from memnet.store import index as ix
from memnet.store import state as st
from memnet.store.frames import MAGIC_V1
from memnet.store.logstate import LogState, LogStateError
from memnet.store.records import seq_range
from memnet.store.replay import LogDamaged, Replayed, replay
from memnet.store.state import BankState
from memnet.store.types import BankConfig, RecoveryReport, StoreSettings
from memnet.store.wal import WriteAheadLog, cut_log, log_files, log_path

LOG = logging.getLogger(__name__)


class BankDamaged(FailedPrecondition):
    """A bank whose files lost or damaged acknowledged data: it is quarantined, untouched."""

    def __init__(self, bank: str, problem: str) -> None:
        super().__init__(
            f"bank {bank!r} is damaged: {problem}. Its files are kept as they are; stop the "
            f"server and run `memnet repair {bank}` to salvage every whole record",
            field="bank",
        )
        self.problem = problem


@dataclass
class Recovered:
    config: BankConfig  # config.json's, or the base snapshot's (a reindex changes it)
    state: BankState
    wal: WriteAheadLog  # open for appending after the last whole record
    report: RecoveryReport


@dataclass
class Base:
    """A state to replay the logs onto: a verified snapshot, or the empty bank."""

    state: BankState
    index_rebuilt: bool
    seq: int
    config: BankConfig  # the bank's configuration at this base


def recover(directory: Path, config: BankConfig, settings: StoreSettings) -> Recovered:
    """Read a bank's directory back into memory (the caller holds its directory lock)."""
    t0 = time.perf_counter()
    snapshot.resolve_interrupted(directory)
    snapshot.remove_temporaries(directory)
    try:
        expected = logstate.read(directory)
    except LogStateError as err:
        raise BankDamaged(config.name, str(err)) from err
    logs = log_files(directory)
    _check_active_log(directory, config, expected)
    chosen, base, unused = _replay_best(directory, config, settings, logs, expected)
    reasons = [f"{why} (rebuilt from {_name(base)} and the logs instead)" for why in unused]
    cut = chosen.cut
    if cut is not None:
        LOG.warning(
            "bank %s: cut %d bytes from %s (%s)",
            config.name,
            cut.bytes_cut,
            cut.path.name,
            cut.reason,
        )
        cut_log(cut.path, cut.valid_bytes)
        reasons.append(f"{cut.path.name}: {cut.reason}")
    wal = _active_log(directory, chosen.state.last_seq, logs, expected, settings)
    state = chosen.state
    LOG.info(
        "opened bank %s: %d memories, %d records replayed, %d bytes cut, in %.1f ms",
        config.name,
        state.table.n_live,
        chosen.records,
        0 if cut is None else cut.bytes_cut,
        (time.perf_counter() - t0) * 1e3,
    )
    report = RecoveryReport(
        chosen.records, 0 if cut is None else cut.bytes_cut, "; ".join(reasons), base.index_rebuilt
    )
    return Recovered(base.config, state, wal, report)


def _check_active_log(directory: Path, config: BankConfig, expected: LogState | None) -> None:
    if expected is None:
        return
    named = directory / expected.log
    if not named.exists():
        raise BankDamaged(
            config.name,
            f"its active log {expected.log} (log-state.json) is missing; it held at least "
            f"{expected.synced_bytes} fsynced bytes: every record it held is lost",
        )
    size = named.stat().st_size
    if size < expected.synced_bytes:
        whole = frames.scan(named).frames
        last = f"seq {seq_range(whole[-1].record)[1] + 1}" if whole else "every seq it held"
        raise BankDamaged(
            config.name,
            f"its active log {expected.log} is {size} bytes, but {expected.synced_bytes} bytes "
            f"of it were fsynced (log-state.json): acknowledged records were lost: {last} "
            "and after",
        )


def _replay_best(
    directory: Path,
    config: BankConfig,
    settings: StoreSettings,
    logs: list[tuple[int, Path]],
    expected: LogState | None,
) -> tuple[Replayed, Base, list[str]]:
    """The logs replayed onto the newest usable base (see rule 3), the base, and why any
    newer snapshot was not used."""
    bad: list[tuple[int, str]] = []  # snapshots that failed verification: (seq, why)
    attempts: list[str] = []

    for base in _bases(directory, config, bad):
        newest_bad = max((seq for seq, _ in bad if seq > base.seq), default=None)

        def maintain(s: BankState, at: BankConfig = base.config) -> BankState:
            return maintained(s, at, settings)

        try:
            replayed = replay(base.state, logs, expected, base.config, maintain)
        except LogDamaged as err:
            if newest_bad is None:
                raise BankDamaged(config.name, str(err)) from err
            attempts.append(f"from {_name(base)}: {err}")
            continue
        if newest_bad is not None and replayed.state.last_seq < newest_bad:
            attempts.append(f"from {_name(base)} the logs reach only seq {replayed.state.last_seq}")
            continue
        if newest_bad is not None:
            LOG.warning(
                "bank %s: rebuilt from %s and the logs instead of snapshot %d",
                config.name,
                _name(base),
                newest_bad,
            )
        return replayed, base, [why for seq, why in bad if seq > base.seq]
    problems = "; ".join(why for _, why in bad)
    raise BankDamaged(
        config.name,
        f"{problems}; no older snapshot with a complete log to rebuild it from "
        f"({'; '.join(attempts)})",
    )


def _name(base: Base) -> str:
    return f"snapshot {base.seq}" if base.seq else "an empty bank"


def _bases(directory: Path, config: BankConfig, bad: list[tuple[int, str]]) -> Iterator[Base]:
    """Verified snapshots, newest first, then the empty bank; appends the bad ones to ``bad``."""
    for seq, snap in reversed(snapshot.snapshot_dirs(directory)):
        try:
            loaded = snapshot_load.load(snap, config)
        except snapshot_load.SnapshotError as err:
            LOG.error("bank %s: snapshot %d is not used: %s", config.name, seq, err)
            bad.append((seq, f"snapshot {seq}: {err}"))
            continue
        yield _base_of(loaded.config, loaded)
    yield Base(BankState.empty(config), False, 0, config)


def _base_of(config: BankConfig, loaded: snapshot_load.Loaded) -> Base:
    index = loaded.index
    if index is not None and loaded.trained:
        tombstones = ix.uses_tombstones(index)
        expected = loaded.table.n_slots if tombstones else loaded.table.n_live
        if index.ntotal != expected:
            LOG.warning(
                "bank %s: snapshot index holds %d vectors, expected %d",
                config.name,
                index.ntotal,
                expected,
            )
            index = None
    if index is None:
        LOG.warning(
            "bank %s: rebuilding the index of snapshot %d from its keys", config.name, loaded.seq
        )
        empty = BankState.of(
            config,
            loaded.table,
            ix.build(config.index, config.metric, config.key_dim),
            last_seq=loaded.seq,
        )
        return Base(st.rebuilt(empty, config), True, loaded.seq, config)
    state = BankState.of(config, loaded.table, index, last_seq=loaded.seq)
    return Base(state, False, loaded.seq, config)


def _active_log(
    directory: Path,
    last_seq: int,
    logs: list[tuple[int, Path]],
    expected: LogState | None,
    settings: StoreSettings,
) -> WriteAheadLog:
    """The log new records go to (fsynced), named in a fresh ``log-state.json``."""
    path = logs[-1][1] if logs else log_path(directory, last_seq)
    if path.exists() and _head(path) == MAGIC_V1:
        _fsync_file(path)  # its records stay where they are; new ones go to a new log
        successor = log_path(directory, last_seq)
        if successor == path:  # it holds no record: replace it
            fs.get().unlink(path)
        path = successor
    wal = WriteAheadLog(path, policy=settings.fsync, interval_ms=settings.fsync_interval_ms)
    try:
        wal.sync()
        created = expected.created_ns if expected is not None and expected.log == path.name else 0
        state = logstate.for_new_log(path, wal.synced_bytes)
        if created:
            state = LogState(path.name, created, wal.synced_bytes)
        logstate.write(directory, state)
    except BaseException:
        wal.close()
        raise
    return wal


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(len(MAGIC_V1))


def _fsync_file(path: Path) -> None:
    layer = fs.get()
    fd = layer.open(path, fs.APPEND_FLAGS)
    try:
        layer.fsync(fd)
    finally:
        layer.close(fd)


def maintained(state: BankState, config: BankConfig, settings: StoreSettings) -> BankState:
    """``state``, or a rebuilt copy when its index should be trained or compacted now."""
    if st.needs_training(state, config) or st.needs_compaction(state, settings):
        return st.rebuilt(state, config)
    return state
