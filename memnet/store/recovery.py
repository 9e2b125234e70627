"""Opening a bank: newest whole snapshot, then the log after it, cutting a bad tail.

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
from typing import TYPE_CHECKING

from memnet.errors import FailedPrecondition
from memnet.store import index as ix
from memnet.store import snapshot
from memnet.store.records import WriteRecord
from memnet.store.types import RecoveryReport
from memnet.store.wal import WriteAheadLog, cut_log, log_files, log_path, read_log

if TYPE_CHECKING:
    from memnet.store.bank import Bank

LOG = logging.getLogger(__name__)


def recover(bank: Bank) -> RecoveryReport:
    t0 = time.perf_counter()
    cfg = bank.config
    directory = bank.directory
    snapshot.resolve_interrupted(directory)
    snapshot.remove_temporaries(directory)
    index_rebuilt = _load_snapshot(bank)
    replayed, cut, reasons = 0, 0, []
    files = log_files(directory)
    for pos, (_, path) in enumerate(files):
        result = read_log(path)
        valid_bytes = result.valid_bytes
        reason = result.reason
        for record, start in zip(result.records, result.starts, strict=True):
            first = record.first_seq if isinstance(record, WriteRecord) else record.seq
            if record.last_seq <= bank._last_seq:
                continue
            if first != bank._last_seq + 1:
                reason = f"sequence gap: expected seq {bank._last_seq + 1}, found {first}"
                valid_bytes = start
                break
            bank._apply(record)
            bank._maintain()
            replayed += 1
        bytes_cut = path.stat().st_size - valid_bytes
        if reason:
            cut += bytes_cut
            reasons.append(f"{path.name}: {reason}")
            LOG.warning(
                "bank %s: cut %d bytes from %s (%s)", cfg.name, bytes_cut, path.name, reason
            )
            cut_log(path, valid_bytes)
            for _, later in files[pos + 1 :]:
                later.rename(later.with_suffix(".orphaned"))
                reasons.append(f"{later.name}: orphaned after the cut")
            files = files[: pos + 1]
            break
    path = files[-1][1] if files else log_path(directory, bank._last_seq)
    s = bank._settings
    bank._wal = WriteAheadLog(path, policy=s.fsync, interval_ms=s.fsync_interval_ms)
    LOG.info(
        "opened bank %s: %d memories, %d records replayed, %d bytes cut, in %.1f ms",
        cfg.name,
        bank._table.n_live,
        replayed,
        cut,
        (time.perf_counter() - t0) * 1e3,
    )
    return RecoveryReport(replayed, cut, "; ".join(reasons), index_rebuilt)


def _load_snapshot(bank: Bank) -> bool:
    """Load the newest good snapshot into ``bank``; True if its index had to be rebuilt."""
    cfg = bank.config
    for seq, directory in reversed(snapshot.snapshot_dirs(bank.directory)):
        try:
            loaded = snapshot.load(directory, cfg.key_dim, cfg.value_dim)
        except snapshot.SnapshotError as err:
            LOG.error("bank %s: skipping snapshot %d: %s", cfg.name, seq, err)
            continue
        bank._table = loaded.table
        bank._last_seq = loaded.seq
        index = loaded.index
        expected = loaded.table.n_slots if bank._tombstones else loaded.table.n_live
        if index is not None and loaded.trained and index.ntotal != expected:
            LOG.warning(
                "bank %s: snapshot index holds %d vectors, expected %d",
                cfg.name,
                index.ntotal,
                expected,
            )
            index = None
        if index is None:
            LOG.warning("bank %s: rebuilding the index of snapshot %d from its keys", cfg.name, seq)
            bank._install(ix.build(cfg.index, cfg.metric, cfg.key_dim))
            bank._rebuild(train=loaded.table.n_live >= ix.train_threshold(cfg.index))
            return True
        bank._install(index)
        return False
    if snapshot.snapshot_dirs(bank.directory):
        raise FailedPrecondition(f"bank {cfg.name!r}: no readable snapshot", field="bank")
    return False
