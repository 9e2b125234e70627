"""Softmax tail estimates: a bank's search with tail_samples, read by the vector model
(on every backend; the sampled estimate of a large bank on FAISS only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_testlib import Backend, make_bank_config, open_store

from memnet.core.search_options import MetadataFilter, SearchOptions
from memnet.errors import InvalidArgument
from memnet.serving.bank_source import BankMemorySource
from memnet.serving.contract import AttentionMode
from memnet.serving.vector_model import VectorPassThroughModel
from memnet.store import IndexKind, IndexSpec, MemoryBatch, Metric
from memnet.store.interface import MemoryBank
from memnet.store.vectors import NewRows, SlotTable

D = 8


def _fill(bank: MemoryBank, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    keys = rng.standard_normal((n, D)).astype(np.float32)
    values = rng.standard_normal((n, D)).astype(np.float32)
    metadata = [{"g": i % 2} for i in range(n)]
    bank.write(
        MemoryBatch(keys=keys, values=values, ids=[f"m{i}" for i in range(n)], metadata=metadata)
    )
    return keys, values


def _exact(q: np.ndarray, keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax attention over every memory in float64: (M,) weights and the (Dv,) readout."""
    s = keys.astype(np.float64) @ q.astype(np.float64)
    p = np.exp(s - s.max())
    p /= p.sum()
    return p, p @ values.astype(np.float64)


@pytest.mark.parametrize("kind", [IndexKind.FLAT, IndexKind.HNSW])
def test_a_sample_covering_the_bank_gives_exact_attention(
    backend: Backend, kind: IndexKind
) -> None:
    store = backend.open()
    bank = store.create_bank(make_bank_config(key_dim=D, value_dim=D, index=IndexSpec(kind=kind)))
    keys, values = _fill(bank, 500)
    queries = np.random.default_rng(1).standard_normal((3, D)).astype(np.float32)
    source = BankMemorySource(bank)
    out = VectorPassThroughModel().query(queries, source, SearchOptions(k=8, tail_samples=500))
    (hop,) = out.hops
    assert hop.tail_weights is not None
    for row, q in enumerate(queries):
        p, o = _exact(q, keys, values)
        np.testing.assert_allclose(out.readout[row], q + o, rtol=1e-4, atol=1e-5)
        listed = [int(i[1:]) for i in hop.ids[row]]
        np.testing.assert_allclose(hop.weights[row], p[listed], rtol=1e-4)
        assert hop.tail_weights[row] == pytest.approx(1 - p[listed].sum(), abs=1e-5)
        assert 0 < hop.tail_weights[row] < 1
    plain = (
        VectorPassThroughModel().query(queries, BankMemorySource(bank), SearchOptions(k=8)).hops[0]
    )
    assert plain.tail_weights is None
    np.testing.assert_allclose(plain.weights.sum(1), 1, rtol=1e-5)  # renormalised over the K
    store.close()


def test_a_small_sample_estimates_the_tail_mass(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    bank = store.create_bank(make_bank_config(key_dim=D, value_dim=D))
    keys, _ = _fill(bank, 20_000)
    queries = np.random.default_rng(2).standard_normal((4, D)).astype(np.float32) * 0.5
    res = bank.search(queries, 16, tail_samples=2_000)
    assert res.tail_log_mass is not None
    for row, q in enumerate(queries):
        s = keys.astype(np.float64) @ q
        listed = [int(i[1:]) for i in res.ids[row]]
        rest = np.delete(s, listed)
        exact = np.log(np.exp(rest - rest.max()).sum()) + rest.max()
        # relative error of the mass: ~3 % standard deviation with 2,000 samples here
        assert abs(np.exp(res.tail_log_mass[row] - exact) - 1) < 0.25
    store.close()


def test_a_sampled_tail_reads_the_mean_value_kept_through_writes_deletes_and_reopen(
    backend: Backend,
) -> None:
    store = backend.open()
    bank = store.create_bank(make_bank_config(key_dim=D, value_dim=D))
    _, values = _fill(bank, 100)
    q = np.ones((1, D), np.float32)
    first = bank.search(q, 4, tail_samples=10).tail_value
    assert first is not None
    np.testing.assert_allclose(first[0], values.mean(0), rtol=1e-5, atol=1e-6)
    bank.delete([f"m{i}" for i in range(10)])  # after the sum exists: kept up to date
    replaced = np.full((1, D), 7.0, np.float32)
    bank.write(MemoryBatch(keys=replaced, values=replaced, ids=["m50"]))  # an upsert
    live = np.concatenate([values[10:50], values[51:], replaced])
    after = bank.search(q, 4, tail_samples=10).tail_value
    assert after is not None
    np.testing.assert_allclose(after[0], live.mean(0), rtol=1e-5, atol=1e-6)
    store.close()
    store = backend.open()
    reopened = store.bank("b").search(q, 4, tail_samples=10).tail_value
    assert reopened is not None
    np.testing.assert_allclose(reopened[0], live.mean(0), rtol=1e-5, atol=1e-6)
    store.close()


def test_a_filtered_search_estimates_over_the_matching_memories(backend: Backend) -> None:
    store = backend.open()
    bank = store.create_bank(make_bank_config(key_dim=D, value_dim=D))
    keys, values = _fill(bank, 200)
    q = np.random.default_rng(3).standard_normal(D).astype(np.float32)
    source = BankMemorySource(bank)
    options = SearchOptions(k=5, metadata_filter=MetadataFilter.of({"g": 1}), tail_samples=1_000)
    out = VectorPassThroughModel().query(q[None], source, options)
    odd = np.arange(1, 200, 2)
    _, o = _exact(q, keys[odd], values[odd])
    np.testing.assert_allclose(out.readout[0], q + o, rtol=1e-4, atol=1e-5)
    store.close()


def test_tail_edge_cases_and_limits(backend: Backend) -> None:
    store = backend.open()
    bank = store.create_bank(make_bank_config(key_dim=D, value_dim=D, metric=Metric.L2))
    q = np.ones((1, D), np.float32)
    empty = bank.search(q, 3, tail_samples=5)
    assert empty.tail_log_mass is not None and np.isneginf(empty.tail_log_mass).all()
    out = VectorPassThroughModel().query(
        q, BankMemorySource(bank), SearchOptions(k=3, tail_samples=5)
    )
    np.testing.assert_array_equal(out.readout, q)  # nothing to read
    _fill(bank, 3)
    covered = bank.search(q, 3, tail_samples=5)  # the K hold every memory: no tail
    assert covered.tail_log_mass is not None and np.isneginf(covered.tail_log_mass).all()
    with pytest.raises(InvalidArgument) as no_tail:  # hard attention has no softmax tail
        VectorPassThroughModel().query(
            q, BankMemorySource(bank), SearchOptions(k=3, mode=AttentionMode.HARD, tail_samples=5)
        )
    assert no_tail.value.field == "tail_samples"
    for bad in (0, 65_537, True, 2.5):
        with pytest.raises(InvalidArgument) as err:
            bank.search(q, 3, tail_samples=bad)  # type: ignore[arg-type]
        assert err.value.field == "tail_samples"
    store.close()


def test_the_cached_sample_is_redrawn_after_every_change() -> None:
    table = SlotTable(key_dim=D, value_dim=D)
    rng = np.random.default_rng(0)
    keys = rng.standard_normal((50, D)).astype(np.float32)
    rows = NewRows(
        ids=[f"m{i}" for i in range(50)],
        keys=keys,
        values=keys,
        texts=None,
        sources=None,
        metadata=None,
        first_seq=1,
        written_at_ns=0,
    )
    table.append(rows)
    first = table.tail_sample(20, rng)
    assert table.tail_sample(20, rng) is first  # reused while nothing changes
    np.testing.assert_array_equal(first.keys, keys[first.slots])
    dead = np.unique(first.slots)
    table.kill(dead)
    second = table.tail_sample(20, rng)
    assert second is not first and not np.isin(second.slots, dead).any()
    assert table.tail_sample(30, rng).slots.shape == (30,)  # another size: drawn again
