"""Bad input raises a typed error naming the field and limit; nothing stored changes
(on every backend)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from store_testlib import Backend, batch, make_bank_config

from memnet.errors import AlreadyExists, FailedPrecondition, InvalidArgument, MemnetError, NotFound
from memnet.store import MemoryBatch, MemoryStore, Metric, StoreLimits, WriteMode
from memnet.store.interface import BankStore

D = 8
LIMITS = StoreLimits(
    max_batch=50, max_k=20, max_queries=5, max_id_bytes=10, max_text_bytes=30, max_metadata_bytes=40
)


def _k(n: int, d: int = D) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, d)).astype(np.float32)


def _v(n: int) -> np.ndarray:
    return np.zeros((n, 4), np.float32)


@pytest.fixture
def store(backend: Backend) -> BankStore:
    s = backend.open(limits=LIMITS)
    bank = s.create_bank(make_bank_config(key_dim=D, value_dim=4))
    bank.write(MemoryBatch(keys=_k(3), values=_v(3), ids=["x", "y", "z"]))
    return s


NAN = _k(2)
NAN[1, 3] = np.nan
INF = _k(2)
INF[0, 0] = np.inf

BAD_WRITES: dict[str, tuple[Callable[[], MemoryBatch], str, str]] = {
    "key dim": (lambda: MemoryBatch(keys=_k(2, 7), values=_v(2)), "keys", "expected 8"),
    "value dim": (
        lambda: MemoryBatch(keys=_k(2), values=np.zeros((2, 5), np.float32)),
        "values",
        "expected 4",
    ),
    "nan": (lambda: MemoryBatch(keys=NAN, values=_v(2)), "keys", "NaN"),
    "inf value": (
        lambda: MemoryBatch(keys=_k(2), values=np.full((2, 4), np.inf, np.float32)),
        "values",
        "Inf",
    ),
    "empty": (
        lambda: MemoryBatch(keys=np.zeros((0, D), np.float32), values=_v(0)),
        "keys",
        "empty",
    ),
    "1-D": (lambda: MemoryBatch(keys=np.zeros(D, np.float32), values=_v(1)), "keys", "2-D"),
    "too many": (lambda: MemoryBatch(keys=_k(51), values=_v(51)), "keys", "50"),
    "row mismatch": (lambda: MemoryBatch(keys=_k(2), values=_v(3)), "values", "rows"),
    "dup ids": (lambda: MemoryBatch(keys=_k(2), values=_v(2), ids=["a", "a"]), "ids", "repeats"),
    "long id": (lambda: MemoryBatch(keys=_k(1), values=_v(1), ids=["a" * 11]), "ids", "10 bytes"),
    "empty id": (lambda: MemoryBatch(keys=_k(1), values=_v(1), ids=[""]), "ids", "non-empty"),
    "ids length": (lambda: MemoryBatch(keys=_k(2), values=_v(2), ids=["a"]), "ids", "expected 2"),
    "long text": (
        lambda: MemoryBatch(keys=_k(1), values=_v(1), texts=["t" * 31]),
        "texts",
        "30 bytes",
    ),
    "big metadata": (
        lambda: MemoryBatch(keys=_k(1), values=_v(1), metadata=[{"k": "v" * 40}]),
        "metadata",
        "40 bytes",
    ),
    "bad metadata": (
        lambda: MemoryBatch(keys=_k(1), values=_v(1), metadata=[{"k": object()}]),
        "metadata",
        "JSON",
    ),
    "not a dict": (
        lambda: MemoryBatch(keys=_k(1), values=_v(1), metadata=[[1]]),
        "metadata",
        "JSON objects",
    ),  # type: ignore[list-item]
    "source rows": (
        lambda: MemoryBatch(keys=_k(2), values=_v(2), source_vectors=_k(1)),
        "source_vectors",
        "rows",
    ),
}


def _state(store: BankStore) -> tuple[int, int, int]:
    """Count, last seq and (FAISS) the log's size: what a refused call must not change."""
    bank = store.bank("b")
    if not isinstance(store, MemoryStore):
        return bank.count(), bank.last_seq, 0
    assert bank.files.wal is not None  # type: ignore[attr-defined]
    return bank.count(), bank.last_seq, bank.files.wal.size_bytes  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", list(BAD_WRITES))
def test_bad_write_is_rejected_and_changes_nothing(store: BankStore, case: str) -> None:
    make, field, words = BAD_WRITES[case]
    before = _state(store)
    with pytest.raises(InvalidArgument) as err:
        store.bank("b").write(make())
    assert err.value.field == field and words in str(err.value)
    assert _state(store) == before
    store.close()


BAD_SEARCHES: dict[str, tuple[dict[str, Any], str]] = {
    "k zero": ({"k": 0}, "k"),
    "k too big": ({"k": 21}, "k"),
    "k float": ({"k": 2.0}, "k"),
    "query dim": ({"queries": _k(1, 9)}, "queries"),
    "too many queries": ({"queries": _k(6)}, "queries"),
    "nan query": ({"queries": NAN}, "queries"),
    "ef": ({"ef_search": 0}, "ef_search"),
    "nprobe": ({"nprobe": -1}, "nprobe"),
    "filter": ({"metadata_filter": {"k": "v" * 50}}, "metadata_filter"),
}


@pytest.mark.parametrize("case", list(BAD_SEARCHES))
def test_bad_search_names_the_field(store: BankStore, case: str) -> None:
    args: dict[str, Any] = {"queries": _k(1), "k": 3}
    override, field = BAD_SEARCHES[case]
    args.update(override)
    with pytest.raises(InvalidArgument) as err:
        store.bank("b").search(args.pop("queries"), args.pop("k"), **args)  # type: ignore[call-arg]
    assert err.value.field == field
    store.close()


def test_other_typed_errors(store: BankStore, tmp_path: Path) -> None:
    bank: Any = store.bank("b")
    before = _state(store)
    cases: list[tuple[Callable[[], object], type[MemnetError], str]] = [
        (lambda: store.bank("nope"), NotFound, "bank"),
        (lambda: store.drop_bank("nope"), NotFound, "bank"),
        (
            lambda: store.create_bank(make_bank_config(key_dim=D, value_dim=4)),
            AlreadyExists,
            "name",
        ),
        (
            lambda: bank.write(
                MemoryBatch(keys=_k(2), values=_v(2), ids=["new", "x"]), mode=WriteMode.INSERT
            ),
            AlreadyExists,
            "ids",
        ),
        (lambda: bank.gather(["x", "missing", "gone"]), NotFound, "ids"),
        (
            lambda: bank.write(MemoryBatch(keys=_k(1), values=_v(1)), mode="bogus"),
            InvalidArgument,
            "mode",
        ),  # type: ignore[arg-type]
        (lambda: bank.get("x"), InvalidArgument, "ids"),
        (lambda: bank.list(page_size=0), InvalidArgument, "page_size"),
        (lambda: bank.list(page_token="garbage!"), InvalidArgument, "page_token"),
    ]
    if isinstance(store, MemoryStore):  # the FAISS store's data directory is locked
        cases.append((lambda: MemoryStore(tmp_path), FailedPrecondition, "data_dir"))
    for call, kind, field in cases:
        with pytest.raises(kind) as err:
            call()
        assert err.value.field == field, (call, err.value)
    with pytest.raises(NotFound, match="'missing'"):
        bank.gather(["x", "missing", "gone"])
    assert bank.get(["new"]) == [None]  # the INSERT batch was rejected as a whole
    assert _state(store) == before
    store.close()
    with pytest.raises(FailedPrecondition):
        bank.search(_k(1), 1)


def test_cosine_bank_rejects_zero_vectors(backend: Backend) -> None:
    s = backend.open()
    bank = s.create_bank(make_bank_config(key_dim=D, metric=Metric.COSINE))
    with pytest.raises(InvalidArgument, match="zero norm"):
        bank.write(batch(np.zeros((1, D), np.float32)))
    bank.write(batch(_k(2)))
    with pytest.raises(InvalidArgument) as err:
        bank.search(np.zeros((1, D), np.float32), 1)
    assert err.value.field == "queries"
    s.close()
