"""Replaying a bank's logs onto a state, telling a torn tail from corruption.

A **torn tail** is damage at the end of the newest log with no whole frame after it,
lying beyond what ``log-state.json`` says was fsynced: a write a crash cut short. It is
cut (by the caller, once the replay is chosen). Anything else is **corruption** and
raises ``LogDamaged`` without touching a byte: damage followed by whole frames (in the
same log or a later one), damage inside the fsynced part, or a gap in the sequence
numbers. Damage that only held records the snapshot already has is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from memnet.store import frames
from memnet.store import state as st
from memnet.store.frames import Damage, LogScan
from memnet.store.logstate import LogState
from memnet.store.records import seq_range
from memnet.store.state import BankState
from memnet.store.types import BankConfig

LOG = logging.getLogger(__name__)


class LogDamaged(RuntimeError):
    """A log that lost or damaged records a crash cannot explain (see the module doc)."""


@dataclass(frozen=True)
class TailCut:
    path: Path
    valid_bytes: int
    bytes_cut: int
    reason: str


@dataclass
class Replayed:
    state: BankState
    records: int = 0  # records applied
    cut: TailCut | None = None  # the torn tail to cut, if any
    skipped_logs: list[str] = field(default_factory=list)  # logs the snapshot covers


def replay(
    state: BankState,
    logs: list[tuple[int, Path]],
    expected: LogState | None,
    config: BankConfig,
    maintain: Callable[[BankState], BankState],
) -> Replayed:
    """``state`` with every record of ``logs`` after its seq applied (``maintain`` after
    each); raises LogDamaged on corruption."""
    out = Replayed(state)
    for pos, (_, path) in enumerate(logs):
        later = logs[pos + 1 :]
        if later and later[0][0] <= out.state.last_seq:
            out.skipped_logs.append(path.name)  # every record in it is in the snapshot
            continue
        scanned = frames.scan(path)
        floor = expected.synced_bytes if expected is not None and expected.log == path.name else 0
        cuttable = scanned.tail_damage if not later else None
        if cuttable is not None and cuttable.start < floor:
            raise LogDamaged(_describe_short(scanned, cuttable, floor))
        base_seq = out.state.last_seq
        for damage in scanned.damage:
            if damage is not cuttable and not _covered(scanned, damage, base_seq):
                raise LogDamaged(describe(scanned, damage))
        for f in scanned.frames:
            first, last = seq_range(f.record)
            if last <= out.state.last_seq:
                continue
            if first != out.state.last_seq + 1:
                raise LogDamaged(
                    f"{path.name}: sequence gap at byte {f.start}: expected seq "
                    f"{out.state.last_seq + 1}, found {first} (records "
                    f"{out.state.last_seq + 1}-{first - 1} are missing)"
                )
            out.state = maintain(st.apply(out.state, f.record, config))
            out.records += 1
        if cuttable is not None:
            out.cut = TailCut(path, cuttable.start, cuttable.bytes, cuttable.reason)
    return out


def _neighbours(scanned: LogScan, damage: Damage) -> tuple[frames.Frame | None, list[frames.Frame]]:
    before = [f for f in scanned.frames if f.end <= damage.start]
    after = [f for f in scanned.frames if f.start >= damage.end]
    return (before[-1] if before else None), after


def _covered(scanned: LogScan, damage: Damage, base_seq: int) -> bool:
    """True when every record the damaged bytes could have held is at or below ``base_seq``
    (never for a damaged file header: the file is not what it says)."""
    if damage.start < frames.MAGIC_BYTES:
        return False
    if damage.seqs is not None and damage.seqs[1] <= base_seq:
        return True
    _, after = _neighbours(scanned, damage)
    return bool(after) and seq_range(after[0].record)[0] - 1 <= base_seq


def lost_range(scanned: LogScan, damage: Damage) -> tuple[int | None, int | None]:
    """The first and last sequence numbers the damaged bytes can have held, as far as the
    frames around them (or the log's name, ``wal-<seq after which it starts>.log``) tell;
    None where nothing tells."""
    before, after = _neighbours(scanned, damage)
    low = seq_range(before.record)[1] + 1 if before is not None else None
    high = seq_range(after[0].record)[0] - 1 if after else None
    if low is None and damage.seqs is not None:
        low = damage.seqs[0]
    if low is None:
        try:
            low = int(scanned.path.stem.split("-", 1)[1]) + 1
        except (IndexError, ValueError):
            low = None
    return low, high


def lost_seqs(scanned: LogScan, damage: Damage) -> str:
    """``lost_range`` in words."""
    low, high = lost_range(scanned, damage)
    if low is not None and high is not None:
        return f"seq {low}-{high} ({high - low + 1} sequence numbers)" if high >= low else "none"
    if low is not None:
        return f"seq {low} and after (how many is unknown)"
    if high is not None:
        return f"seq {high} and before (how many is unknown)"
    return "unknown"


def describe(scanned: LogScan, damage: Damage) -> str:
    _, after = _neighbours(scanned, damage)
    text = (
        f"{scanned.path.name}: bytes {damage.start}-{damage.end} ({damage.bytes} bytes) are "
        f"damaged ({damage.reason}), records lost: {lost_seqs(scanned, damage)}"
    )
    if after:
        first, last = seq_range(after[0].record)[0], seq_range(after[-1].record)[1]
        text += f"; {len(after)} whole records follow it (seq {first}-{last})"
    return text


def _describe_short(scanned: LogScan, damage: Damage, floor: int) -> str:
    return (
        f"{scanned.path.name}: bytes {damage.start}-{damage.end} ({damage.bytes} bytes) are "
        f"damaged ({damage.reason}) although {floor} bytes of the log were fsynced "
        f"(log-state.json): acknowledged records were lost: {lost_seqs(scanned, damage)}"
    )
