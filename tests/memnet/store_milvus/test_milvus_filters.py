"""Metadata filters as Milvus expressions: escaping that Milvus reads back exactly, and
a clear INVALID_ARGUMENT for what an expression cannot say."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from memnet.errors import InvalidArgument
from memnet.store import BankConfig, MemoryBatch
from memnet.store_milvus import expressions as expr

AWKWARD_KEYS = ['quo"te', "back\\slash", "new\nline", "tab\there", "ünï", "'single'", "a b"]
AWKWARD_STRINGS = ['say "hi"', "C:\\path\\", "two\nlines", "é→ü", "'", "", "x\ty", "\\n"]


def test_keys_and_strings_are_escaped() -> None:
    assert expr.string_literal('a"b\\c\nd', field="f") == '"a\\"b\\\\c\\nd"'
    assert expr.metadata_filter({'k"': "v"}) == 'metadata["k\\""] == "v"'
    assert expr.metadata_filter({"b": True, "a": 2}) == (
        'metadata["a"] == 2 or metadata["a"] == 2.0'.join("()") + ' and metadata["b"] == true'
    )
    assert expr.metadata_filter({"x": 1.5}) == 'metadata["x"] == 1.5'
    assert expr.id_in(["a", 'b"']) == 'id in ["a", "b\\""]'


@pytest.mark.parametrize(
    ("flt", "words"),
    [
        ({"k": None}, "null"),
        ({"k": [1, 2]}, "array"),
        ({"k": {"x": 1}}, "object"),
        ({"k": 1 << 70}, "64-bit"),
        ({"k": "bell\x07"}, "control character"),
        ({"key\x00": 1}, "control character"),
    ],
)
def test_untranslatable_filters_are_invalid_argument(flt: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        expr.metadata_filter(flt)
    assert caught.value.field == "metadata_filter" and words in str(caught.value)


def test_escaped_filters_match_exactly_on_milvus(milvus_store: Any) -> None:
    bank = milvus_store.create_bank(BankConfig(name="esc", key_dim=2, value_dim=2))
    n = len(AWKWARD_KEYS) * len(AWKWARD_STRINGS)
    metadata = [{k: s} for k in AWKWARD_KEYS for s in AWKWARD_STRINGS]
    ids = [f"m{i}" for i in range(n)]
    keys = np.ones((n, 2), np.float32)
    bank.write(MemoryBatch(keys=keys, values=keys, ids=ids, metadata=metadata))
    for i, flt in enumerate(metadata):
        res = bank.search(np.ones((1, 2), np.float32), n, metadata_filter=flt)
        assert [mid for mid in res.ids[0] if mid] == [ids[i]], flt
    with pytest.raises(InvalidArgument) as caught:  # refused before anything is asked
        bank.search(np.ones((1, 2), np.float32), 1, metadata_filter={"k": None})
    assert caught.value.field == "metadata_filter"


def test_a_boolean_never_matches_a_number(milvus_store: Any) -> None:
    """Milvus Lite compares true equal to 1: the store re-checks every match exactly."""
    bank = milvus_store.create_bank(BankConfig(name="types", key_dim=2, value_dim=2))
    values: list[Any] = [True, 1, 1.0, False, 0, "1"]
    keys = np.eye(2, dtype=np.float32)[[0] * len(values)]
    ids = [f"v{i}" for i in range(len(values))]
    bank.write(MemoryBatch(keys=keys, values=keys, ids=ids, metadata=[{"k": v} for v in values]))
    q = np.ones((1, 2), np.float32)
    found = {
        repr(v): sorted(m for m in bank.search(q, 10, metadata_filter={"k": v}).ids[0] if m)
        for v in (True, 1, False, 0, "1")
    }
    assert found == {
        "True": ["v0"],
        "1": ["v1", "v2"],  # 1 and 1.0 are equal JSON numbers
        "False": ["v3"],
        "0": ["v4"],
        "'1'": ["v5"],
    }
