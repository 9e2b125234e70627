"""A seeded short training run on qa1 passes 90 % test accuracy; training resumes."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from model_support import qa1_config

from memnet.model.checkpoint import load_checkpoint
from memnet.train.config import TrainConfig
from memnet.train.dataset import load_test
from memnet.train.evaluate import evaluate
from memnet.train.trainer import train

MODEL = {"dim": 20, "tying": "kv", "hops": 3}


def _config(**overrides: object) -> TrainConfig:
    options = {"epochs": 20, "ls_epochs": 5, "decay_every": 10, "seed": 7, "threads": 1}
    return qa1_config(**{**options, **overrides})


def test_seeded_qa1_run_reaches_90_percent_test_accuracy(tmp_path: Path) -> None:
    cfg = _config()
    t0 = time.perf_counter()
    train(cfg, MODEL, tmp_path / "qa1.pt", progress=False)
    assert time.perf_counter() - t0 < 60
    ckpt = load_checkpoint(tmp_path / "qa1.pt")
    assert ckpt.train_config["seed"] == 7 and ckpt.model_config.dim == 20
    test = load_test(
        Path(cfg.data_dir),
        [1],
        vocab=ckpt.vocab,
        answers=ckpt.answers,
        memory_size=ckpt.memory_size,
        sentence_len=ckpt.sentence_len,
        query_len=ckpt.query_len,
    )
    report = evaluate(ckpt.build_model(), test)
    accuracy = 100.0 - report.mean_error_pct
    assert accuracy >= 90.0, f"qa1 test accuracy {accuracy:.1f} %"
    assert len(report.tasks[0].support_hit_pct) == 3


def test_training_resumes_where_it_stopped(tmp_path: Path) -> None:
    short = _config(epochs=2, ls_epochs=1)
    out = tmp_path / "r.pt"
    train(replace(short, epochs=1), MODEL, out, progress=False)  # stops after 2 of 3 epochs
    resumed = train(short, MODEL, out, resume=True, progress=False)
    straight = train(short, MODEL, tmp_path / "s.pt", progress=False)
    assert len(resumed.metrics["history"]) == 3
    for a, b in zip(resumed.metrics["history"], straight.metrics["history"], strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-4
    for k, v in straight.state_dict.items():
        torch.testing.assert_close(resumed.state_dict[k], v)
