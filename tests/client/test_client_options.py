"""``SearchParams`` and ``WriteOptions``: checked when built, frozen, hashable, and the same
as the keyword arguments they group (which keep working and override them)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pytest
from client_support import FAST_RETRY, RunningServer, one_hot_keys

from memnet_client import (
    AsyncMemnetClient,
    MemnetClient,
    SearchParams,
    WriteOptions,
    errors,
)
from memnet_client.options import QueryKnobs, SearchKnobs, WriteKnobs, search_params

DIM = 4


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


BAD_SEARCH: dict[str, tuple[dict[str, Any], str]] = {
    "negative k": ({"k": -1}, "k"),
    "float k": ({"k": 1.5}, "k"),
    "bool k": ({"k": True}, "k"),
    "negative hops": ({"hops": -1}, "hops"),
    "unknown attention": ({"attention": "dense"}, "attention"),
    "zero ef_search": ({"ef_search": 0}, "ef_search"),
    "zero nprobe": ({"nprobe": 0}, "nprobe"),
    "zero tail_samples": ({"tail_samples": 0}, "tail_samples"),
    "include_vectors not a bool": ({"include_vectors": "yes"}, "include_vectors"),
    "negative top_answers": ({"top_answers": -1}, "top_answers"),
    "filter not a dict": ({"metadata_filter": ["story"]}, "metadata_filter"),
    "filter not JSON": ({"metadata_filter": {"x": object()}}, "metadata_filter"),
    "filter too big": ({"metadata_filter": {"x": "y" * 70_000}}, "metadata_filter"),
    "filter with NaN": ({"metadata_filter": {"x": float("nan")}}, "metadata_filter"),
    "filter too deep": ({"metadata_filter": _nested(40)}, "metadata_filter"),
    # The protocol's own limits (memnet.core.search_options), the server's rules too.
    "k over the protocol's limit": ({"k": 4097}, "k"),
    "hops over the protocol's limit": ({"hops": 65}, "hops"),
    "ef_search over the limit": ({"ef_search": 65_537}, "ef_search"),
    "nprobe over the limit": ({"nprobe": 65_537}, "nprobe"),
    "tail_samples over the limit": ({"tail_samples": 65_537}, "tail_samples"),
}
BAD_WRITE: dict[str, tuple[dict[str, Any], str]] = {
    "unknown mode": ({"mode": "replace"}, "mode"),
    "tiny chunk_bytes": ({"chunk_bytes": 100}, "chunk_bytes"),
    "zero max_chunk_memories": ({"max_chunk_memories": 0}, "max_chunk_memories"),
    "progress not a bool": ({"progress": 1}, "progress"),
}


@pytest.mark.parametrize("case", sorted(BAD_SEARCH))
def test_search_params_name_the_field_at_fault(case: str) -> None:
    fields, field = BAD_SEARCH[case]
    with pytest.raises(errors.ValidationError) as rejected:
        SearchParams(**fields)
    assert rejected.value.field == field
    with pytest.raises(errors.ValidationError) as again:  # and so do replace and keywords
        SearchParams().replace(**fields)
    assert again.value.field == field


@pytest.mark.parametrize("case", sorted(BAD_SEARCH))
def test_keyword_knobs_are_checked_on_every_call_cached_or_not(case: str) -> None:
    fields, field = BAD_SEARCH[case]
    good = cast(QueryKnobs, {n: 1 for n in fields if n in ("k", "hops", "ef_search", "nprobe")})
    if good:  # an accepted value equal to the bad one (1 == 1.0 == True) is built first
        assert search_params(None, good) is search_params(None, good)  # built once
    for _ in range(2):
        with pytest.raises(errors.ValidationError) as rejected:
            search_params(None, cast(QueryKnobs, fields))
        assert rejected.value.field == field


def test_keyword_knobs_apply_over_params_and_a_filter_is_kept() -> None:
    base = SearchParams(hops=2)
    assert search_params(base, {}) is base
    assert search_params(None, {}) == SearchParams()
    tuned = search_params(base, {"k": 8, "ef_search": 64}, arrays=True)
    assert (tuned.k, tuned.hops, tuned.ef_search) == (8, 2, 64)
    assert search_params(base, {"ef_search": 64, "k": 8}, arrays=True) is tuned
    filtered = search_params(base, {"metadata_filter": {"story": 1}})
    assert filtered.metadata_filter == {"story": 1} and filtered.hops == 2
    with pytest.raises(TypeError, match="include_vectors"):
        search_params(None, {"include_vectors": True}, arrays=True)


@pytest.mark.parametrize("case", sorted(BAD_WRITE))
def test_write_options_name_the_field_at_fault(case: str) -> None:
    fields, field = BAD_WRITE[case]
    with pytest.raises(errors.ValidationError) as rejected:
        WriteOptions(**fields)
    assert rejected.value.field == field


def test_options_are_frozen_hashable_and_own_their_filter() -> None:
    story = {"story": 1, "tags": ["a"]}
    params = SearchParams(k=4, metadata_filter=story)
    story["story"] = 2
    assert params.metadata_filter == {"story": 1, "tags": ["a"]}
    with pytest.raises(TypeError):
        params.metadata_filter["story"] = 3  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.k = 8  # type: ignore[misc]
    same = SearchParams(metadata_filter={"tags": ["a"], "story": 1}, k=4)
    assert params == same and hash(params) == hash(same) and len({params, same}) == 1
    assert params != SearchParams(k=4, metadata_filter={"story": 2})
    assert params.metadata_filter_json == '{"story":1,"tags":["a"]}'
    assert SearchParams().metadata_filter_json == ""
    wider = params.replace(k=8)
    assert (wider.k, params.k, wider.metadata_filter) == (8, 4, params.metadata_filter)
    assert WriteOptions(mode="insert") == WriteOptions(mode="insert")
    assert len({WriteOptions(), WriteOptions(progress=True), WriteOptions()}) == 2
    assert WriteOptions().budget_bytes == 3 * 1024 * 1024
    assert WriteOptions(chunk_bytes=65536).budget_bytes == 65536


def test_the_keyword_forms_name_every_field_of_the_objects() -> None:
    search_fields = {f.name for f in dataclasses.fields(SearchParams)}
    assert QueryKnobs.__optional_keys__ == search_fields
    assert SearchKnobs.__optional_keys__ == search_fields - {"include_vectors", "top_answers"}
    assert WriteKnobs.__optional_keys__ == {f.name for f in dataclasses.fields(WriteOptions)}


@pytest.fixture
def vector_bank(client: MemnetClient, bank_name: Callable[[], str]) -> str:
    name = bank_name()
    client.create_bank(name, model="vector", key_dim=DIM, value_dim=DIM)
    client.write(
        name,
        [f"memory {i}" for i in range(8)],
        keys=one_hot_keys(8, DIM),
        values=one_hot_keys(8, DIM),
        ids=[f"m{i}" for i in range(8)],
        metadata=[{"story": i % 2} for i in range(8)],
    )
    return name


def _attended(response: Any) -> list[list[tuple[str, float]]]:
    return [[(m.id, m.weight) for m in hop.memories] for hop in response.results[0].hops]


def test_params_and_keywords_ask_the_same_query(client: MemnetClient, vector_bank: str) -> None:
    query = np.eye(DIM)[[1]]  # (1, Dk): picks m1 and m5, both story 1
    params = SearchParams(
        k=3, hops=1, metadata_filter={"story": 1}, include_vectors=True, top_answers=0
    )
    by_params = client.query(vector_bank, query_vectors=query, params=params)
    by_keywords = client.query(
        vector_bank,
        query_vectors=query,
        k=3,
        hops=1,
        metadata_filter={"story": 1},
        include_vectors=True,
        top_answers=0,
    )
    assert _attended(by_params) == _attended(by_keywords)
    memories = by_params.results[0].hops[0].memories
    assert len(memories) == 3 and {m.id for m in memories} <= {"m1", "m3", "m5", "m7"}
    assert all(m.key is not None for m in memories)
    # A keyword overrides the field of params for this call only.
    wider = client.query(vector_bank, query_vectors=query, params=params, k=4)
    assert len(wider.results[0].hops[0].memories) == 4
    assert params.k == 3

    arrays = client.query_arrays(
        vector_bank, query_vectors=query, params=params.replace(include_vectors=False)
    )
    assert arrays.ids.shape == (1, 1, 3)
    assert list(arrays.ids[0, 0]) == [m.id for m in memories]
    with pytest.raises(errors.ValidationError) as no_vectors:
        client.query_arrays(vector_bank, query_vectors=query, params=params)
    assert no_vectors.value.field == "include_vectors"
    with pytest.raises(TypeError, match="top_answers"):
        client.query_arrays(vector_bank, query_vectors=query, top_answers=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="kk"):
        client.query(vector_bank, query_vectors=query, kk=3)  # type: ignore[call-arg]
    with pytest.raises(errors.ValidationError) as not_params:
        client.query(vector_bank, query_vectors=query, params={"k": 3})  # type: ignore[arg-type]
    assert not_params.value.field == "params"


def test_write_options_and_keywords_send_the_same_chunks(
    client: MemnetClient, vector_bank: str, capfd: pytest.CaptureFixture[str]
) -> None:
    keys = one_hot_keys(10, DIM)
    ids = [f"w{i}" for i in range(10)]
    options = WriteOptions(max_chunk_memories=3)
    first = client.write(vector_bank, keys=keys, values=keys, ids=ids, options=options)
    assert (first.requests, first.inserted) == (4, 10)  # ceil(10 / 3)
    again = client.write(vector_bank, keys=keys, values=keys, ids=ids, max_chunk_memories=3)
    assert (again.requests, again.replaced) == (4, 10)
    wider = client.write(
        vector_bank, keys=keys, values=keys, ids=ids, options=options, max_chunk_memories=5
    )
    assert wider.requests == 2
    with pytest.raises(errors.AlreadyExists):
        client.write(
            vector_bank, keys=keys, values=keys, ids=ids, options=WriteOptions(mode="insert")
        )
    with pytest.raises(errors.ValidationError) as not_options:
        client.write(vector_bank, keys=keys, values=keys, options={"mode": "insert"})  # type: ignore[arg-type]
    assert not_options.value.field == "options"

    streamed = client.stream_write(
        vector_bank,
        keys=keys,
        values=keys,
        ids=[f"s{i}" for i in range(10)],
        options=WriteOptions(max_chunk_memories=4, progress=True),
    )
    assert (streamed.written, streamed.messages) == (10, 3)
    assert "stream" in capfd.readouterr().err  # the bar went to stderr
    assert client.count(vector_bank) == 8 + 10 + 10


def test_the_async_client_takes_the_same_objects(
    server: RunningServer, bank_name: Callable[[], str]
) -> None:
    name = bank_name()

    async def scenario() -> None:
        async with AsyncMemnetClient(server.target, retry=FAST_RETRY) as client:
            await client.create_bank(name, model="vector", key_dim=DIM, value_dim=DIM)
            keys = one_hot_keys(DIM, DIM)
            written = await client.write(
                name,
                keys=keys,
                values=keys,
                ids=[f"m{i}" for i in range(DIM)],
                options=WriteOptions(max_chunk_memories=2),
            )
            assert written.requests == 2
            params = SearchParams(k=2, hops=1)
            response = await client.query(name, query_vectors=np.eye(DIM)[[2]], params=params)
            assert response.results[0].hops[0].memories[0].id == "m2"
            arrays = await client.query_arrays(
                name, query_vectors=np.eye(DIM)[[2]], params=params, k=1
            )
            assert arrays.ids.shape == (1, 1, 1)

    asyncio.run(scenario())
