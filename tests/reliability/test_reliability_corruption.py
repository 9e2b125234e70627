"""Corruption: torn or garbled log tails, truncated snapshots, missing index files.

The store lays a bank out as ``banks/<bank>/{config.json, snapshot-<seq>/, wal-<seq>.log}``
(docs/durability.md). Each test damages the files of a closed bank, reopens it (the
store, or a whole server) and checks that it comes back with exactly its last whole
records, reports what it cut, and keeps working.
"""

from __future__ import annotations

import logging
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from reliability_support import (
    Stubs,
    fetch_keys,
    in_process_server,
    keys_for,
    record_figures,
    scale,
    scale_s,
    write_request,
)

from memnet.api.v1 import bank_pb2, memory_pb2
from memnet.store import MemoryStore, StoreSettings, logstate
from memnet.store.repair import repair_bank
from memnet.store.types import BankConfig, MemoryBatch, Metric
from memnet.store.wal import MAGIC, log_files, read_log

DIM = 8
BANK = "b"
DAMAGE_CASES = scale(60, 600)
BUDGET_S = scale_s(60.0, 600.0)
SEED = 11


@dataclass(frozen=True)
class Step:
    """One logged record of the pristine bank: the ids it wrote or deleted."""

    written: tuple[str, ...]
    deleted: tuple[str, ...]


def _build_bank(data_dir: Path, records: int) -> list[Step]:
    """A bank whose log holds ``records`` records (writes, every 4th a delete), no snapshot."""
    steps: list[Step] = []
    with MemoryStore(data_dir, StoreSettings(snapshot_on_close=False)) as store:
        # L2: every stored key is its own nearest neighbour (distance 0), so a search with
        # each key must find that key first whatever index answers it.
        bank = store.create_bank(
            BankConfig(name=BANK, key_dim=DIM, value_dim=DIM, metric=Metric.L2, model="vector")
        )
        for j in range(records):
            if j % 4 == 3:
                doomed = (f"w{j - 1}-0",)
                bank.delete(list(doomed))
                steps.append(Step((), doomed))
                continue
            ids = tuple(f"w{j}-{i}" for i in range(1 + j % 3))
            keys = keys_for(ids, DIM)
            bank.write(MemoryBatch(keys=keys, values=keys, ids=list(ids)))
            steps.append(Step(ids, ()))
    return steps


def _live_after(steps: list[Step]) -> set[str]:
    live: set[str] = set()
    for step in steps:
        live.update(step.written)
        live.difference_update(step.deleted)
    return live


def _log_of(data_dir: Path) -> Path:
    ((_, path),) = log_files(data_dir / "banks" / BANK)
    return path


def _damage(path: Path, kind: str, position: int, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    if kind == "truncate":
        del data[position:]
    elif kind == "flip":
        data[position] ^= 1 << rng.randrange(8)
    else:  # "garbage": random bytes appended after the last record
        data += rng.randbytes(position)
    path.write_bytes(bytes(data))


def _as_after_a_kill(data_dir: Path) -> None:
    """Leave log-state.json as a killed server does: the log known fsynced only as far as
    its header, so damage after it may be a torn write (a clean close notes the whole size)."""
    bank_dir = data_dir / "banks" / BANK
    state = logstate.read(bank_dir)
    assert state is not None
    logstate.write(bank_dir, logstate.LogState(state.log, state.created_ns, len(MAGIC)))


def _check_live(store: MemoryStore, live: set[str], what: str) -> None:
    bank = store.bank(BANK)
    assert bank.count() == len(live), what
    expected = keys_for(sorted(live), DIM)
    for row, record in enumerate(bank.get(sorted(live))):
        assert record is not None, what
        np.testing.assert_array_equal(record.key, expected[row], err_msg=what)


def test_a_torn_tail_is_cut_and_damage_before_whole_records_is_quarantined_then_repaired(
    tmp_path: Path,
) -> None:
    """Seeded truncations, bit flips and garbage tails of the log of a killed server (and
    truncations of a cleanly closed one). Damage with no whole record after it, past what
    was fsynced, is a torn tail: cut to the last whole record. Anything else quarantines
    the bank with every byte kept, and ``repair_bank`` then keeps every other record and
    names exactly the sequence numbers lost."""
    pristine = tmp_path / "pristine"
    steps = _build_bank(pristine, records=24)
    closed_cleanly = tmp_path / "closed-cleanly"
    shutil.copytree(pristine, closed_cleanly)
    _as_after_a_kill(pristine)
    log = _log_of(pristine)
    frames = read_log(log)
    assert frames.reason == "" and len(frames.records) == len(steps)
    starts = frames.starts
    ends = [*starts[1:], frames.valid_bytes]  # end offset of every frame
    size = frames.valid_bytes
    rng = random.Random(SEED)
    counts = {"cut": 0, "quarantined": 0, "repaired": 0, "intact": 0}
    cut_total = 0
    began = time.monotonic()
    for case in range(DAMAGE_CASES):
        assert time.monotonic() - began < BUDGET_S, f"only {case} cases fit in {BUDGET_S} s"
        kind = rng.choice(["truncate", "flip", "garbage", "truncate-clean"])
        source = closed_cleanly if kind == "truncate-clean" else pristine
        position = rng.randrange(1, 200) if kind == "garbage" else rng.randrange(0, size)
        data_dir = tmp_path / f"case-{case}"
        shutil.copytree(source, data_dir)
        _damage(_log_of(data_dir), kind.removesuffix("-clean"), position, rng)
        damaged = _log_of(data_dir).read_bytes()
        what = f"case {case}: {kind} at byte {position} of {size}"
        # which frame the damage ruined (None: none), and whether whole frames follow it
        ruined = None if kind == "garbage" else sum(1 for end in ends if end <= position)
        if kind == "flip" and position < len(MAGIC):
            ruined = -1  # the file header: every frame follows it
        follows = kind == "flip" and ruined is not None and ruined < len(steps) - 1
        # a clean close noted the whole log as fsynced, a killed server its header
        fsynced = size if kind == "truncate-clean" else len(MAGIC)
        torn = not follows and (kind == "garbage" or position >= fsynced)
        with MemoryStore(data_dir) as store:
            report = store.recovery_reports()[BANK]
            if torn:
                whole = len(steps) if ruined is None else ruined
                boundary = len(MAGIC) if whole == 0 else ends[whole - 1]
                assert not report.failed, what
                assert report.records_replayed == whole, what
                assert report.bytes_cut == len(damaged) - boundary, what
                _check_live(store, _live_after(steps[:whole]), what)
                assert _log_of(data_dir).stat().st_size == boundary, f"{what}: not cut"
                counts["cut" if report.bytes_cut else "intact"] += 1
                cut_total += report.bytes_cut
            else:
                assert report.failed and "memnet repair" in report.error, what
                counts["quarantined"] += 1
        if torn:
            shutil.rmtree(data_dir)
            continue
        assert _log_of(data_dir).read_bytes() == damaged, f"{what}: a byte was changed"
        repaired = repair_bank(data_dir, BANK)
        assert repaired.kept_in is not None and repaired.damaged, what
        kept = repaired.kept_in / _log_of(pristine).name
        assert kept.read_bytes() == damaged, f"{what}: the original was not kept"
        if kind == "flip" and ruined is not None and ruined >= 0:
            lost_step = ruined
            first = sum(len(st.written) or 1 for st in steps[:lost_step]) + 1
            last = first + (len(steps[lost_step].written) or 1) - 1
            (lost,) = repaired.lost_bytes
            assert (lost.start, lost.end) == (starts[lost_step], ends[lost_step]), what
            assert lost.seqs.startswith(f"seq {first}-{last} "), f"{what}: {lost}"
            survivors = steps[:lost_step] + steps[lost_step + 1 :]
        else:  # the log ends before what was fsynced, or its header is damaged
            survivors = steps if kind == "flip" else steps[: ruined or 0]
        assert repaired.records_salvaged == len(survivors), what
        with MemoryStore(data_dir) as store:
            assert not store.recovery_reports()[BANK].failed, what
            _check_live(store, _live_after(survivors), what)
        counts["repaired"] += 1
        shutil.rmtree(data_dir)
    record_figures(
        "corruption-log",
        damaged_logs=DAMAGE_CASES,
        records_in_pristine_log=len(steps),
        bytes_cut_total=cut_total,
        **counts,
    )


def test_server_starts_over_a_torn_log_and_logs_what_it_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    steps = _build_bank(data_dir, records=8)
    with MemoryStore(data_dir, StoreSettings(snapshot_on_close=False)) as store:
        keys = keys_for(["ok-0", "ok-1"], DIM)
        store.create_bank(
            BankConfig(name="healthy", key_dim=DIM, value_dim=DIM, model="vector")
        ).write(MemoryBatch(keys=keys, values=keys, ids=["ok-0", "ok-1"]))
    _as_after_a_kill(data_dir)
    log = _log_of(data_dir)
    frames = read_log(log)
    last_start = frames.starts[-1]
    torn = log.read_bytes()[: last_start + 5] + b"\x13garbage after a torn frame"
    log.write_bytes(torn)
    leftover = data_dir / "banks" / BANK / "tmp-snapshot-00000000000000000099"
    leftover.mkdir()
    (leftover / "keys.npy").write_bytes(b"\x93NUMPY half a file")
    caplog.set_level(logging.INFO)
    with in_process_server(data_dir) as (_, port), grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stubs = Stubs(ch)
        live = sorted(_live_after(steps[:-1]))
        count = stubs.memories.CountMemories(memory_pb2.CountMemoriesRequest(bank=BANK))
        assert count.count == len(live)
        found = fetch_keys(stubs, BANK, live)
        expected = keys_for(live, DIM)
        for row, memory_id in enumerate(live):
            np.testing.assert_array_equal(found[memory_id], expected[row])
        healthy = stubs.banks.GetBank(bank_pb2.GetBankRequest(name="healthy")).bank
        assert healthy.memory_count == 2
        stubs.memories.WriteMemories(write_request(BANK, keys_for(["new"], DIM), ["new"]))
    cut_bytes = len(torn) - last_start
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    said = [w for w in warnings if re.search(rf"cut {cut_bytes} bytes from wal-\d+\.log", w)]
    assert said, f"no WARNING names the {cut_bytes} bytes cut; warnings: {warnings}"
    assert not leftover.exists(), "an unfinished snapshot directory was left in place"
    record_figures("corruption-server-start", bytes_cut=cut_bytes, records_kept=len(steps) - 1)


def _snapshotted_bank(data_dir: Path) -> tuple[Path, list[str]]:
    """A bank closed with a snapshot (its log then holds no records); returns its snapshot."""
    ids = [f"s{i}" for i in range(40)]
    with MemoryStore(data_dir) as store:
        keys = keys_for(ids, DIM)
        # L2: every stored key is its own nearest neighbour (distance 0), so a search with
        # each key must find that key first whatever index answers it.
        bank = store.create_bank(
            BankConfig(name=BANK, key_dim=DIM, value_dim=DIM, metric=Metric.L2, model="vector")
        )
        bank.write(MemoryBatch(keys=keys, values=keys, ids=ids))
    (snapshot,) = (data_dir / "banks" / BANK).glob("snapshot-*")
    return snapshot, ids


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_missing_or_truncated_index_file_is_rebuilt(tmp_path: Path, damage: str) -> None:
    snapshot, ids = _snapshotted_bank(tmp_path)
    index_file = snapshot / "index.faiss"
    if damage == "missing":
        index_file.unlink()
    else:
        index_file.write_bytes(index_file.read_bytes()[: index_file.stat().st_size // 2])
    with MemoryStore(tmp_path) as store:
        assert store.recovery_reports()[BANK].index_rebuilt
        bank = store.bank(BANK)
        assert bank.count() == len(ids)
        result = bank.search(keys_for(ids[:5], DIM), 1)
        assert [row[0] for row in result.ids] == ids[:5]


@pytest.mark.parametrize("damage", ["truncated-snapshot", "missing-manifest", "missing-config"])
def test_one_damaged_bank_does_not_stop_the_server(tmp_path: Path, damage: str) -> None:
    snapshot, _ = _snapshotted_bank(tmp_path)
    with MemoryStore(tmp_path) as store:
        keys = keys_for(["ok"], DIM)
        store.create_bank(
            BankConfig(name="healthy", key_dim=DIM, value_dim=DIM, model="vector")
        ).write(MemoryBatch(keys=keys, values=keys, ids=["ok"]))
    if damage == "truncated-snapshot":
        keys_file = snapshot / "keys.npy"
        keys_file.write_bytes(keys_file.read_bytes()[:-64])
    elif damage == "missing-manifest":
        (snapshot / "manifest.json").unlink()
    else:
        (snapshot.parent / "config.json").unlink()
    with in_process_server(tmp_path) as (_, port), grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stubs = Stubs(ch)
        count = stubs.memories.CountMemories(memory_pb2.CountMemoriesRequest(bank="healthy"))
        assert count.count == 1
        with pytest.raises(grpc.RpcError) as caught:
            stubs.memories.CountMemories(memory_pb2.CountMemoriesRequest(bank=BANK))
        assert caught.value.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


_RESNAPSHOT_THEN_DIE = """
import os, sys
from pathlib import Path
import numpy as np
from memnet.store import MemoryStore, fs
from memnet.store.types import BankConfig, MemoryBatch
store = MemoryStore(Path(sys.argv[1]))
bank = store.create_bank(BankConfig(name="b", key_dim=4, value_dim=4, model="vector"))
keys = np.ones((5, 4), np.float32)
bank.write(MemoryBatch(keys=keys, values=keys, ids=[f"m{i}" for i in range(5)]))
bank.snapshot()
class DyingAtRename(fs.FileSystem):
    def rename(self, src, dst):
        os._exit(9)  # the process dies at the rename
with fs.installed(DyingAtRename()):
    bank.snapshot()  # the same seq again
"""


def test_a_crash_while_re_snapshotting_the_same_seq_keeps_the_bank(tmp_path: Path) -> None:
    died = subprocess.run(
        [sys.executable, "-c", _RESNAPSHOT_THEN_DIE, str(tmp_path)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert died.returncode == 9, died.stderr.decode()[-2000:]
    with MemoryStore(tmp_path) as store:
        assert store.bank(BANK).count() == 5
