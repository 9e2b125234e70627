"""Power loss, simulated: a crash at every point of writes, snapshots and renames, for
each fsync policy, through ``faultfs.PowerCutFS`` (what was not fsynced is lost).

Each case runs one scenario (create a bank, 8 writes with a snapshot, an automatic
snapshot, a re-snapshot at the same seq and a clean close) with a power cut at crash
point n, rebuilds the data directory as the cut leaves it, reopens it with the real file
system and checks the promises of docs/durability.md: the bank is never quarantined;
what survives is exactly the first j writes, bit for bit (never a hole, never a torn
record); ``always`` keeps every acknowledged write; ``interval`` keeps every write
acknowledged ``fsync_interval_ms`` or more before the cut and everything a snapshot or a
clean close covered; ``none`` keeps what a snapshot or a clean close covered.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from faultfs import PowerCut, PowerCutFS
from reliability_support import record_figures, scale

from memnet.store import MemoryStore, StoreSettings, fs, wal
from memnet.store.types import BankConfig, FsyncPolicy, MemoryBatch, Metric

DIM = 8
BATCH = 10
WRITES = 8
STEP_S = 350.0  # the fake clock's time between two writes
INTERVAL_MS = 600_000  # 600 s: an inline fsync every second write; the flusher never fires
TAILS = ("drop", "zeros", "prefix") if scale(0, 1) else ("drop",)
SAMPLED_POINTS = scale(24, 0)  # crash points tried per policy (0: every one)
SHM = Path("/dev/shm")  # tmpfs: the cut is simulated, the disk need not be real


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Run:
    acked: int = 0  # writes acknowledged (returned)
    covered: int = 0  # writes a completed snapshot or clean close covered
    ack_times: list[float] = field(default_factory=list)
    crash_time: float = 0.0
    crashed: bool = False


KEYS = [np.random.default_rng(j).standard_normal((BATCH, DIM)).astype(np.float32) for j in range(9)]


def _keys(j: int) -> np.ndarray:
    return KEYS[j]


def _ids(j: int) -> list[str]:
    return [f"w{j}-{i}" for i in range(BATCH)]


def _settings(policy: FsyncPolicy) -> StoreSettings:
    return StoreSettings(
        fsync=policy, fsync_interval_ms=INTERVAL_MS, snapshot_after_log_bytes=3_000
    )


def _scenario(data_dir: Path, policy: FsyncPolicy, clock: FakeClock, layer: PowerCutFS) -> Run:
    run = Run()
    store = MemoryStore(data_dir, _settings(policy))
    try:
        bank = store.create_bank(BankConfig(name="b", key_dim=DIM, value_dim=DIM, metric=Metric.L2))
        for j in range(WRITES):
            clock.now = j * STEP_S
            keys = _keys(j)
            bank.write(MemoryBatch(keys=keys, values=keys, ids=_ids(j)))
            run.acked = j + 1
            run.ack_times.append(clock.now)
            if bank.files.log_record_bytes == 0 and not layer.crashed:
                run.covered = run.acked  # an automatic snapshot was taken
            if j in (1, 5):
                bank.snapshot()
                run.covered = run.acked
            if j == 5:
                bank.snapshot()  # the same seq again: the old one is renamed aside first
        store.close()  # logs (does not raise) what a cut inside it breaks
        if not layer.crashed:
            run.covered = run.acked
    except PowerCut:
        pass
    finally:
        store.close()
    return run


def _run_with_cut(
    data_dir: Path, policy: FsyncPolicy, crash_at: int | None, *, tail: str, seed: int
) -> tuple[Run, PowerCutFS]:
    clock = FakeClock()
    real_clock = wal.monotonic
    layer = PowerCutFS(data_dir, crash_at=crash_at, tail=tail, seed=seed)
    wal.monotonic = clock
    try:
        with fs.installed(layer):
            run = _scenario(data_dir, policy, clock, layer)
    finally:
        wal.monotonic = real_clock
    run.crashed = layer.crashed
    run.crash_time = clock.now
    if layer.crashed:
        layer.power_cut()
    return run, layer


def _required(policy: FsyncPolicy, run: Run) -> int:
    """How many writes the policy promises to keep through this cut."""
    if policy is FsyncPolicy.ALWAYS or not run.crashed:
        return run.acked
    if policy is FsyncPolicy.INTERVAL:
        old = sum(1 for t in run.ack_times if t <= run.crash_time - INTERVAL_MS / 1000)
        return max(run.covered, old)
    return run.covered


def _survivors(data_dir: Path, policy: FsyncPolicy) -> int:
    """Reopen with the real file system; the number of whole writes found (checked exact)."""
    with MemoryStore(data_dir, _settings(policy)) as store:
        reports = store.recovery_reports()
        assert not any(r.failed for r in reports.values()), reports
        if "b" not in reports:
            return 0
        bank = store.bank("b")
        count = bank.count()
        assert count % BATCH == 0, f"{count} memories: a write survived in part"
        survived = count // BATCH
        for j in range(survived):
            records = bank.get(_ids(j))
            for i, record in enumerate(records):
                assert record is not None, f"write {j} has a hole"
                np.testing.assert_array_equal(record.key, _keys(j)[i])
        assert bank.get(_ids(survived))[0] is None  # nothing after the prefix
        return survived


@pytest.fixture
def clean_dir(tmp_path: Path) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(dir=SHM)) if SHM.is_dir() else tmp_path
    data_dir = base / "data"
    MemoryStore(data_dir).close()  # the store's own directories exist before the cuts
    shutil.copytree(data_dir, base / "pristine")
    yield data_dir
    if base != tmp_path:
        shutil.rmtree(base, ignore_errors=True)


def _crash_points(layer: PowerCutFS, policy: FsyncPolicy) -> list[int]:
    """Every crash point, or (short run) a seeded sample with the first and the last."""
    every = list(range(1, layer.calls + 1))
    if not SAMPLED_POINTS or len(every) <= SAMPLED_POINTS:
        return every
    rng = random.Random(policy.value)
    return sorted({1, len(every), *rng.sample(every, SAMPLED_POINTS - 2)})


def _reset(data_dir: Path) -> None:
    shutil.rmtree(data_dir)
    shutil.copytree(data_dir.parent / "pristine", data_dir)


@pytest.mark.parametrize("policy", list(FsyncPolicy))
def test_a_power_cut_at_every_crash_point_loses_only_what_the_policy_allows(
    clean_dir: Path, policy: FsyncPolicy
) -> None:
    began = time.monotonic()
    dry, layer = _run_with_cut(clean_dir, policy, None, tail="drop", seed=0)
    points = layer.calls
    assert not dry.crashed and dry.acked == WRITES and points > 50
    kinds = sorted(set(layer.trace))
    lost_acked = cases = 0
    for tail in TAILS:
        for crash_at in _crash_points(layer, policy):
            _reset(clean_dir)
            run, _ = _run_with_cut(clean_dir, policy, crash_at, tail=tail, seed=crash_at)
            what = f"{policy.value}, {tail}, cut at point {crash_at} of {points}: {run}"
            survived = _survivors(clean_dir, policy)
            assert survived >= _required(policy, run), what
            assert survived <= run.acked + 1, what  # at most the write in flight besides
            lost_acked += max(0, run.acked - survived)
            cases += 1
    record_figures(
        f"power-loss-{policy.value}",
        crash_points=points,
        crash_points_tried=len(_crash_points(layer, policy)),
        call_kinds=kinds,
        tails=list(TAILS),
        cases=cases,
        acknowledged_writes_lost=lost_acked,
        seconds=round(time.monotonic() - began, 1),
    )


def test_the_fault_layer_drops_what_was_not_fsynced(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "old").write_bytes(b"kept")
    layer = PowerCutFS(root)
    with fs.installed(layer):
        fd = layer.open(root / "log", fs.APPEND_FLAGS)
        layer.write(fd, b"synced")
        layer.fsync(fd)
        layer.fsync_dir(root)
        layer.write(fd, b" and lost")
        layer.close(fd)
        fs.write_file(root / "new", [b"file synced, directory not"])
        layer.rename(root / "old", root / "renamed")
    layer.power_cut()
    assert sorted(p.name for p in root.iterdir()) == ["log", "old"]
    assert (root / "log").read_bytes() == b"synced"
    assert (root / "old").read_bytes() == b"kept"
