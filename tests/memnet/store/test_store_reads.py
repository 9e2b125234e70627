"""The read side a query leans on: content lookups and the bank's readers-writer lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from store_testlib import make_bank_config, open_store

from memnet.store import MemoryBatch
from memnet.store.locks import RWLock
from memnet.store.types import JsonObject

D = 4


def _batch(
    n: int,
    *,
    prefix: str = "m",
    texts: list[str | None] | None = None,
    metadata: list[JsonObject] | None = None,
) -> MemoryBatch:
    keys = np.random.default_rng(n).standard_normal((n, D)).astype(np.float32)
    ids: list[str | None] = [f"{prefix}{i}" for i in range(n)]
    return MemoryBatch(keys=keys, values=keys, ids=ids, texts=texts, metadata=metadata)


def _never_read() -> Iterator[str]:
    raise AssertionError("a bank without text or metadata must not read the ids")
    yield "unreachable"


def test_a_bank_of_vectors_alone_answers_contents_without_reading_the_ids(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    bank = store.create_bank(make_bank_config(key_dim=D, value_dim=D))
    bank.write(_batch(3))
    assert bank.contents(_never_read()) == {}
    bank.write(_batch(1, prefix="t", texts=["hello"]))
    got = bank.contents(["m0", "t0", "t0", "nope"])
    assert {k: v.text for k, v in got.items()} == {"t0": "hello"}
    store.close()


def test_contents_after_reopening_from_a_snapshot(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    plain = store.create_bank(make_bank_config("plain", key_dim=D, value_dim=D))
    plain.write(_batch(3))
    tagged = store.create_bank(make_bank_config("tagged", key_dim=D, value_dim=D))
    tagged.write(_batch(3, metadata=[{}, {"a": 1}, {}]))  # metadata alone counts
    store.close()  # snapshots: the reopened tables get their columns from the files
    store = open_store(tmp_path)
    assert store.bank("plain").contents(_never_read()) == {}
    got = store.bank("tagged").contents(["m0", "m1", "m2", "m1"])
    assert list(got) == ["m1"] and dict(got["m1"].metadata) == {"a": 1}
    store.close()


def test_a_waiting_writer_gets_in_after_the_last_reader_and_holds_new_readers() -> None:
    lock = RWLock()
    events: list[str] = []
    first, second = threading.Event(), threading.Event()

    def reader(name: str, release: threading.Event) -> None:
        with lock.read():
            events.append(f"{name} in")
            release.wait(5)
        events.append(f"{name} out")

    def writer() -> None:
        with lock.write():
            events.append("writer in")

    readers = [
        threading.Thread(target=reader, args=("r1", first)),
        threading.Thread(target=reader, args=("r2", second)),
    ]
    for thread in readers:
        thread.start()
    while events.count("r1 in") + events.count("r2 in") < 2:
        time.sleep(0.01)
    write = threading.Thread(target=writer)
    write.start()
    time.sleep(0.1)
    late = threading.Thread(target=reader, args=("late", threading.Event()))
    late.start()  # arrives while the writer waits: it must wait too
    time.sleep(0.1)
    first.set()
    time.sleep(0.1)
    assert "writer in" not in events  # r2 still reads
    second.set()
    for thread in (*readers, write, late):
        thread.join(5)
    assert events.index("writer in") > events.index("r2 out")
    assert events.index("late in") > events.index("writer in")
