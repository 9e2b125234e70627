"""SearchOptions: every rule once, hashable as a batching key, model rules by ModelInfo."""

from __future__ import annotations

import pytest

from memnet.core.enums import AttentionMode
from memnet.core.search_options import (
    MAX_EF_SEARCH,
    MAX_HOPS,
    MAX_NPROBE,
    MAX_TAIL_SAMPLES,
    MetadataFilter,
    SearchOptions,
)
from memnet.errors import InvalidArgument


def test_equal_options_are_equal_keys_whatever_the_filter_key_order() -> None:
    a = SearchOptions(k=8, metadata_filter=MetadataFilter.of({"a": 1, "b": [1, "x"]}))
    b = SearchOptions(k=8, metadata_filter=MetadataFilter.of({"b": [1, "x"], "a": 1}))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a.filter_dict == {"a": 1, "b": [1, "x"]}
    assert SearchOptions(k=8) != a and SearchOptions(k=9, metadata_filter=a.metadata_filter) != a
    assert SearchOptions(metadata_filter=MetadataFilter.of({})).filter_dict is None


BAD: dict[str, tuple[dict[str, object], str, str]] = {
    "k zero": ({"k": 0}, "k", "k must be at least 1, got 0"),
    "k float": ({"k": 2.0}, "k", "must be an integer"),
    "k bool": ({"k": True}, "k", "must be an integer"),
    "hops zero": ({"hops": 0}, "hops", f"hops must be 1..{MAX_HOPS}, got 0"),
    "hops huge": ({"hops": MAX_HOPS + 1}, "hops", f"1..{MAX_HOPS}"),
    "ef": ({"ef_search": MAX_EF_SEARCH + 1}, "ef_search", f"ef_search must be 1..{MAX_EF_SEARCH}"),
    "nprobe": ({"nprobe": 0}, "nprobe", f"nprobe must be 1..{MAX_NPROBE}, got 0"),
    "tail": ({"tail_samples": MAX_TAIL_SAMPLES + 1}, "tail_samples", f"1..{MAX_TAIL_SAMPLES}"),
    "mode": ({"mode": "dense"}, "attention_mode", "mode must be one of"),
    "filter type": ({"metadata_filter": {"a": 1}}, "metadata_filter", "MetadataFilter"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_rule_names_its_field_and_limit(case: str) -> None:
    fields, field, words = BAD[case]
    with pytest.raises(InvalidArgument) as err:
        SearchOptions(**fields)  # type: ignore[arg-type]
    assert err.value.field == field and words in str(err.value)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"a": float("nan")}, "not valid JSON"),
        ({"a": "\ud800"}, "not valid JSON"),
        ({"a": {1, 2}}, "not valid JSON"),
        ({"a": "x" * 70_000}, "longer than 65536 bytes"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_a_filter_must_be_a_json_object_within_limits(value: object, words: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        MetadataFilter.of(value, field="metadata_filter_json")  # type: ignore[arg-type]
    assert err.value.field == "metadata_filter_json" and words in str(err.value)


def test_with_k_keeps_everything_else() -> None:
    options = SearchOptions(k=4, hops=2, ef_search=100, tail_samples=10)
    assert options.with_k(4) is options
    wider = options.with_k(50)
    assert wider.k == 50 and (wider.hops, wider.ef_search, wider.tail_samples) == (2, 100, 10)


def test_model_rules() -> None:
    modes = (AttentionMode.SPARSE, AttentionMode.HARD)
    SearchOptions(hops=3).for_model(name="m", max_hops=3, modes=modes, estimates_tail=False)
    cases: list[tuple[SearchOptions, bool, str]] = [
        (SearchOptions(hops=4), False, "hops"),
        (SearchOptions(mode=AttentionMode.SOFT), False, "attention_mode"),
        (SearchOptions(tail_samples=5), False, "tail_samples"),
        (SearchOptions(tail_samples=5, mode=AttentionMode.HARD), True, "tail_samples"),
    ]
    for options, tail, field in cases:
        with pytest.raises(InvalidArgument) as err:
            options.for_model(name="m", max_hops=3, modes=modes, estimates_tail=tail)
        assert err.value.field == field
    SearchOptions(tail_samples=5).for_model(name="m", max_hops=3, modes=modes, estimates_tail=True)
