"""Restart time of memnet.store against the size of the logs it replays.

    python bench/bench_restart.py                        # 16, 64, 256 MiB of log (~3 min)
    python bench/bench_restart.py --sizes-mib 8,32 --dim 64

Prints four tables:
1. Reopening one bank whose log holds S MiB of records (no snapshot since), against
   reopening the same bank from a snapshot (baseline, same run): replay rate and ratio;
   then the same for a log of one-memory writes (the per-record cost).
   The store's limits (``snapshot_after_log_bytes``, default 256 MiB;
   ``snapshot_after_log_records``, 50,000; ``snapshot_after_log_age_s``, 1 h) are
   lifted here; with them a log never outgrows the first two, so a restart replays at
   most that much (the rows show the rate per MiB and per record).
2. Opening B banks of S MiB each with ``open_threads`` 1 and 4: wall time and ratio.
3. Background opening: one bank with a big log and three small ones; when the small
   ones are served, against when every bank is open.

Writes use ``fsync=none`` (the benchmark measures reading, not writing). Data are
Gaussian keys and values; replay time does not depend on their distribution.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import timing

from memnet.store import BankConfig, FsyncPolicy, MemoryBatch, MemoryStore, StoreSettings
from memnet.store.wal import log_files

MIB = 1 << 20


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print("\n" + timing.table(title, header, rows), end="")


def settings(**overrides: object) -> StoreSettings:
    base: dict[str, object] = {
        "fsync": FsyncPolicy.NONE,
        "snapshot_after_log_bytes": 1 << 40,
        "snapshot_after_log_records": 1 << 40,
        "snapshot_on_close": False,
    }
    return StoreSettings(**{**base, **overrides})  # type: ignore[arg-type]


def build_bank(data_dir: Path, name: str, log_mib: float, dim: int, batch: int) -> int:
    """A bank whose log holds about ``log_mib`` MiB of write records; returns its memories."""
    rng = np.random.default_rng(len(name))
    written = 0
    with MemoryStore(data_dir, settings()) as store:
        bank = store.create_bank(BankConfig(name=name, key_dim=dim, value_dim=dim))
        while bank.files.log_record_bytes < log_mib * MIB:
            keys = rng.standard_normal((batch, dim), dtype=np.float32)
            ids = [f"{name}-{written + i}" for i in range(batch)]
            bank.write(MemoryBatch(keys=keys, values=keys, ids=ids))  # type: ignore[arg-type]
            written += batch
    return written


def log_bytes(data_dir: Path, name: str) -> int:
    return sum(p.stat().st_size for _, p in log_files(data_dir / "banks" / name))


def reopen_s(data_dir: Path, threads: int = 4) -> float:
    t0 = time.perf_counter()
    store = MemoryStore(data_dir, settings(open_threads=threads))
    elapsed = time.perf_counter() - t0
    store.close()
    return elapsed


def replay_table(root: Path, sizes: list[float], dim: int, batch: int) -> None:
    rows = []
    for size in sizes:
        data_dir = root / f"replay-{size}"
        n = build_bank(data_dir, "b", size, dim, batch)
        logged = log_bytes(data_dir, "b")
        replay = min(reopen_s(data_dir) for _ in range(2))
        with MemoryStore(data_dir, settings()) as store:
            store.bank("b").snapshot()  # the same bank, from a snapshot and an empty log
        from_snapshot = min(reopen_s(data_dir) for _ in range(2))
        rows.append(
            [
                f"{logged / MIB:.1f}",
                f"{n:,}",
                f"{n // batch:,}",
                f"{replay:.2f}",
                f"{logged / MIB / replay:.0f}",
                f"{n // batch / replay:,.0f}",
                f"{from_snapshot:.2f}",
                f"{replay / from_snapshot:.1f}x",
            ]
        )
        shutil.rmtree(data_dir)
    table(
        f"Reopening one bank (D={dim}, flat, {batch} memories per write): its log replayed "
        "vs the same bank from a snapshot",
        ["log MiB", "memories", "records", "replay s", "MiB/s", "records/s", "snapshot s", "ratio"],
        rows,
    )


def parallel_table(root: Path, banks: int, size: float, dim: int, batch: int) -> None:
    data_dir = root / "parallel"
    for i in range(banks):
        build_bank(data_dir, f"b{i}", size, dim, batch)
    serial = min(reopen_s(data_dir, threads=1) for _ in range(2))
    pooled = min(reopen_s(data_dir, threads=4) for _ in range(2))
    shutil.rmtree(data_dir)
    table(
        f"Opening {banks} banks of {size:g} MiB of log each",
        ["open_threads", "seconds", "vs 1 thread"],
        [["1", f"{serial:.2f}", "1.00x"], ["4", f"{pooled:.2f}", f"{serial / pooled:.2f}x"]],
    )


def background_table(
    root: Path, size: float, dim: int, batch: int, *, small_mib: float = 1.0
) -> None:
    data_dir = root / "background"
    build_bank(data_dir, "big", size, dim, batch)
    for i in range(3):
        build_bank(data_dir, f"small{i}", small_mib, dim, batch)
    t0 = time.perf_counter()
    store = MemoryStore(data_dir, settings(open_threads=4), open_in_background=True)
    while len(store.banks()) < 3:
        time.sleep(0.005)
    small_s = time.perf_counter() - t0
    store.wait_until_open()
    all_s = time.perf_counter() - t0
    store.close()
    shutil.rmtree(data_dir)
    table(
        f"Background opening: one bank with {size:g} MiB of log, three with {small_mib:g} MiB",
        ["milestone", "seconds after start"],
        [["the three small banks served", f"{small_s:.2f}"], ["every bank open", f"{all_s:.2f}"]],
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes-mib", default="16,64,256", help="log sizes of table 1, MiB")
    p.add_argument("--dim", type=int, default=128, help="key and value dimension")
    p.add_argument("--batch", type=int, default=1000, help="memories per write record")
    p.add_argument("--small-mib", type=float, default=4, help="log MiB of one-memory writes (D=8)")
    p.add_argument("--banks", type=int, default=4, help="banks of table 2")
    p.add_argument("--bank-mib", type=float, default=32, help="log MiB per bank of table 2")
    p.add_argument("--data-dir", type=Path, default=None, help="where banks live (default: tmp)")
    a = p.parse_args()
    print(
        f"machine: {platform.machine()}, {faiss.omp_get_max_threads()} OpenMP threads, "
        f"faiss {faiss.__version__}, numpy {np.__version__}, python {platform.python_version()}"
    )
    root = Path(tempfile.mkdtemp(dir=a.data_dir))
    try:
        sizes = [float(s) for s in a.sizes_mib.split(",")]
        replay_table(root, sizes, a.dim, a.batch)
        replay_table(root, [a.small_mib], 8, 1)  # one memory per write: per-record cost
        parallel_table(root, a.banks, a.bank_mib, a.dim, a.batch)
        background_table(root, max(sizes), a.dim, a.batch)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
