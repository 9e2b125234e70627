"""Metadata and metadata filters nested deeper than 32 levels are InvalidArgument, found
without recursion (5,000 levels used to raise RecursionError)."""

from __future__ import annotations

from contextlib import closing
from typing import Any

import numpy as np
import pytest
from store_testlib import Backend, make_bank_config

from memnet.core.json_values import MAX_JSON_DEPTH
from memnet.errors import InvalidArgument
from memnet.store import MemoryBatch

D = 4


def _nested(depth: int, *, arrays: bool = False) -> dict[str, Any]:
    """A JSON object nested ``depth`` levels ({} is 1), built without recursion."""
    value: Any = {}
    for level in range(depth - 1):
        value = [value] if arrays and (depth - level) % 2 else {"a": value}  # outermost: dict
    assert isinstance(value, dict)
    return value


def _write(bank: Any, metadata: dict[str, Any]) -> None:
    keys = np.ones((1, D), np.float32)
    bank.write(MemoryBatch(keys=keys, values=keys, ids=["m"], metadata=[metadata]))


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5000])
@pytest.mark.parametrize("arrays", [False, True])
def test_deep_metadata_is_invalid_argument(backend: Backend, depth: int, arrays: bool) -> None:
    with closing(backend.open()) as store:
        bank = store.create_bank(make_bank_config(key_dim=D, value_dim=D))
        with pytest.raises(InvalidArgument) as caught:
            _write(bank, _nested(depth, arrays=arrays))
        assert caught.value.field == "metadata"
        assert f"deeper than {MAX_JSON_DEPTH} levels" in str(caught.value)
        assert bank.count() == 0
        with pytest.raises(InvalidArgument) as caught:
            bank.search(np.ones((1, D), np.float32), 1, metadata_filter=_nested(depth))
        assert caught.value.field == "metadata_filter"


def test_metadata_at_the_depth_limit_is_stored(backend: Backend) -> None:
    with closing(backend.open()) as store:
        bank = store.create_bank(make_bank_config(key_dim=D, value_dim=D))
        metadata = _nested(MAX_JSON_DEPTH)
        _write(bank, metadata)
        (record,) = bank.get(["m"])
        assert record is not None and record.metadata == metadata


def test_self_referencing_metadata_is_invalid_argument(backend: Backend) -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with closing(backend.open()) as store:
        bank = store.create_bank(make_bank_config(key_dim=D, value_dim=D))
        with pytest.raises(InvalidArgument):
            _write(bank, cyclic)
