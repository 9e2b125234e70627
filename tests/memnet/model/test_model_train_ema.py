"""The weight average (--ema-decay): the moving average itself, what is saved, resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from model_support import qa1_config

from memnet.errors import InvalidArgument
from memnet.model.config import ModelConfig
from memnet.model.memn2n import MemN2N
from memnet.train.config import TrainConfig
from memnet.train.trainer import averaged_module, make_ema, train

MODEL = {"dim": 12, "tying": "kv", "hops": 2}


def _config(**overrides: object) -> TrainConfig:
    options = {"epochs": 2, "ls_epochs": 1, "seed": 3, "ema_decay": 0.9}
    return qa1_config(**{**options, **overrides})


def test_the_average_is_the_exponential_moving_average_of_the_steps() -> None:
    model = MemN2N(ModelConfig(vocab_size=9, answer_size=4, dim=6, hops=2, tying="kv"))
    ema = make_ema(model, 0.75)
    steps = []
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.zero_nil_()
        steps.append({k: v.clone() for k, v in model.state_dict().items()})
        ema.update_parameters(model)
    averaged = averaged_module(ema).state_dict()
    for k in steps[-1]:
        expected = steps[0][k]  # the first update copies the weights
        for step in steps[1:]:
            expected = 0.75 * expected + 0.25 * step[k]
        torch.testing.assert_close(averaged[k], expected)
    assert any(not torch.equal(averaged[k], v) for k, v in steps[-1].items())
    nil_rows = [v[0] for k, v in averaged.items() if k.endswith("embedding.weight")]
    assert nil_rows and all(bool((row == 0).all()) for row in nil_rows)


def test_a_run_saves_the_average_and_resumes_it(tmp_path: Path) -> None:
    cfg = _config()
    out = tmp_path / "e.pt"
    train(replace(cfg, epochs=1), MODEL, out, progress=False)  # stops after 2 of 3 epochs
    resumed = train(cfg, MODEL, out, resume=True, progress=False)
    straight = train(cfg, MODEL, tmp_path / "s.pt", progress=False)
    for k, v in straight.state_dict.items():
        torch.testing.assert_close(resumed.state_dict[k], v)
    # the average after the last step, whatever epoch was kept: resume restored it
    ema_resumed = torch.load(tmp_path / "e.pt.resume", weights_only=True)["ema"]
    ema_straight = torch.load(tmp_path / "s.pt.resume", weights_only=True)["ema"]
    for k, v in ema_straight.items():
        torch.testing.assert_close(ema_resumed[k], v)
    # The steps themselves do not depend on the average: the same seed without it takes
    # the same steps, and what it saves is a step's weights, not their average.
    plain = train(replace(cfg, ema_decay=0.0), MODEL, tmp_path / "p.pt", progress=False)
    for a, b in zip(plain.metrics["history"], straight.metrics["history"], strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-4


def test_the_saved_weights_are_the_average_not_the_last_step(tmp_path: Path) -> None:
    # one softmax epoch: the kept epoch is the last one, so what is saved must be the
    # average after its last step, and that is not the last step's weights
    ckpt = train(_config(epochs=1), MODEL, tmp_path / "one.pt", progress=False)
    assert ckpt.metrics["best_epoch"] == 2
    resume = torch.load(tmp_path / "one.pt.resume", weights_only=True)
    for k, v in ckpt.state_dict.items():
        torch.testing.assert_close(v, resume["ema"][f"module.{k}"])
    differs = [k for k, v in ckpt.state_dict.items() if not torch.allclose(v, resume["model"][k])]
    assert differs, "the saved weights are the last step's, not the average"


def test_resuming_with_another_average_setting_is_refused(tmp_path: Path) -> None:
    cfg = _config(epochs=1)
    out = tmp_path / "r.pt"
    train(cfg, MODEL, out, progress=False)
    with pytest.raises(InvalidArgument, match="ema-decay") as err:
        train(replace(cfg, epochs=2, ema_decay=0.0), MODEL, out, resume=True, progress=False)
    assert err.value.field == "ema_decay"


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_an_average_decay_outside_0_1_is_refused(decay: float) -> None:
    with pytest.raises(InvalidArgument, match="ema_decay") as err:
        _config(ema_decay=decay)
    assert err.value.field == "ema_decay"
