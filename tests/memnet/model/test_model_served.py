"""The served forms: a story written into a bank answers as the training-time forward does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_support import ArraySource, tiny_checkpoint

from memnet.core.search_options import MetadataFilter, SearchOptions
from memnet.data.vocab import tokenize
from memnet.errors import FailedPrecondition, InvalidArgument
from memnet.serving.bank_source import BankMemorySource
from memnet.serving.contract import AttentionMode, InputKind
from memnet.serving.text_model import TextMemoryModel, as_served
from memnet.store.types import Metric, SearchResult

STORY = [
    "Mary moved to the bathroom.",
    "John went to the hallway.",
    "Sandra journeyed to the garden.",
    "Mary went back to the kitchen.",
    "John moved to the office.",
]
QUESTION = "Where is Mary?"


def _story_tensors(served: TextMemoryModel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    vocab = served.checkpoint.vocab
    rows = [vocab.encode(tokenize(s))[0] for s in reversed(STORY)]  # slot 0 = newest
    T = max(map(len, rows))
    story = torch.tensor([[r + [0] * (T - len(r)) for r in rows]])  # (1, M, T)
    q = torch.tensor([vocab.encode(tokenize(QUESTION))[0]])
    return q, story, torch.ones(1, len(rows), dtype=torch.bool)


def _bank(served: TextMemoryModel, *, cosine: bool = False) -> ArraySource:
    enc = served.encode_memories(STORY)
    return ArraySource([f"m{i}" for i in range(len(STORY))], enc.keys, enc.values, cosine=cosine)


@pytest.mark.parametrize(
    ("tying", "scoring", "heads", "head", "gate"),
    [
        ("layerwise", "dot", 1, "linear", False),
        ("kv", "scaled_dot", 1, "linear", False),
        ("kv", "cosine", 2, "linear", False),
        ("kv", "dot", 1, "relational", False),
        ("kv", "dot", 1, "linear", True),
    ],
)
def test_story_in_a_bank_answers_like_the_training_forward(
    tying: str, scoring: str, heads: int, head: str, gate: bool
) -> None:
    served = as_served(
        tiny_checkpoint(tying=tying, scoring=scoring, heads=heads, head=head, gate=gate)
    )
    q, story, mask = _story_tensors(served)
    with torch.no_grad():
        ref = served.model(q, story, mask)
    u0 = served.encode_queries([QUESTION]).vectors
    bank = _bank(served, cosine=scoring == "cosine")
    for mode, k in [(AttentionMode.SPARSE, 5), (AttentionMode.SPARSE, 64), (AttentionMode.SOFT, 1)]:
        out = served.query(u0, bank, SearchOptions(k=k, mode=mode))
        assert out.answer_probs is not None
        np.testing.assert_allclose(
            out.answer_probs, torch.softmax(ref.logits, -1).numpy(), rtol=1e-4, atol=1e-6
        )
        np.testing.assert_allclose(out.readout, ref.readout.numpy(), rtol=1e-4, atol=1e-5)
        for hop, ref_hop in zip(out.hops, ref.hops, strict=True):
            by_id = {i: w for i, w in zip(hop.ids[0], hop.weights[0], strict=True) if i}
            # memory m_i (oldest first) sits in story slot M-1-i.
            expected = {f"m{i}": float(ref_hop.weights[0, len(STORY) - 1 - i]) for i in range(5)}
            assert by_id.keys() == expected.keys()
            for mid, w in expected.items():
                assert by_id[mid] == pytest.approx(w, rel=1e-4, abs=1e-6)
    assert bank.calls[-1] == len(STORY)  # SOFT asks for the whole bank


def test_query_output_shapes_padding_and_hard_mode() -> None:
    served = as_served(tiny_checkpoint())
    u0 = served.encode_queries([QUESTION, "Where is John?"]).vectors
    out = served.query(u0, _bank(served), SearchOptions(k=8, mode=AttentionMode.SPARSE, hops=2))
    assert len(out.hops) == 2 and out.readout.shape == (2, 16)
    assert out.answer_probs is not None and out.answer_probs.shape == (2, 6)
    hop = out.hops[0]
    assert hop.scores.shape == hop.weights.shape == (2, 8) and hop.weights.dtype == np.float32
    assert hop.ids[0][5:] == ["", "", ""] and np.all(hop.weights[:, 5:] == 0)
    np.testing.assert_allclose(hop.weights.sum(-1), 1.0, rtol=1e-5)
    hard = served.query(u0, _bank(served), SearchOptions(k=3, mode=AttentionMode.HARD))
    for h in hard.hops:
        assert np.all(h.weights.sum(-1) == 1.0) and np.all(h.weights.max(-1) == 1.0)
        np.testing.assert_array_equal(h.weights.argmax(-1), h.scores.argmax(-1))


def test_queries_run_on_numpy_and_leave_weights_and_bank_alone() -> None:
    served = as_served(tiny_checkpoint())
    bank = _bank(served)
    keys_before = bank.keys.copy()
    weights_before = {k: v.clone() for k, v in served.model.state_dict().items()}
    seen: list[tuple[type, np.dtype]] = []

    class Spy(ArraySource):
        def retrieve(self, queries: np.ndarray, options: SearchOptions) -> SearchResult:
            seen.append((type(queries), queries.dtype))
            return super().retrieve(queries, options)

    spy = Spy(bank.ids, bank.keys, bank.values)
    out = served.query(served.encode_queries([QUESTION]).vectors, spy, SearchOptions(k=5))
    assert seen == [(np.ndarray, np.dtype(np.float32))] * 3  # one search per hop, u_h as numpy
    assert all(p.grad is None for p in served.model.parameters())
    for name, value in served.model.state_dict().items():
        assert torch.equal(value, weights_before[name]), name
    np.testing.assert_array_equal(bank.keys, keys_before)
    assert isinstance(out.readout, np.ndarray) and out.readout.dtype == np.float32
    assert all(isinstance(h.weights, np.ndarray) for h in out.hops)
    # The model holds no memory: its state is the same whatever bank it reads.
    assert all("memory" not in name or "encoders" in name for name in served.model.state_dict())


def test_unknown_words_are_reported_and_empty_text_is_invalid() -> None:
    served = as_served(tiny_checkpoint())
    enc = served.encode_queries(["Where is Zorblax?", "where is mary"])
    assert enc.unknown_words == [["zorblax"], []]
    mem = served.encode_memories(["Zorblax flew to the moon."])
    assert mem.keys.shape == (1, 16) and mem.unknown_words == [["zorblax", "flew", "moon"]]
    for bad in ([""], ["  ?! "], []):
        with pytest.raises(InvalidArgument) as e:
            served.encode_memories(bad)
        assert e.value.field == "texts"
    with pytest.raises(InvalidArgument) as e2:
        served.encode_queries([""])
    assert e2.value.field == "queries"


def test_bad_query_arguments_name_their_field() -> None:
    served = as_served(tiny_checkpoint())
    bank = _bank(served)
    u0 = served.encode_queries([QUESTION]).vectors
    for kwargs, field in [({"k": 0}, "k"), ({"k": 3, "hops": 4}, "hops")]:
        with pytest.raises(InvalidArgument) as e:
            served.query(u0, bank, SearchOptions(**kwargs))  # type: ignore[arg-type]
        assert e.value.field == field
    with pytest.raises(InvalidArgument) as e3:
        served.query(np.zeros((1, 5), np.float32), bank, SearchOptions(k=3))
    assert e3.value.field == "queries"


def test_adjacent_tying_over_several_hops_is_not_servable() -> None:
    with pytest.raises(FailedPrecondition) as e:
        as_served(tiny_checkpoint(tying="adjacent", hops=3))
    assert e.value.field == "model"
    assert as_served(tiny_checkpoint(tying="adjacent", hops=1)).info.max_hops == 1


def test_model_info() -> None:
    info = as_served(tiny_checkpoint(tying="kv", scoring="cosine", heads=2)).info
    assert info.input_kind is InputKind.TEXT
    assert (info.key_dim, info.value_dim, info.default_hops, info.max_hops) == (16, 16, 3, 3)
    assert info.metric is Metric.COSINE and info.scoring == "cosine" and info.heads == 2
    assert info.temporal_buckets == 10 and len(info.answer_vocab) == 6
    assert "recency rank" in info.description


def test_bank_memory_source_forwards_search_options() -> None:
    calls: list[tuple[SearchOptions, bool]] = []
    result = SearchResult(
        [[""]], np.zeros((1, 1), np.float32), np.zeros((1, 1), bool), np.full((1, 1), -1, np.int64)
    )

    class FakeBank:
        def search(
            self,
            queries: np.ndarray,
            k: SearchOptions,
            *,
            with_vectors: bool = False,
            with_keys: bool = True,
        ) -> SearchResult:
            calls.append((k, with_vectors))
            return result

        def count(self) -> int:
            return 7

    source = BankMemorySource(FakeBank())
    options = SearchOptions(
        k=5, ef_search=128, nprobe=4, metadata_filter=MetadataFilter.of({"a": 1}), tail_samples=64
    )
    assert source.size() == 7
    assert source.retrieve(np.zeros((1, 3), np.float32), options) is result
    assert calls == [(options, True)]  # the same options, and vectors for attention
