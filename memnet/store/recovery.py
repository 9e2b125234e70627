"""Opening a bank: newest whole snapshot, then ``apply`` folded over the log after it.

Rules (docs/durability.md):
1. A ``replaced-snapshot-<seq>`` (a re-snapshot at the same seq cut short) is put back
   if its replacement never arrived, else deleted; ``tmp-*`` directories are
   unfinished snapshots and are deleted.
2. The newest ``snapshot-<seq>`` that matches its manifest is loaded; if its index
   file is missing, unreadable or holds the wrong number of vectors, the index
   is rebuilt from the snapshot's float32 keys (``index_rebuilt``).
3. Every ``wal-<seq>.log`` is read in order; records at or below the snapshot's seq
   are skipped (a crash between snapshot and log rotation leaves them behind),
   the rest are applied in order. Sequence numbers must be contiguous.
4. At the first torn, corrupt or out-of-sequence frame the file is cut back to the
   last whole record (and fsynced); later log files are renamed ``*.orphaned``
   rather than replayed across the gap. The cut is logged and reported.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from memnet.errors import FailedPrecondition
from memnet.store import index as ix
from memnet.store import snapshot
from memnet.store import state as st
from memnet.store.records import WriteRecord
from memnet.store.state import BankState
from memnet.store.types import BankConfig, RecoveryReport, StoreSettings
from memnet.store.wal import WriteAheadLog, cut_log, log_files, log_path, read_log

LOG = logging.getLogger(__name__)


@dataclass
class Recovered:
    state: BankState
    wal: WriteAheadLog  # open for appending after the last whole record
    report: RecoveryReport


def recover(directory: Path, config: BankConfig, settings: StoreSettings) -> Recovered:
    """Read a bank's directory back into memory (the caller holds its directory lock)."""
    t0 = time.perf_counter()
    snapshot.resolve_interrupted(directory)
    snapshot.remove_temporaries(directory)
    state, index_rebuilt = _load_snapshot(directory, config)
    replayed, cut, reasons = 0, 0, []
    files = log_files(directory)
    for pos, (_, path) in enumerate(files):
        result = read_log(path)
        valid_bytes = result.valid_bytes
        reason = result.reason
        for record, start in zip(result.records, result.starts, strict=True):
            first = record.first_seq if isinstance(record, WriteRecord) else record.seq
            if record.last_seq <= state.last_seq:
                continue
            if first != state.last_seq + 1:
                reason = f"sequence gap: expected seq {state.last_seq + 1}, found {first}"
                valid_bytes = start
                break
            state = st.apply(state, record, config)
            state = maintained(state, config, settings)
            replayed += 1
        bytes_cut = path.stat().st_size - valid_bytes
        if reason:
            cut += bytes_cut
            reasons.append(f"{path.name}: {reason}")
            LOG.warning(
                "bank %s: cut %d bytes from %s (%s)", config.name, bytes_cut, path.name, reason
            )
            cut_log(path, valid_bytes)
            for _, later in files[pos + 1 :]:
                later.rename(later.with_suffix(".orphaned"))
                reasons.append(f"{later.name}: orphaned after the cut")
            files = files[: pos + 1]
            break
    path = files[-1][1] if files else log_path(directory, state.last_seq)
    wal = WriteAheadLog(path, policy=settings.fsync, interval_ms=settings.fsync_interval_ms)
    LOG.info(
        "opened bank %s: %d memories, %d records replayed, %d bytes cut, in %.1f ms",
        config.name,
        state.table.n_live,
        replayed,
        cut,
        (time.perf_counter() - t0) * 1e3,
    )
    return Recovered(state, wal, RecoveryReport(replayed, cut, "; ".join(reasons), index_rebuilt))


def maintained(state: BankState, config: BankConfig, settings: StoreSettings) -> BankState:
    """``state``, or a rebuilt copy when its index should be trained or compacted now."""
    if st.needs_training(state, config) or st.needs_compaction(state, settings):
        return st.rebuilt(state, config)
    return state


def _load_snapshot(directory: Path, config: BankConfig) -> tuple[BankState, bool]:
    """The newest good snapshot as a state (an empty state if there is none), and whether
    its index had to be rebuilt from its keys."""
    for seq, snap in reversed(snapshot.snapshot_dirs(directory)):
        try:
            loaded = snapshot.load(snap, config.key_dim, config.value_dim)
        except snapshot.SnapshotError as err:
            LOG.error("bank %s: skipping snapshot %d: %s", config.name, seq, err)
            continue
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
                "bank %s: rebuilding the index of snapshot %d from its keys", config.name, seq
            )
            empty = BankState.of(
                config,
                loaded.table,
                ix.build(config.index, config.metric, config.key_dim),
                last_seq=loaded.seq,
            )
            return st.rebuilt(empty, config), True
        return BankState.of(config, loaded.table, index, last_seq=loaded.seq), False
    if snapshot.snapshot_dirs(directory):
        raise FailedPrecondition(f"bank {config.name!r}: no readable snapshot", field="bank")
    return BankState.empty(config), False
