"""Capacity policies: REJECT changes nothing; EVICT_OLDEST removes the lowest seqs, durably."""

from __future__ import annotations

import numpy as np
import pytest
from store_testlib import Backend, batch, make_bank_config

from memnet.errors import ResourceExhausted
from memnet.store import CapacityPolicy

D = 8


def _keys(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


def test_reject_policy_refuses_and_changes_nothing(backend: Backend) -> None:
    store = backend.open()
    bank = store.create_bank(make_bank_config(key_dim=D, capacity=100))
    bank.write(batch(_keys(80), ids=[f"a{i}" for i in range(80)]))
    wal = bank.files.wal if backend.faiss else None  # type: ignore[attr-defined]
    log_bytes = wal.size_bytes if wal else 0
    with pytest.raises(ResourceExhausted) as err:
        bank.write(batch(_keys(30, 1), ids=[f"b{i}" for i in range(30)]))
    assert err.value.field == "capacity" and "100" in str(err.value)
    assert bank.count() == 80 and bank.last_seq == 80 and bank.get(["b0"]) == [None]
    if backend.faiss:
        assert wal is not None and wal.size_bytes == log_bytes  # nothing logged
    # Replacing existing ids needs no room; 20 new ones exactly fill the bank.
    r = bank.write(
        batch(_keys(40, 2), ids=[f"a{i}" for i in range(20)] + [f"c{i}" for i in range(20)])
    )
    assert (r.inserted, r.replaced, r.evicted_ids) == (20, 20, [])
    assert bank.count() == 100
    with pytest.raises(ResourceExhausted):
        bank.write(batch(_keys(1, 3)))
    store.close()


def test_evict_oldest_removes_lowest_seq_and_survives_reopen(backend: Backend) -> None:
    store = backend.open(snapshot_on_close=False)
    cfg = make_bank_config(key_dim=D, capacity=100, capacity_policy=CapacityPolicy.EVICT_OLDEST)
    bank = store.create_bank(cfg)
    bank.write(batch(_keys(100), ids=[f"a{i}" for i in range(100)]))
    # a0 and a1 are replaced in this batch, so they are not eviction candidates.
    r = bank.write(batch(_keys(32, 1), ids=["a0", "a1"] + [f"b{i}" for i in range(30)]))
    assert r.evicted_ids == [f"a{i}" for i in range(2, 32)]
    assert (r.inserted, r.replaced) == (30, 2)
    assert bank.count() == 100
    assert bank.get(["a2", "a31"]) == [None, None] and bank.get(["a32"])[0] is not None
    res = bank.search(_keys(100)[2:32], 5)
    assert not {m for row in res.ids for m in row} & {f"a{i}" for i in range(2, 32)}
    store.close()
    store = backend.open()
    bank = store.bank("b")
    assert bank.count() == 100 and bank.get(["a2"]) == [None] and bank.get(["a0"])[0] is not None
    with pytest.raises(ResourceExhausted) as err:  # one batch larger than the whole bank
        bank.write(batch(_keys(101, 4)))
    assert err.value.field == "capacity"
    store.close()
