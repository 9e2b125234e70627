"""Shapes, masks, sparse = full for k >= M, hard = argmax, scorings and heads."""

from __future__ import annotations

import math

import pytest
import torch

from memnet.errors import InvalidArgument
from memnet.model.attention import Attention, masked_softmax
from memnet.model.config import ModelConfig
from memnet.model.heads import RelationalHead
from memnet.model.memn2n import MemN2N
from memnet.serving.contract import AttentionMode


def _batch(B: int = 3, M: int = 7, T: int = 5, V: int = 20) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    story = torch.randint(1, V, (B, M, T), generator=g)
    lengths = torch.tensor([M, 4, 1])[:B]
    mask = torch.arange(M).unsqueeze(0) < lengths.unsqueeze(1)
    story = story * mask.unsqueeze(-1)
    return torch.randint(1, V, (B, 4), generator=g), story, mask


@pytest.mark.parametrize("tying", ["adjacent", "layerwise", "kv"])
def test_shapes_and_masks(tying: str) -> None:
    cfg = ModelConfig(vocab_size=20, answer_size=6, dim=8, hops=3, tying=tying)  # type: ignore[arg-type]
    q, story, mask = _batch()
    out = MemN2N(cfg)(q, story, mask)
    assert out.logits.shape == (3, 6)
    assert out.readout.shape == (3, 8)
    assert len(out.hops) == 3
    for hop in out.hops:
        assert hop.scores.shape == hop.weights.shape == (3, 7)
        assert torch.all(hop.weights[~mask] == 0)
        assert torch.all(torch.isneginf(hop.scores[~mask]))
        torch.testing.assert_close(hop.weights.sum(-1), torch.ones(3))


@pytest.mark.parametrize("scoring", ["dot", "scaled_dot", "cosine"])
@pytest.mark.parametrize("heads", [1, 3])
def test_sparse_equals_full_when_k_covers_the_memory(scoring: str, heads: int) -> None:
    cfg = ModelConfig(vocab_size=20, answer_size=6, dim=8, scoring=scoring, heads=heads)  # type: ignore[arg-type]
    model = MemN2N(cfg).eval()
    q, story, mask = _batch()
    full = model(q, story, mask)
    for k in (7, 50):
        sparse = model(q, story, mask, k=k, mode=AttentionMode.SPARSE)
        torch.testing.assert_close(sparse.logits, full.logits)
        for a, b in zip(sparse.hops, full.hops, strict=True):
            torch.testing.assert_close(a.weights, b.weights)
    # With k < M the attention is restricted to k memories per row.
    top2 = model(q, story, mask, k=2)
    assert all(int((h.weights[0] > 0).sum()) <= 2 for h in top2.hops)


def test_hard_attention_puts_all_weight_on_the_argmax() -> None:
    model = MemN2N(ModelConfig(vocab_size=20, answer_size=6, dim=8)).eval()
    q, story, mask = _batch()
    soft = model(q, story, mask)
    hard = model(q, story, mask, mode=AttentionMode.HARD)
    h0_soft, h0_hard = soft.hops[0], hard.hops[0]
    best = h0_soft.weights.argmax(-1)
    expected = torch.nn.functional.one_hot(best, 7).float()
    torch.testing.assert_close(h0_hard.weights, expected)
    assert torch.equal(h0_hard.scores.argmax(-1), best)


def test_scoring_functions() -> None:
    u = torch.tensor([[1.0, 2.0, 2.0]])
    keys = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 3.0, 4.0]]])
    for scoring, expected in [
        ("dot", [1.0, 14.0]),
        ("scaled_dot", [1 / math.sqrt(3), 14 / math.sqrt(3)]),
        ("cosine", [10 * 1 / 3, 10 * 14 / 15]),  # learned temperature starts at 10
    ]:
        att = Attention(ModelConfig(vocab_size=2, answer_size=2, dim=3, scoring=scoring))  # type: ignore[arg-type]
        torch.testing.assert_close(att.head_scores(u, keys)[0, 0], torch.tensor(expected))


def test_heads_have_their_own_projections_and_average_their_weights() -> None:
    att = Attention(ModelConfig(vocab_size=2, answer_size=2, dim=4, heads=2))
    assert att.query_proj is not None and att.query_proj.shape == (2, 4, 4)
    with torch.no_grad():
        att.query_proj[1] = -att.query_proj[1]
    u, keys, mask = torch.randn(2, 4), torch.randn(2, 5, 4), torch.ones(2, 5, dtype=torch.bool)
    _, weights = att(u, keys, mask)
    per_head = masked_softmax(att.head_scores(u, keys), mask.unsqueeze(1))  # (B, 2, K)
    torch.testing.assert_close(weights, per_head.mean(1))
    assert not torch.allclose(per_head[:, 0], per_head[:, 1])


def test_linear_start_drops_the_softmax() -> None:
    att = Attention(ModelConfig(vocab_size=2, answer_size=2, dim=3))
    u, keys = torch.randn(1, 3), torch.randn(1, 4, 3)
    mask = torch.tensor([[True, True, True, False]])
    scores, weights = att(u, keys, mask, linear=True)
    torch.testing.assert_close(weights[0, :3], scores[0, :3])
    assert weights[0, 3] == 0


def test_a_row_without_memories_reads_nothing() -> None:
    model = MemN2N(ModelConfig(vocab_size=20, answer_size=6, dim=8)).eval()
    q, story, _ = _batch()
    out = model(q, story, torch.zeros(3, 7, dtype=torch.bool))
    assert all(torch.all(h.weights == 0) for h in out.hops)
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("tying", ["adjacent", "layerwise", "kv"])
def test_half_relu_rectifies_the_second_half_of_each_update(tying: str) -> None:
    linear = MemN2N(ModelConfig(vocab_size=20, answer_size=6, dim=8, tying=tying))  # type: ignore[arg-type]
    cfg = ModelConfig(vocab_size=20, answer_size=6, dim=8, tying=tying, activation="half_relu")  # type: ignore[arg-type]
    rectified = MemN2N(cfg)
    rectified.load_state_dict(linear.state_dict())
    u, o = torch.randn(5, 8), torch.randn(5, 8)
    plain, got = linear.update(u, o, 0), rectified.update(u, o, 0)
    assert (plain[:, 4:] < 0).any()  # the check below would pass trivially otherwise
    torch.testing.assert_close(got[:, :4], plain[:, :4])
    torch.testing.assert_close(got[:, 4:], plain[:, 4:].clamp(min=0))


@pytest.mark.parametrize("tying", ["adjacent", "layerwise", "kv"])
def test_gate_mixes_readout_and_state_by_a_sigmoid_of_the_state(tying: str) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=20, answer_size=6, dim=8, hops=2, tying=tying, gate=True)  # type: ignore[arg-type]
    model = MemN2N(cfg)
    assert len(model.hop_gates) == 2
    u, o = torch.randn(5, 8), torch.randn(5, 8)
    gate = model.hop_gates[1]
    assert isinstance(gate, torch.nn.Linear)
    with torch.no_grad():
        gate.bias.fill_(0.3)  # not the zero initialisation, so b enters the check
        g = torch.sigmoid(u @ gate.weight.T + gate.bias)  # (5, 8)
        carried = u @ model.hop_updates[0].weight.T if tying == "layerwise" else u
        mixed = g * o + (1 - g) * carried
        expected = mixed @ model.hop_updates[1].weight.T if tying == "kv" else mixed
        got = model.update(u, o, 1)
    torch.testing.assert_close(got, expected)
    # The same weights without gates give the plain sum u + o (or H u + o), not this.
    ungated = MemN2N(ModelConfig(vocab_size=20, answer_size=6, dim=8, hops=2, tying=tying))  # type: ignore[arg-type]
    missing, unexpected = ungated.load_state_dict(model.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("hop_gates.") for k in unexpected)
    assert len(ungated.hop_gates) == 0
    with torch.no_grad():
        assert not torch.allclose(got, ungated.update(u, o, 1))


def test_hop_transform_gives_adjacent_tying_a_per_hop_linear_update() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=20, answer_size=6, dim=8, hops=3, tying="adjacent")
    plain = MemN2N(cfg)
    model = MemN2N(ModelConfig(**{**cfg.to_dict(), "hop_transform": True}))
    assert len(plain.hop_updates) == 0 and len(model.hop_updates) == 3
    assert len(model.memory_encoders) == 4  # still one key space per hop
    u, o = torch.randn(5, 8), torch.randn(5, 8)
    for h in range(3):
        R = model.hop_updates[h].weight  # (D, D)
        with torch.no_grad():
            torch.testing.assert_close(model.update(u, o, h), (u + o) @ R.T)
    with torch.no_grad():
        torch.testing.assert_close(plain.update(u, o, 0), u + o)
    # Hop 2's transform acts on the forward pass: changing it changes the answer.
    q, story, mask = _batch()
    before = model(q, story, mask).logits
    with torch.no_grad():
        model.hop_updates[2].weight.mul_(-1.0)
    assert not torch.allclose(before, model(q, story, mask).logits)


def test_identity_transform_init_starts_adjacent_hop_transform_at_the_papers_update() -> None:
    base = ModelConfig(vocab_size=20, answer_size=6, dim=8, hops=3, tying="adjacent")
    torch.manual_seed(0)
    plain = MemN2N(base)
    torch.manual_seed(0)
    model = MemN2N(ModelConfig(**{**base.to_dict(), "hop_transform": True,
                                  "transform_init": "identity"}))  # fmt: skip
    for lin in model.hop_updates:
        assert torch.equal(lin.weight, torch.eye(8))
    # Same seed, same other weights: at initialisation it is the paper's adjacent model.
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(k.startswith("hop_updates.") for k in unexpected)
    q, story, mask = _batch()
    with torch.no_grad():
        torch.testing.assert_close(model(q, story, mask).logits, plain(q, story, mask).logits)


@pytest.mark.parametrize("tying", ["layerwise", "kv"])
def test_identity_transform_init_changes_only_the_update_matrices(tying: str) -> None:
    cfg = ModelConfig(vocab_size=20, answer_size=6, dim=8, hops=2, tying=tying)  # type: ignore[arg-type]
    torch.manual_seed(0)
    normal = MemN2N(cfg).state_dict()
    torch.manual_seed(0)
    identity = MemN2N(ModelConfig(**{**cfg.to_dict(), "transform_init": "identity"}))
    changed = [k for k, v in identity.state_dict().items() if not torch.equal(v, normal[k])]
    assert changed and all(k.startswith("hop_updates.") for k in changed)
    u, o = torch.randn(5, 8), torch.randn(5, 8)
    with torch.no_grad():  # R_h = I (kv) or H = I (layerwise): u + o
        torch.testing.assert_close(identity.update(u, o, 1), u + o)


@pytest.mark.parametrize(
    "options",
    [{"transform_init": "zeros"}, {"transform_init": "identity", "tying": "adjacent"}],
)
def test_bad_transform_init_is_refused_by_field(options: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument) as info:  # unknown, or no matrix to initialise
        ModelConfig(vocab_size=20, answer_size=6, **options)  # type: ignore[arg-type]
    assert info.value.field == "transform_init"


@pytest.mark.parametrize("tying", ["layerwise", "kv"])
def test_hop_transform_is_refused_outside_adjacent_tying(tying: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        ModelConfig(vocab_size=20, answer_size=6, tying=tying, hop_transform=True)  # type: ignore[arg-type]
    assert info.value.field == "hop_transform"


def test_config_without_the_hop_transform_fields_loads_with_their_defaults() -> None:
    d = ModelConfig(vocab_size=20, answer_size=6, tying="adjacent").to_dict()
    del d["hop_transform"], d["transform_init"]  # a checkpoint written before the fields
    loaded = ModelConfig.from_dict(d)
    assert (loaded.hop_transform, loaded.transform_init) == (False, "normal")


def test_config_without_a_gate_field_loads_ungated() -> None:
    d = ModelConfig(vocab_size=20, answer_size=6).to_dict()
    del d["gate"]  # a checkpoint written before the field existed
    assert ModelConfig.from_dict(d).gate is False


def test_relational_head_scores_every_ordered_pair_of_readouts() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=10,
        answer_size=4,
        dim=6,
        hops=3,
        head="relational",
        relation_dim=5,
        relation_layers=2,
    )
    head = RelationalHead(cfg).eval()
    readouts, question = torch.randn(2, 3, 6), torch.randn(2, 6)  # (B, H, D), (B, D)
    first = torch.cat([head.first_i.weight, head.first_j.weight, head.first_q.weight], dim=1)
    expected = torch.zeros(2, 4)
    for i in range(3):
        for j in range(3):  # g([o_i; o_j; u_0]) with the first layer as one (R, 3D) matrix
            pair = torch.cat([readouts[:, i], readouts[:, j], question], dim=-1)  # (B, 3D)
            expected += head.out(head.rest(pair @ first.T + head.first_i.bias))
    torch.testing.assert_close(head(readouts, question), expected)
    model = MemN2N(cfg)
    story, mask = torch.randint(1, 10, (2, 4, 3)), torch.ones(2, 4, dtype=torch.bool)
    out = model(torch.randint(1, 10, (2, 3)), story, mask)
    out.logits.sum().backward()
    assert model.relational is not None and model.relational.first_j.weight.grad is not None
    assert all(h.readout.shape == (2, 6) for h in out.hops)
