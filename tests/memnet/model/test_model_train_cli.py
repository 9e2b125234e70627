"""``memnet train`` passes every model and recipe flag into the checkpoint it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from memnet.errors import InvalidArgument
from memnet.model.checkpoint import load_checkpoint
from memnet.train.config import TrainConfig
from memnet.train.trainer import train
from memnet_cli import main


def test_every_train_flag_reaches_the_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "flags.pt"
    flags = [
        "train", "--tasks", "1", "-o", str(out), "--name", "flags", "--no-progress",
        "--seed", "3", "--epochs", "1", "--ls-epochs", "1", "--lr", "0.02", "--ls-lr", "0.004",
        "--decay-every", "7", "--decay", "0.7", "--batch-size", "16", "--bucket", "0",
        "--optimizer", "adam", "--weight-decay", "0.001", "--max-grad-norm", "20",
        "--random-noise", "0.2", "--memory-size", "30", "--val-fraction", "0.2",
        "--val-split", "question",
        "--dim", "12", "--hops", "2", "--tying", "kv", "--scoring", "scaled_dot",
        "--heads", "2", "--activation", "half_relu", "--gate", "--head", "relational",
        "--relation-dim", "10", "--relation-layers", "3", "--dropout", "0.1",
        "--no-position-encoding", "--position-form", "reference", "--position-length", "9",
        "--no-temporal", "--transform-init", "identity",
    ]  # fmt: skip
    assert main(flags) == 0
    assert "saved" in capsys.readouterr().out
    ckpt = load_checkpoint(out)
    m, t = ckpt.model_config, ckpt.train_config
    assert (m.dim, m.hops, m.tying, m.scoring, m.heads) == (12, 2, "kv", "scaled_dot", 2)
    assert (m.activation, m.head, m.relation_dim, m.relation_layers) == (
        "half_relu",
        "relational",
        10,
        3,
    )
    assert (m.dropout, m.position_encoding, m.temporal_buckets, m.gate) == (0.1, False, 0, True)
    assert (m.position_form, m.position_length, m.transform_init) == ("reference", 9, "identity")
    assert (t["seed"], t["epochs"], t["ls_epochs"], t["lr"], t["ls_lr"]) == (3, 1, 1, 0.02, 0.004)
    assert (t["decay_every"], t["decay"], t["batch_size"], t["bucket"]) == (7, 0.7, 16, 0)
    assert (t["optimizer"], t["weight_decay"], t["max_grad_norm"]) == ("adam", 0.001, 20.0)
    assert (t["random_noise"], t["memory_size"], t["val_fraction"]) == (0.2, 30, 0.2)
    assert t["val_split"] == "question"
    assert ckpt.name == "flags" and len(ckpt.metrics["history"]) == 2


def _train_qa1(out: Path, *flags: str) -> int:
    """``memnet train`` on qa1 for one quiet epoch, writing ``out``; its exit code."""
    base = ["train", "--tasks", "1", "-o", str(out), "--no-progress", "--epochs", "1"]
    return main([*base, *flags])


def test_hop_transform_flag_reaches_an_adjacent_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hybrid.pt"
    flags = ["--ls-epochs", "0", "--dim", "8", "--hops", "2", "--tying", "adjacent"]
    assert _train_qa1(out, *flags, "--hop-transform") == 0
    capsys.readouterr()
    m = load_checkpoint(out).model_config
    assert (m.tying, m.hop_transform) == ("adjacent", True)


def test_hop_transform_with_another_tying_is_refused_by_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "refused.pt"
    assert _train_qa1(out, "--dim", "8", "--tying", "kv", "--hop-transform") == 2
    assert "[hop_transform]" in capsys.readouterr().err
    assert not out.exists()


def test_bad_model_options_are_refused_before_the_data_is_read(tmp_path: Path) -> None:
    cfg = TrainConfig(data_dir=str(tmp_path / "no-such-data"), tasks=(1,))
    with pytest.raises(InvalidArgument) as info:  # not the missing data's error
        train(cfg, {"tying": "kv", "hop_transform": True}, tmp_path / "x.pt")
    assert info.value.field == "hop_transform"
    assert not (tmp_path / "x.pt").exists()
