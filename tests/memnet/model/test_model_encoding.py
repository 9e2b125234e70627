"""Position and temporal encoding against hand-computed values; the nil row stays zero."""

from __future__ import annotations

import pytest
import torch

from memnet.model.config import ModelConfig
from memnet.model.encoding import (
    SentenceEncoder,
    TemporalEncoding,
    position_encoding,
    position_terms,
    reference_position_encoding,
)
from memnet.model.memn2n import MemN2N


def test_position_encoding_matches_the_paper_formula_by_hand() -> None:
    # l_kj = (1 - j/J) - (k/d)(1 - 2j/J), J = 3 words, d = 2, padded to T = 4.
    weights = position_encoding(torch.tensor([3]), T=4, D=2)[0]
    expected = torch.tensor([[0.5, 1 / 3], [0.5, 2 / 3], [0.5, 1.0], [0.0, 0.0]])
    torch.testing.assert_close(weights, expected)
    # J = 2: j=1 -> (0.5, 0.5); j=2 -> (k/2) = (0.5, 1.0).
    l2 = position_encoding(torch.tensor([2]), T=2, D=2)[0]
    torch.testing.assert_close(l2, torch.tensor([[0.5, 0.5], [0.5, 1.0]]))


def test_reference_position_encoding_matches_the_authors_formula_by_hand() -> None:
    # l_kj = 1 + 4 (k - (d+1)/2)(j - (J+1)/2) / (d J), J = 4 for every sentence, d = 2:
    # k = 1 -> 1 - (j - 2.5)/4, k = 2 -> 1 + (j - 2.5)/4; a 3-word sentence padded to T = 4.
    weights = reference_position_encoding(torch.tensor([3]), T=4, D=2, J=4)[0]
    expected = torch.tensor([[1.375, 0.625], [1.125, 0.875], [0.875, 1.125], [0.0, 0.0]])
    torch.testing.assert_close(weights, expected)
    # One J for all: a word's weight does not depend on its sentence's length,
    # unlike the paper's form (where J = 2 gives (0.5, 0.5) at j = 1, J = 3 (0.5, 1/3)).
    short = reference_position_encoding(torch.tensor([[2, 4]]), T=4, D=2, J=4)[0]  # (2, 4, 2)
    torch.testing.assert_close(short[0, :2], short[1, :2])
    assert torch.all(short[0, 2:] == 0)
    enc = SentenceEncoder(
        4, 2, position=True, init_std=0.1, position_form="reference", position_length=4
    )
    with torch.no_grad():
        enc.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    # (1.375, 0.625) ⊙ E1 + (1.125, 0.875) ⊙ E2 = (1.375 + 3.375, 1.25 + 3.5)
    torch.testing.assert_close(enc(torch.tensor([[1, 2, 0]])), torch.tensor([[4.75, 4.75]]))


def test_config_without_position_form_loads_the_paper_form() -> None:
    d = ModelConfig(vocab_size=20, answer_size=6).to_dict()
    del d["position_form"], d["position_length"]  # a checkpoint written before the fields
    cfg = ModelConfig.from_dict(d)
    assert (cfg.position_form, cfg.position_length) == ("paper", 12)


def test_sentence_encoder_is_the_position_weighted_bag_of_words() -> None:
    enc = SentenceEncoder(4, 2, position=True, init_std=0.1)
    with torch.no_grad():
        enc.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    m = enc(torch.tensor([[1, 2, 0]]))  # J = 2 (the nil pad does not count)
    # 0.5 ⊙ E1 + (0.5, 1.0) ⊙ E2 = (0.5 + 1.5, 1.0 + 4.0)
    torch.testing.assert_close(m, torch.tensor([[2.0, 5.0]]))
    plain = SentenceEncoder(4, 2, position=False, init_std=0.1)
    with torch.no_grad():
        plain.embedding.weight.copy_(enc.embedding.weight)
    torch.testing.assert_close(plain(torch.tensor([[1, 2, 0]])), torch.tensor([[4.0, 6.0]]))


@pytest.mark.parametrize("form", ["paper", "reference"])
def test_encoder_equals_the_explicit_weighted_sum_in_value_and_gradient(form: str) -> None:
    # The encoder factors l_kj = α_j + β_k γ_j into two weighted bags; it must equal
    # Σ_j l_j ⊙ E[w_j] with l from the formula functions above, and so must its gradient.
    torch.manual_seed(0)
    V, D, T = 30, 6, 7
    enc = SentenceEncoder(V, D, position=True, init_std=0.5, position_form=form, position_length=9)  # type: ignore[arg-type]
    lengths = torch.tensor([[7, 3, 1], [5, 0, 2]])  # (2, 3); a 0-word sentence included
    tokens = torch.randint(1, V, (2, 3, T)) * (torch.arange(T) < lengths.unsqueeze(-1))
    if form == "reference":
        weights = reference_position_encoding(lengths, T, D, J=9)  # (2, 3, T, D)
    else:
        weights = position_encoding(lengths, T, D)
    table = enc.embedding.weight.detach().clone().requires_grad_(True)
    expected = (table[tokens] * weights).sum(-2)  # (2, 3, D)
    got = enc(tokens)
    torch.testing.assert_close(got, expected)
    assert torch.all(got[1, 1] == 0)
    probe = torch.randn(2, 3, D)
    (got * probe).sum().backward()
    (expected * probe).sum().backward()
    assert enc.embedding.weight.grad is not None and table.grad is not None
    torch.testing.assert_close(enc.embedding.weight.grad[1:], table.grad[1:])
    assert torch.all(enc.embedding.weight.grad[0] == 0)  # the nil row gets no gradient
    alpha, gamma, beta = position_terms(lengths.reshape(-1), T, D, form, 9)  # type: ignore[arg-type]
    factored = alpha[..., None] + beta * gamma[..., None]  # (6, T, D)
    torch.testing.assert_close(factored, weights.reshape(-1, T, D))


def test_encoder_of_sentences_without_words_is_zero() -> None:
    enc = SentenceEncoder(5, 3, position=True, init_std=0.1)
    assert torch.all(enc(torch.zeros(2, 4, 0, dtype=torch.long)) == 0)
    assert enc(torch.zeros(2, 4, 0, dtype=torch.long)).shape == (2, 4, 3)
    assert enc(torch.zeros(0, 6, dtype=torch.long)).shape == (0, 3)


def test_temporal_encoding_is_clipped_to_the_last_bucket() -> None:
    t = TemporalEncoding(3, 2, init_std=0.1)
    with torch.no_grad():
        t.table.weight.copy_(torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
    out = t(torch.tensor([0, 1, 2, 7, -1]))
    expected = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [4.0, 5.0], [0.0, 1.0]])
    torch.testing.assert_close(out, expected)


def test_model_adds_the_time_embedding_of_each_memory_rank() -> None:
    model = MemN2N(ModelConfig(vocab_size=5, answer_size=2, dim=3, hops=1, temporal_buckets=4))
    x = torch.zeros(1, 3, 3)
    out = model.add_time(x, torch.tensor([[0, 2, 9]]), slot=0)
    table = model.time_encoders[0].table.weight
    torch.testing.assert_close(out[0], table[[0, 2, 3]])


def test_nil_row_starts_and_stays_zero_after_an_update() -> None:
    model = MemN2N(ModelConfig(vocab_size=6, answer_size=2, dim=4, hops=2))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    story = torch.tensor([[[1, 2, 0], [3, 0, 0]]])
    out = model(torch.tensor([[4, 5]]), story, torch.tensor([[True, True]]))
    out.logits.sum().backward()
    opt.step()
    model.zero_nil_()
    for enc in [*model.memory_encoders, model.question_encoder]:
        assert enc is not None
        assert torch.count_nonzero(enc.embedding.weight[0]) == 0
