"""The pass-through vector model."""

from __future__ import annotations

import numpy as np
import pytest
from model_support import ArraySource

from memnet.core.search_options import SearchOptions
from memnet.errors import FailedPrecondition, InvalidArgument
from memnet.serving.contract import AttentionMode, InputKind
from memnet.serving.vector_model import VectorPassThroughModel


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
