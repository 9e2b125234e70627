"""Writer subprocess of test_store_crash: writes forever, printing each acknowledged batch.

Usage: python store_crash_writer.py DATA_DIR FSYNC_POLICY INDEX_KIND
Prints ``ACK <batch> <seq>`` after each write (and, every third batch, a delete) returned.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from memnet.store import (
    BankConfig,
    FsyncPolicy,
    IndexKind,
    IndexSpec,
    MemoryBatch,
    MemoryStore,
    StoreSettings,
)

D, BATCH = 32, 200


def batch_keys(j: int) -> np.ndarray:
    """(BATCH, D) float32 keys of batch j: a pure function of j, so the test can check them."""
    return np.random.default_rng(j).standard_normal((BATCH, D)).astype(np.float32)


def batch_ids(j: int) -> list[str]:
    return [f"m{j * BATCH + i}" for i in range(BATCH)]


def main() -> None:
    data_dir, policy, kind = Path(sys.argv[1]), FsyncPolicy(sys.argv[2]), IndexKind(sys.argv[3])
    # A small log threshold: snapshots and log rotations happen while we are being killed.
    settings = StoreSettings(fsync=policy, snapshot_after_log_bytes=300_000)
    store = MemoryStore(data_dir, settings)
    config = BankConfig(name="crash", key_dim=D, value_dim=4, index=IndexSpec(kind=kind))
    bank = store.create_bank(config)
    j = 0
    while True:
        values = np.full((BATCH, 4), j, np.float32)
        meta = [{"j": j}] * BATCH
        r = bank.write(
            MemoryBatch(keys=batch_keys(j), values=values, ids=batch_ids(j), metadata=meta)
        )  # type: ignore[arg-type]
        if j % 3 == 2:
            bank.delete(batch_ids(j)[:1])  # deletes are acknowledged too
        sys.stdout.write(f"ACK {j} {r.seq}\n")
        sys.stdout.flush()
        j += 1


if __name__ == "__main__":
    main()
