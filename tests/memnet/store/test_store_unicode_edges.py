"""Strings Python holds but UTF-8 cannot (lone surrogates), and values too large to echo,
are refused by field before anything is logged; messages never copy a huge value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_testlib import make_bank_config, open_store

from memnet.errors import InvalidArgument, NotFound
from memnet.store import MemoryBatch
from memnet.store.validation import MAX_ECHO_CHARS, shown

SURROGATE = "\ud800"


def _one(**columns: object) -> MemoryBatch:
    ones = np.ones((1, 4), np.float32)
    return MemoryBatch(keys=ones, values=ones, **columns)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("columns", "field"),
    [
        ({"ids": [f"a{SURROGATE}"]}, "ids"),
        ({"texts": [f"t{SURROGATE}"]}, "texts"),
        ({"metadata": [{"k": SURROGATE}]}, "metadata"),
        ({"metadata": [{SURROGATE: 1}]}, "metadata"),
        ({"metadata": [{"k": 10**5000}]}, "metadata"),
    ],
)
def test_a_value_utf8_cannot_hold_is_refused_by_field(
    tmp_path: Path, columns: dict[str, object], field: str
) -> None:
    store = open_store(tmp_path)
    bank = store.create_bank(make_bank_config(key_dim=4, value_dim=4))
    with pytest.raises(InvalidArgument) as caught:
        bank.write(_one(**columns))
    assert caught.value.field == field
    assert bank.count() == 0 and bank.last_seq == 0
    store.close()


def test_messages_quote_at_most_a_prefix_of_a_huge_value(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with pytest.raises(NotFound) as caught:
        store.bank("x" * (5 << 20))
    assert len(str(caught.value)) < 2 * MAX_ECHO_CHARS and "5,242,880 characters" in str(
        caught.value
    )
    assert shown("short") == "'short'"
    assert shown(10**5000).startswith("<int")  # repr itself would raise
    assert len(shown(list(range(10_000)))) < 2 * MAX_ECHO_CHARS
    store.close()
