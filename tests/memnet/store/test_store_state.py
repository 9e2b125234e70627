"""The bank state: replay equals the live path, and a failing index never loses a write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_testlib import batch, clustered, make_bank_config, open_store

from memnet.errors import FailedPrecondition
from memnet.store import IndexKind, IndexSpec
from memnet.store import index as ix
from memnet.store import state as st
from memnet.store.records import DeleteRecord, WriteRecord
from memnet.store.state import BankState
from memnet.store.wal import log_files, read_log

D = 16


def test_replaying_the_log_gives_the_live_state(tmp_path: Path) -> None:
    """``apply`` folded over the log equals what the live writes and deletes built."""
    store = open_store(tmp_path, snapshot_on_close=False)
    cfg = make_bank_config(key_dim=D, index=IndexSpec(kind=IndexKind.HNSW))
    bank = store.create_bank(cfg)
    rng = np.random.default_rng(0)
    for i in range(5):
        keys = clustered(rng, 40, D)
        bank.write(batch(keys, ids=[f"m{i}-{j}" for j in range(40)], seed=i))
        bank.delete([f"m{i}-{j}" for j in range(0, 40, 3)])
    live = bank.state
    store.close()

    replayed = BankState.empty(cfg)
    for _, path in log_files(tmp_path / "banks" / "b"):
        for record in read_log(path).records:
            assert isinstance(record, WriteRecord | DeleteRecord)
            replayed = st.apply(replayed, record, cfg)
    assert replayed.last_seq == live.last_seq
    assert replayed.table.n_live == live.table.n_live == 5 * (40 - 14)
    for mid, slot in live.table.slot_of.items():
        other = replayed.table.slot_of[mid]
        np.testing.assert_array_equal(replayed.table.keys[other], live.table.keys[slot])
        assert replayed.table.seqs[other] == live.table.seqs[slot]


def test_an_index_that_cannot_be_trained_refuses_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path)
    cfg = make_bank_config(key_dim=D, index=IndexSpec(kind=IndexKind.IVF, nlist=4, train_size=60))
    bank = store.create_bank(cfg)
    rng = np.random.default_rng(1)
    bank.write(batch(clustered(rng, 40, D)))
    log_bytes = bank.files.log_size_bytes

    def broken_train(index: object, keys: np.ndarray) -> None:
        raise RuntimeError("training exploded")

    monkeypatch.setattr(ix, "train", broken_train)
    with pytest.raises(FailedPrecondition) as err:
        bank.write(batch(clustered(rng, 30, D)))  # 70 >= 60: this write needs a trained index
    assert err.value.field == "index" and "nothing was written" in str(err.value)
    assert bank.count() == 40 and bank.files.log_size_bytes == log_bytes
    assert not bank.state.trained
    monkeypatch.undo()
    bank.write(batch(clustered(rng, 30, D)))
    assert bank.count() == 70 and bank.state.trained and bank.state.index.ntotal == 70
    store.close()
    reopened = open_store(tmp_path).bank("b")
    assert reopened.count() == 70 and reopened.state.trained


def test_a_failing_index_update_falls_back_to_exact_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path)
    bank = store.create_bank(make_bank_config(key_dim=D))
    rng = np.random.default_rng(2)
    keys = clustered(rng, 20, D)
    bank.write(batch(keys[:10], ids=[f"a{i}" for i in range(10)]))

    def broken_add(index: object, slots: np.ndarray, new_keys: np.ndarray) -> None:
        raise RuntimeError("add exploded")

    monkeypatch.setattr(ix, "add", broken_add)
    result = bank.write(batch(keys[10:], ids=[f"b{i}" for i in range(10)]))
    assert result.seq == 20 and bank.count() == 20  # acknowledged and stored
    assert not bank.state.trained and "add exploded" in bank.index_error
    found = bank.search(keys[10:], 1)  # exact scan over the arrays finds every new memory
    assert [row[0] for row in found.ids] == [f"b{i}" for i in range(10)]
    monkeypatch.undo()
    bank.write(batch(keys[:1], ids=["c"]))  # the next write rebuilds the index
    assert bank.state.trained and bank.state.index.ntotal == 21 and bank.index_error == ""
    store.close()
