"""The pass-through vector model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from model_support import ArraySource

from memnet.core.search_options import SearchOptions
from memnet.errors import FailedPrecondition, InvalidArgument
from memnet.serving.contract import AttentionMode, InputKind
from memnet.serving.vector_model import VectorPassThroughModel, softmax
from memnet.store.types import SearchResult


def _source(Dv: int = 4) -> ArraySource:
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(6, 4)).astype(np.float32)
    values = rng.normal(size=(6, Dv)).astype(np.float32)
    return ArraySource([f"v{i}" for i in range(6)], keys, values)


def test_vector_model_attends_with_the_bank_scores() -> None:
    model = VectorPassThroughModel()
    src = _source()
    u = np.ones((1, 4), np.float32)
    out = model.query(u, src, SearchOptions(k=6, mode=AttentionMode.SOFT))
    s = (u @ src.keys.T)[0]
    p = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    np.testing.assert_allclose(out.readout[0], u[0] + p @ src.values, rtol=1e-5)
    assert out.answer_probs is None
    hard = model.query(u, src, SearchOptions(k=3, mode=AttentionMode.HARD))
    assert hard.hops[0].weights[0].tolist() == [1.0, 0.0, 0.0]
    two = model.query(u, src, SearchOptions(k=3, hops=2))
    assert len(two.hops) == 2


def test_vector_model_needs_equal_dims_for_several_hops() -> None:
    model = VectorPassThroughModel()
    src = _source(Dv=3)
    one = model.query(np.ones((2, 4), np.float32), src, SearchOptions(k=2))
    assert one.readout.shape == (2, 3)
    with pytest.raises(InvalidArgument) as e:
        model.query(np.ones((1, 4), np.float32), src, SearchOptions(k=2, hops=2))
    assert e.value.field == "hops"
    with pytest.raises(FailedPrecondition):
        model.encode_memories(["text"])
    assert model.info.input_kind is InputKind.VECTOR and model.info.key_dim is None


def _softmax64(
    scores: np.ndarray, valid: np.ndarray, tail: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The float64 reference: exp(s_i) / (Σ_valid exp(s) + exp(tail)), 0 where invalid."""
    s = np.where(valid, scores.astype(np.float64), -np.inf)
    t = np.full(len(s), -np.inf) if tail is None else tail.astype(np.float64)
    shift = np.maximum(s.max(axis=1), t)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    e, e_tail = np.exp(s - shift[:, None]), np.exp(t - shift)
    z = e.sum(axis=1) + e_tail
    z = np.where(z > 0, z, 1.0)
    return e / z[:, None], e_tail / z


def test_float32_softmax_stays_within_float32_rounding_of_float64() -> None:
    rng = np.random.default_rng(5)
    B, K = 512, 32
    scores = (rng.normal(size=(B, K)) * rng.uniform(0.1, 40.0, size=(B, 1))).astype(np.float32)
    scores = -np.sort(-scores, axis=1)  # best first, as a search returns them
    valid = np.ones((B, K), bool)
    valid[::7, 20:] = False  # rows with fewer than K candidates
    valid[3] = False  # a row with none
    tail = (scores.max(axis=1) + rng.normal(size=B) * 5).astype(np.float64)
    tail[::2] = -np.inf  # half the rows without a tail
    for t in (None, tail):
        weights, tail_weights = softmax(scores, valid, t)
        ref, ref_tail = _softmax64(scores, valid, t)
        assert weights.dtype == np.float32
        # The K + 1 terms are exp(<= 0) in float32: (K + 1)·2⁻²⁴ ≈ 2e-6 of the row's mass.
        assert np.abs(weights - ref).max() <= 2e-6
        assert np.all(weights[~valid] == 0.0) and np.all(weights[3] == 0.0)
        if t is None:
            assert tail_weights is None
        else:
            assert tail_weights is not None
            assert np.abs(tail_weights - ref_tail).max() <= 2e-6


def test_vector_model_reads_values_and_exact_scores_without_keys() -> None:
    asked: list[bool] = []

    class Spy(ArraySource):
        def retrieve(
            self, queries: np.ndarray, options: SearchOptions, *, with_keys: bool = True
        ) -> SearchResult:
            asked.append(with_keys)
            return replace(super().retrieve(queries, options), keys=None)

    src = _source()
    spy = Spy(src.ids, src.keys, src.values)
    u = np.ones((2, 4), np.float32)
    out = VectorPassThroughModel().query(u, spy, SearchOptions(k=6, hops=2))
    assert asked == [False, False]
    full = VectorPassThroughModel().query(u, src, SearchOptions(k=6, hops=2))
    np.testing.assert_array_equal(out.readout, full.readout)
