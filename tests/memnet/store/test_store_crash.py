"""SIGKILL a writer subprocess mid-stream; every acknowledged memory must survive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from store_crash_writer import D, batch_ids, batch_keys

from memnet.store import FsyncPolicy, MemoryStore, StoreSettings

WRITER = Path(__file__).with_name("store_crash_writer.py")


@pytest.mark.parametrize(
    ("policy", "kind"),
    [(FsyncPolicy.ALWAYS, "flat"), (FsyncPolicy.ALWAYS, "hnsw"), (FsyncPolicy.NONE, "flat")],
)
def test_acknowledged_writes_survive_sigkill(
    tmp_path: Path, policy: FsyncPolicy, kind: str
) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(tmp_path), policy.value, kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acked: list[tuple[int, int]] = []
    deadline = time.monotonic() + 60
    target = 25 + os.getpid() % 10  # vary where in the stream the kill lands
    try:
        while len(acked) < target and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            _, j, seq = line.split()
            acked.append((int(j), int(seq)))
        time.sleep(0.003 * (os.getpid() % 7))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert len(acked) >= 10, proc.stderr.read() if proc.stderr else ""
    store = MemoryStore(tmp_path, StoreSettings())
    bank = store.bank("crash")
    assert bank.last_seq >= acked[-1][1]
    for j, _ in acked:
        ids = batch_ids(j)
        records = bank.get(ids)
        deleted = j % 3 == 2
        assert (records[0] is None) == deleted
        keys = batch_keys(j)
        for i, rec in enumerate(records[1:], start=1):
            assert rec is not None, f"acknowledged memory {ids[i]} lost"
            np.testing.assert_array_equal(rec.key, keys[i])
            assert rec.value[0] == j and rec.metadata == {"j": j}
    res = bank.search(np.random.default_rng(0).standard_normal((1, D)).astype(np.float32), 5)
    assert res.valid.all()
    store.close()
