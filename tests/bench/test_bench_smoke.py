"""Tiny runs of the benchmark suite's measurements, so the benchmark code cannot rot.

Invariants: with k = M the top-k readout is the exact readout and captures all the
attention mass; mass and error move the right way with k; the bandwidth and flat-scan
measurements return positive, finite numbers; the training-step benchmark's explicit
baseline encodes sentences as the model does, and both steps are timed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_train
import datasets
import exact_attention as ea
import machine_limits
import timing

from memnet.data.babi import find_default_data_dir
from memnet.model.config import ModelConfig
from memnet.model.encoding import SentenceEncoder
from memnet.model.memn2n import MemN2N
from memnet.serving.bank_source import BankMemorySource
from memnet.serving.vector_model import VectorPassThroughModel

M, D, Q = 600, 16, 8


@pytest.fixture(params=["flat", "hnsw", "ivf"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("name", ["clustered", "random"])
def test_topk_equals_exact_at_k_equal_m(tmp_path: Path, kind: str, name: str) -> None:
    ds = datasets.make(name, M, D, Q, seed=1)
    q = ds.scaled_queries(2.0)
    o_exact, lse = ea.exact_reference(q, ds)
    torch_o = ea.exact_attention_fns(ds)["matmul"](q).numpy()
    np.testing.assert_allclose(torch_o, o_exact, rtol=1e-4, atol=1e-5)
    store = ea.scratch_store(tmp_path)
    source = ea.Variant(BankMemorySource(ea.build_bank(store, "smoke", ds, kind)))
    model = VectorPassThroughModel()
    err_all, mass_all = ea.accuracy(model, source, q, M, o_exact=o_exact, lse=lse)
    if kind != "ivf":  # IVF with nprobe < nlist may not reach every memory
        assert np.all(mass_all > 1 - 1e-4)
        assert np.all(err_all < 1e-4)
    err_8, mass_8 = ea.accuracy(model, source, q, 8, o_exact=o_exact, lse=lse)
    assert np.all(mass_8 <= mass_all + 1e-6)
    assert np.median(err_8) >= np.median(err_all)
    store.close()


def test_run_reports_every_k_and_a_speedup() -> None:
    cfg = ea.ExactConfig(
        sizes=(512,), kinds=("flat",), datasets=("clustered",), ks=(8, 512), n_accuracy=4,
        n_timed=2, rounds=1, logit_scales=(1.0,),
    )  # fmt: skip
    res = ea.run(cfg)
    assert {r.k for r in res.accuracy} == {8, 512}
    assert all(r.speedup > 0 for r in res.timings)
    best = ea.smallest_k(res, "clustered", 512, "flat", 1.0)
    assert best is not None and best.k <= 512
    assert ea.tables(res)


def test_limits_measure_positive_bandwidths() -> None:
    res = machine_limits.run(machine_limits.LimitsConfig(m=20_000, d=D, n_queries=3, repeats=1))
    assert all(np.isfinite(c.bytes_per_s) and c.bytes_per_s > 0 for c in res.copies)
    assert all(s.bytes_per_s > 0 for s in res.searches)
    assert any(s.what.startswith("memnet") for s in res.searches)
    assert machine_limits.tables(res)


def test_timing_summaries() -> None:
    lat = timing.summarize_s([0.001, 0.002, 0.003])
    assert lat.p50_ms == pytest.approx(2.0)
    assert "| a |" in timing.table("t", ["a"], [["1"]])


def test_training_step_bench_times_both_steps_of_every_form() -> None:
    data_dir = find_default_data_dir()
    assert data_dir is not None
    rows, per_epoch = bench_train.measure(data_dir, n_batches=2, repeats=1, forms=bench_train.FORMS)
    assert per_epoch > 100 and [r[0] for r in rows] == list(bench_train.FORMS)
    for _, explicit_ms, current_ms, ratio, epoch_s in rows:
        assert float(explicit_ms) > 0 and float(current_ms) > 0 and float(epoch_s) > 0
        assert ratio.endswith("×") and float(ratio[:-1]) > 0


def test_training_step_bench_baseline_encodes_as_the_model_does() -> None:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(0, 9, (4, 6), generator=g)  # (B, M) words per sentence
    tokens = torch.randint(1, 30, (4, 6, 8), generator=g) * (torch.arange(8) < lengths[..., None])
    for form in bench_train.FORMS.values():
        model = MemN2N(ModelConfig(vocab_size=30, answer_size=5, **form))  # type: ignore[arg-type]
        encoders = [m for m in model.modules() if isinstance(m, SentenceEncoder)]
        assert encoders
        for enc in encoders:
            torch.testing.assert_close(bench_train.explicit_encode(enc, tokens), enc(tokens))


def test_permuted_vocabulary_keeps_structure_and_maps_answers_part_by_part() -> None:
    import permute_vocab

    words = permute_vocab.WordMap(seed=0)
    story = permute_vocab.permute_line("3 Mary went to the kitchen.", words)
    question = permute_vocab.permute_line("4 Where is Mary? \tn,w\t1 3", words)
    head, text = story.split(" ", 1)
    assert head == "3" and text.endswith(".") and len(text.split()) == 5
    assert words("mary") == words("Mary") == text.split()[0]  # one string per word, any case
    q, answer, support = question.split("\t")
    assert q.startswith("4 ") and q.rstrip().endswith("?") and support == "1 3"
    assert answer == f"{words('n')},{words('w')}"
    assert len(set(words.forward.values())) == len(words.forward)  # one to one


def test_vocab_invariance_table_pairs_the_copies_of_each_seed() -> None:
    import vocab_invariance

    def row(copy: str, seed: int, test: float) -> dict[str, object]:
        return {
            "copy": copy,
            "seed": seed,
            "valid_mean_error_pct": 7.0,
            "valid_failed": 4,
            "test_mean_error_pct": test,
            "test_failed": 5,
        }

    rows = [row("plain", 0, 8.0), row("permuted", 0, 8.5), row("plain", 1, 9.0)]
    lines = vocab_invariance.table(rows).splitlines()
    assert lines[2].startswith("| 0 | 7.00 / 4 | 8.00 / 5 | 7.00 / 4 | 8.50 / 5 | +0.50 |")
    assert lines[3] == "| 1 | 7.00 / 4 | 9.00 / 5 | – | – |  |"
    assert lines[4] == "| mean | | 8.50 | | 8.50 | +0.50 |"
