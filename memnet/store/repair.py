"""Salvaging a quarantined bank offline: every whole record kept, every loss reported.

``repair_bank`` works on a data directory whose server is stopped (it takes the store's
directory lock, so it refuses while a server holds it). It loads the newest snapshot
that passes its checksums (or starts from an empty bank), applies every whole record
of every log after it in sequence order, past damage and gaps, writes the result as a
new snapshot with a new empty log, and moves every original file it replaced (logs,
``log-state.json``, snapshots) into ``damaged-<UTC time>/`` inside the bank directory,
byte for byte. The report says exactly what was lost: byte ranges of damaged log bytes
and the sequence numbers they held, gaps in the sequence, unusable snapshots.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from memnet.errors import FailedPrecondition, NotFound
from memnet.store import frames, fs, logstate, snapshot, snapshot_load
from memnet.store import index as ix
from memnet.store import state as st
from memnet.store.locks import DirLock
from memnet.store.records import Record, seq_range
from memnet.store.recovery import maintained
from memnet.store.replay import lost_range, lost_seqs
from memnet.store.state import BankState
from memnet.store.types import BankConfig, StoreSettings
from memnet.store.wal import WriteAheadLog, log_files, log_path

LOG = logging.getLogger(__name__)

BANKS_DIR = "banks"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class LostBytes:
    log: str
    start: int
    end: int
    reason: str
    seqs: str  # the sequence numbers they held, as far as the frames around them tell
    low: int | None  # ... the first and last of them (None: not known)
    high: int | None


def _within(gap: tuple[int, int], ranges: list[tuple[int | None, int | None]]) -> bool:
    """True when a damaged range already accounts for every seq of ``gap``."""
    return any(
        (low is None or low <= gap[0]) and (high is None or gap[1] <= high) for low, high in ranges
    )


@dataclass
class RepairReport:
    bank: str
    base: str  # what the records were applied to: "snapshot <seq>" or "an empty bank"
    records_salvaged: int = 0
    memories: int = 0  # live memories after the repair
    last_seq: int = 0
    lost_bytes: list[LostBytes] = field(default_factory=list)
    seq_gaps: list[tuple[int, int]] = field(default_factory=list)  # inclusive ranges lost
    problems: list[str] = field(default_factory=list)  # unusable snapshots, missing logs
    kept_in: Path | None = None  # where the original files were moved (None: dry run)

    @property
    def damaged(self) -> bool:
        return bool(self.lost_bytes or self.seq_gaps or self.problems)

    def lines(self) -> list[str]:
        """The report as text, one finding per line."""
        if not self.damaged:
            return [
                f"bank {self.bank}: no damage found, nothing changed ({self.memories} "
                f"memories, last seq {self.last_seq})"
            ]
        out = [f"bank {self.bank}: rebuilt from {self.base}"]
        for p in self.problems:
            out.append(f"  lost: {p}")
        for b in self.lost_bytes:
            out.append(
                f"  lost: {b.log} bytes {b.start}-{b.end} ({b.end - b.start} bytes, {b.reason}): "
                f"records {b.seqs}"
            )
        for low, high in self.seq_gaps:
            out.append(f"  lost: seq {low}-{high} ({high - low + 1} sequence numbers)")
        out.append(
            f"  kept: {self.records_salvaged} records salvaged; the bank holds "
            f"{self.memories} memories, last seq {self.last_seq}"
        )
        if self.kept_in is not None:
            out.append(f"  the damaged originals are in {self.kept_in}")
        return out


def repair_bank(data_dir: Path, name: str, *, dry_run: bool = False) -> RepairReport:
    """Salvage bank ``name`` of ``data_dir`` (the server must be stopped); see the module doc."""
    bank_dir = Path(data_dir) / BANKS_DIR / name
    if not (bank_dir / CONFIG_FILE).is_file():
        raise NotFound(f"no bank {name!r} in {data_dir}", field="bank")
    store_lock = DirLock(Path(data_dir), what="store")
    try:
        bank_lock = DirLock(bank_dir, what=f"bank {name!r}")
        try:
            return _repair(bank_dir, name, dry_run=dry_run)
        finally:
            bank_lock.release()
    finally:
        store_lock.release()


def _repair(bank_dir: Path, name: str, *, dry_run: bool) -> RepairReport:
    try:
        config = BankConfig.model_validate_json((bank_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError) as err:
        raise FailedPrecondition(
            f"bank {name!r}: {CONFIG_FILE} is unreadable, so its records cannot be decoded "
            f"({err}); restore it from a backup first",
            field="bank",
        ) from err
    report = RepairReport(name, "an empty bank")
    if not dry_run:
        snapshot.resolve_interrupted(bank_dir)
    state = BankState.empty(config)
    snapshots = snapshot.snapshot_dirs(bank_dir)
    for seq, snap in reversed(snapshots):
        try:
            loaded = snapshot_load.load(snap, config)
        except snapshot_load.SnapshotError as err:
            report.problems.append(f"snapshot {seq} is not usable ({err})")
            continue
        config = loaded.config  # a reindex may have changed it
        unindexed = BankState.of(
            config,
            loaded.table,
            ix.build(config.index, config.metric, config.key_dim),
            last_seq=loaded.seq,
        )
        state = st.rebuilt(unindexed, config)  # the index file is not trusted: rebuilt
        report.base = f"snapshot {loaded.seq}"
        break
    base_seq = state.last_seq
    records = _salvage(bank_dir, base_seq, report)
    settings = StoreSettings()
    explained = [(b.low, b.high) for b in report.lost_bytes]
    for record in records:
        first, last = seq_range(record)
        if last <= state.last_seq:
            continue
        gap = (state.last_seq + 1, first - 1)
        if first > state.last_seq + 1 and not _within(gap, explained):
            report.seq_gaps.append(gap)
        state = maintained(st.apply(state, record, config), config, settings)
        report.records_salvaged += 1
    _check_log_state(bank_dir, state.last_seq, report)
    report.memories, report.last_seq = state.table.n_live, state.last_seq
    if dry_run or not report.damaged:
        return report
    report.kept_in = _move_aside(bank_dir)
    snapshot.write(
        bank_dir, state.last_seq, state.table, state.index, trained=state.trained, config=config
    )
    path = log_path(bank_dir, state.last_seq)
    wal = WriteAheadLog(path, policy=settings.fsync, interval_ms=settings.fsync_interval_ms)
    wal.close()
    logstate.write(bank_dir, logstate.for_new_log(path, wal.synced_bytes))
    LOG.warning("repaired bank %s: %s", name, "; ".join(report.lines()[1:]))
    return report


def _salvage(bank_dir: Path, base_seq: int, report: RepairReport) -> list[Record]:
    """Every whole record after ``base_seq`` in every log, in sequence order; damaged
    bytes that held records after ``base_seq`` go into ``report``."""
    found: dict[int, Record] = {}
    for _, path in log_files(bank_dir):
        scanned = frames.scan(path)
        for damage in scanned.damage:
            if damage.seqs is not None and damage.seqs[1] <= base_seq:
                continue
            low, high = lost_range(scanned, damage)
            seqs = lost_seqs(scanned, damage)
            report.lost_bytes.append(
                LostBytes(path.name, damage.start, damage.end, damage.reason, seqs, low, high)
            )
        for f in scanned.frames:
            first, last = seq_range(f.record)
            if last > base_seq:
                found.setdefault(first, f.record)
    return [found[first] for first in sorted(found)]


def _check_log_state(bank_dir: Path, last_seq: int, report: RepairReport) -> None:
    """Note a missing active log, or one shorter than its fsynced size."""
    try:
        expected = logstate.read(bank_dir)
    except logstate.LogStateError as err:
        report.problems.append(str(err))
        return
    if expected is None:
        return
    named = bank_dir / expected.log
    if not named.exists():
        report.problems.append(
            f"the active log {expected.log} is missing ({expected.synced_bytes} bytes were "
            f"fsynced): records after seq {last_seq}, how many is unknown"
        )
    elif (size := named.stat().st_size) < expected.synced_bytes:
        report.problems.append(
            f"the active log {expected.log} is {size} bytes of {expected.synced_bytes} fsynced: "
            f"records after seq {last_seq}, how many is unknown"
        )


def _move_aside(bank_dir: Path) -> Path:
    """Move every log, snapshot and log-state.json into a new ``damaged-<time>/``."""
    layer = fs.get()
    aside = bank_dir / time.strftime("damaged-%Y%m%dT%H%M%SZ", time.gmtime())
    n = 1
    while aside.exists():
        aside = aside.with_name(f"{aside.name.split('.')[0]}.{n}")
        n += 1
    layer.mkdir(aside)
    doomed = [p for _, p in log_files(bank_dir)] + [p for _, p in snapshot.snapshot_dirs(bank_dir)]
    if (bank_dir / logstate.STATE_FILE).exists():
        doomed.append(bank_dir / logstate.STATE_FILE)
    for p in doomed:
        layer.rename(p, aside / p.name)
    layer.fsync_dir(aside)
    layer.fsync_dir(bank_dir)
    return aside
