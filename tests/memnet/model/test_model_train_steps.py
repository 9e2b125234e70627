"""The training step's pieces: per-matrix gradient clipping and random-noise time indices."""

from __future__ import annotations

import math

import numpy as np
import torch

from memnet.train.batches import random_time
from memnet.train.trainer import clip_per_matrix


def test_clip_per_matrix_scales_each_gradient_as_clip_grad_norm_on_its_own() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 3, bias=False))
    params = list(model.parameters())
    for p, scale in zip(params, [100.0, 0.01, 30.0], strict=True):
        p.grad = torch.randn_like(p) * scale
    expected = []
    for p in params:
        q = p.detach().clone().requires_grad_(True)
        q.grad = p.grad.clone() if p.grad is not None else None
        torch.nn.utils.clip_grad_norm_([q], 40.0)
        expected.append(q.grad)
    before = [float(p.grad.norm()) for p in params if p.grad is not None]
    assert before[0] > 40 and before[1] < 40 and before[2] > 40  # both cases occur
    clip_per_matrix(model, 40.0)
    for p, e in zip(params, expected, strict=True):
        assert p.grad is not None and e is not None
        torch.testing.assert_close(p.grad, e, rtol=0, atol=0)
    norms = [float(p.grad.norm()) for p in params if p.grad is not None]
    assert math.isclose(norms[0], 40.0, rel_tol=1e-5) and math.isclose(norms[2], 40.0, rel_tol=1e-5)
    assert math.isclose(norms[1], before[1], rel_tol=1e-6)  # a small gradient is untouched


def test_clip_per_matrix_skips_parameters_without_gradients() -> None:
    model = torch.nn.Linear(3, 2)
    clip_per_matrix(model, 1.0)  # no gradients at all: nothing to do, no error
    model.weight.grad = torch.full((2, 3), 10.0)
    clip_per_matrix(model, 1.0)
    assert model.bias.grad is None
    assert math.isclose(float(model.weight.grad.norm()), 1.0, rel_tol=1e-5)


def test_random_time_interleaves_at_most_ceil_noise_n_blanks_in_order() -> None:
    rng = np.random.default_rng(0)
    lengths = np.array([0, 1, 5, 10, 37, 50])
    M, noise = 50, 0.2
    moved = 0
    for _ in range(500):
        out = random_time(lengths, M, noise, rng)  # (6, 50)
        assert out.shape == (6, M) and out.dtype == np.int64
        for row, n in zip(out, lengths.tolist(), strict=True):
            real = row[:n]
            assert np.all(np.diff(real) > 0)  # distinct and in story order
            assert n == 0 or (real[0] >= 0 and real[-1] < n + math.ceil(noise * n))
            assert np.array_equal(row[n:], np.arange(n, M))  # padding slots untouched
            moved += int(n > 0 and real[-1] != n - 1)
    assert moved > 0  # blanks were added somewhere


def test_random_time_spreads_the_blanks_uniformly() -> None:
    # n = 5, noise 0.2: 0 or 1 blank with equal odds; with one, the 5 memories take 5 of
    # 6 slots, so the newest lands on slot 5 with probability 1/2 * 5/6 = 0.417.
    rng = np.random.default_rng(1)
    last = np.array([random_time(np.array([5]), 8, 0.2, rng)[0, 4] for _ in range(4000)])
    assert set(last.tolist()) == {4, 5}
    assert abs(float((last == 5).mean()) - 5 / 12) < 0.03


def test_random_time_without_noise_or_rows_is_the_plain_order() -> None:
    rng = np.random.default_rng(2)
    np.testing.assert_array_equal(random_time(np.array([3, 4]), 4, 0.0, rng), [[0, 1, 2, 3]] * 2)
    assert random_time(np.array([], dtype=np.int64), 4, 0.2, rng).shape == (0, 4)
