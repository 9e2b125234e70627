"""Bounded restart time: snapshots by log age, banks opened in parallel and in the
background, and ``memnet repair`` on the command line."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from store_testlib import as_after_a_kill, make_bank_config, open_store

from memnet.errors import AlreadyExists, FailedPrecondition
from memnet.store import MemoryBatch, MemoryStore, StoreSettings
from memnet.store import bank as bank_module
from memnet.store.repair import repair_bank
from memnet.store.wal import log_files, read_log
from memnet_cli import main as cli_main

D = 8


def _write(store: MemoryStore, name: str, n: int = 10) -> None:
    keys = np.random.default_rng(len(name)).standard_normal((n, D)).astype(np.float32)
    bank = store.create_bank(make_bank_config(name, key_dim=D, value_dim=D))
    bank.write(MemoryBatch(keys=keys, values=keys, ids=[f"{name}-{i}" for i in range(n)]))


def test_an_old_log_is_snapshotted_by_the_store_timer(tmp_path: Path) -> None:
    store = open_store(tmp_path, snapshot_after_log_age_s=0.2, snapshot_on_close=False)
    _write(store, "b")
    bank_dir = tmp_path / "banks" / "b"
    assert not list(bank_dir.glob("snapshot-*"))
    deadline = time.monotonic() + 10
    while store.bank("b").files.log_record_bytes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.bank("b").files.log_record_bytes == 0  # the log was rotated
    assert [p.name for p in bank_dir.glob("snapshot-*")] == [f"snapshot-{10:020d}"]
    store.close()


def test_a_log_of_many_records_is_snapshotted_counting_the_replayed_ones(tmp_path: Path) -> None:
    store = open_store(tmp_path, snapshot_after_log_records=3, snapshot_on_close=False)
    bank = store.create_bank(make_bank_config("b", key_dim=D, value_dim=D))
    keys = np.ones((1, D), np.float32)
    for i in range(2):
        bank.write(MemoryBatch(keys=keys, values=keys, ids=[f"m{i}"]))
    store.close()
    bank_dir = tmp_path / "banks" / "b"
    assert not list(bank_dir.glob("snapshot-*"))
    store = open_store(tmp_path, snapshot_after_log_records=3, snapshot_on_close=False)
    store.bank("b").write(MemoryBatch(keys=keys, values=keys, ids=["m2"]))  # the third record
    assert [p.name for p in bank_dir.glob("snapshot-*")] == [f"snapshot-{3:020d}"]
    store.close()


def test_without_an_age_limit_reached_the_log_is_kept(tmp_path: Path) -> None:
    store = open_store(tmp_path, snapshot_on_close=False)  # default: one hour
    _write(store, "b")
    time.sleep(0.3)
    assert not list((tmp_path / "banks" / "b").glob("snapshot-*"))
    store.close()


def test_banks_open_in_the_background_and_say_so_until_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(tmp_path) as store:
        for name in ("a", "slow", "z"):
            _write(store, name)
    release = threading.Event()
    threads: set[str] = set()
    real_recover = bank_module.recover

    def recover(directory: Path, *args: object) -> object:
        threads.add(threading.current_thread().name)
        if directory.name == "slow":
            release.wait(30)
        return real_recover(directory, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(bank_module, "recover", recover)
    store = MemoryStore(tmp_path, StoreSettings(open_threads=2), open_in_background=True)
    try:
        deadline = time.monotonic() + 10
        while len(store.banks()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [b.name for b in store.banks()] == ["a", "z"]  # served while "slow" replays
        assert store.status().opening == ("slow",) and store.status().serving
        assert not store.wait_until_open(0.05)
        with pytest.raises(FailedPrecondition, match="'slow' is opening") as caught:
            store.bank("slow")
        assert caught.value.field == "bank"
        with pytest.raises(AlreadyExists):
            store.create_bank(make_bank_config("slow", key_dim=D, value_dim=D))
        with pytest.raises(FailedPrecondition):
            store.drop_bank("slow")
        release.set()
        assert store.wait_until_open(30)
        assert store.bank("slow").count() == 10 and store.status().opening == ()
        assert len(threads) == 2 and all(t.startswith("memnet-open") for t in threads)
    finally:
        release.set()
        store.close()


def test_closing_while_banks_open_closes_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(tmp_path) as store:
        for name in ("a", "b", "c"):
            _write(store, name)
    real_recover = bank_module.recover

    def recover(*args: object) -> object:
        time.sleep(0.2)
        return real_recover(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(bank_module, "recover", recover)
    store = MemoryStore(tmp_path, StoreSettings(open_threads=1), open_in_background=True)
    store.close()  # one bank is opening; the others never start
    monkeypatch.undo()
    with open_store(tmp_path) as again:  # every lock was released
        assert [b.count() for b in again.banks()] == [10, 10, 10]


def test_memnet_repair_salvages_a_bank_and_refuses_while_the_store_is_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(tmp_path, snapshot_on_close=False)
    bank = store.create_bank(make_bank_config("b", key_dim=D, value_dim=D))
    for j in range(5):
        keys = np.full((2, D), j, np.float32)
        bank.write(MemoryBatch(keys=keys, values=keys, ids=[f"w{j}-0", f"w{j}-1"]))
    store.close()
    as_after_a_kill(tmp_path / "banks" / "b")
    ((_, log),) = log_files(tmp_path / "banks" / "b")
    starts = read_log(log).starts
    data = bytearray(log.read_bytes())
    data[starts[2] + 40] ^= 0x10  # write 3 of 5 (seq 5-6)
    log.write_bytes(bytes(data))
    args = ["repair", "b", "--data-dir", str(tmp_path)]
    with open_store(tmp_path) as store:
        assert store.recovery_reports()["b"].failed
        assert cli_main(args) == 2  # the server (here: a store) holds the directory
    assert "locked" in capsys.readouterr().err
    assert cli_main([*args, "--dry-run"]) == 1
    assert "dry run" in capsys.readouterr().out
    assert cli_main(args) == 1
    out = capsys.readouterr().out
    assert f"bytes {starts[2]}-{starts[3]}" in out and "seq 5-6" in out
    assert "4 records salvaged" in out and "8 memories" in out
    (aside,) = (tmp_path / "banks" / "b").glob("damaged-*")
    assert (aside / log.name).read_bytes() == bytes(data)
    with open_store(tmp_path) as store:
        bank = store.bank("b")
        assert bank.count() == 8 and bank.get(["w2-0"]) == [None]
    assert cli_main(args) == 0
    assert "no damage found" in capsys.readouterr().out


def test_repair_refuses_a_bank_whose_config_is_unreadable(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        _write(store, "b")
    (tmp_path / "banks" / "b" / "config.json").write_text("{not json")
    with pytest.raises(FailedPrecondition, match=r"config\.json is unreadable"):
        repair_bank(tmp_path, "b")


def test_banks_opening_in_parallel_read_snapshot_arrays_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """numpy parses .npy headers with ast.literal_eval, which CPython 3.11 cannot run in
    two threads at once ("AST constructor recursion depth mismatch" quarantined a bank)."""
    with open_store(tmp_path) as store:  # closing snapshots every bank
        for name in ("a", "b", "c", "d"):
            _write(store, name)
    real_load = np.load
    inside, overlaps, loads = [0], [0], [0]
    guard = threading.Lock()

    def load(*args: object, **kwargs: object) -> object:
        with guard:
            inside[0] += 1
            loads[0] += 1
            overlaps[0] += inside[0] > 1
        time.sleep(0.01)  # long enough for another opening thread to arrive
        try:
            return real_load(*args, **kwargs)  # type: ignore[call-overload]
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(np, "load", load)
    with open_store(tmp_path, open_threads=4) as again:
        assert [b.count() for b in again.banks()] == [10, 10, 10, 10]
    assert loads[0] >= 4 * 3 and overlaps[0] == 0
