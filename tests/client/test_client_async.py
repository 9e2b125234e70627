"""The asyncio client's main paths against the real server (each test runs its own event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import numpy as np
import pytest
from client_support import FAST_RETRY, RunningServer, one_hot_keys

import memnet.errors as domain
from memnet_client import AsyncMemnetClient, RetryPolicy, errors

DIM = 4


def test_async_client_covers_banks_memories_queries_and_models(
    server: RunningServer, bank_name: Callable[[], str]
) -> None:
    name = bank_name()

    async def scenario() -> None:
        async with AsyncMemnetClient(server.target, retry=FAST_RETRY) as client:
            assert "vector" in {m.name for m in await client.list_models()}
            assert (await client.get_model("vector")).input_kind == "vector"
            bank = await client.create_bank(name, model="vector", key_dim=DIM, value_dim=DIM)
            assert bank.name == name
            assert (await client.get_bank(name)).spec.key_dim == DIM
            assert name in {b.name for b in await client.list_banks()}

            keys = one_hot_keys(DIM, DIM)
            ids = [f"m{i}" for i in range(DIM)]
            written = await client.write(
                name,
                [f"memory {i}" for i in range(DIM)],
                keys=keys,
                values=keys,
                ids=ids,
                max_chunk_memories=3,
            )
            assert written.ids == ids and written.requests == 2
            streamed = await client.stream_write(
                name, keys=keys, values=keys, ids=[f"s{i}" for i in range(DIM)]
            )
            assert streamed.written == DIM
            assert await client.count(name) == 2 * DIM
            listed = [m.id async for m in client.list(name, page_size=3)]
            assert listed == ids + [f"s{i}" for i in range(DIM)]
            assert (await client.list_page(name, page_size=2)).next_page_token
            got = await client.get(name, ["m1"], include_vectors=True)
            assert got[0].key is not None
            np.testing.assert_array_equal(got[0].key, keys[1])

            response = await client.query(name, query_vectors=np.eye(DIM)[[3]], k=2, hops=1)
            top = response.results[0].hops[0].memories[0]
            assert top.id in {"m3", "s3"} and top.weight > 0.4
            tailed = await client.query(
                name, query_vectors=np.eye(DIM)[[3]], k=2, hops=1, tail_samples=2 * DIM
            )
            (hop,) = tailed.results[0].hops
            assert 0 < hop.tail_weight < 1e-3  # m3 and s3 hold nearly all the mass
            arrays = await client.query_arrays(
                name, query_vectors=np.eye(DIM)[[3]], k=2, hops=1, tail_samples=2 * DIM
            )
            assert list(arrays.ids[0, 0]) == [m.id for m in hop.memories]
            assert arrays.tail_weights is not None
            assert arrays.tail_weights[0, 0] == pytest.approx(hop.tail_weight)
            assert sum(m.weight for m in hop.memories) + hop.tail_weight == pytest.approx(1.0)
            assert await client.delete(name, ["s0", "s1", "s2", "s3"]) == DIM

            with pytest.raises(errors.NotFound) as missing:
                await client.get_bank("no-such-bank")
            assert isinstance(missing.value, domain.NotFound)
            assert isinstance(missing.value.__cause__, grpc.RpcError)
            with pytest.raises(errors.ValidationError):
                await client.query(name, query_vectors=np.full((1, DIM), np.nan))
            await client.delete_bank(name)
            with pytest.raises(errors.NotFound):
                await client.count(name)

    asyncio.run(scenario())


def test_async_client_retries_then_raises_unavailable() -> None:
    async def scenario() -> None:
        retry = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.02)
        async with AsyncMemnetClient("127.0.0.1:1", retry=retry, timeout_s=3) as client:
            with pytest.raises(errors.Unavailable) as unavailable:
                await client.list_banks()
            assert unavailable.value.code is grpc.StatusCode.UNAVAILABLE

    asyncio.run(scenario())
