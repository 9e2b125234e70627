"""Training shows its progress on stderr: an epoch bar, and a batch bar within each epoch."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from model_support import qa1_config

from memnet.train.dataset import load_splits
from memnet.train.trainer import train


def test_progress_shows_epochs_and_each_epochs_batches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = qa1_config(epochs=1, ls_epochs=1, seed=3)
    train(cfg, {"dim": 20, "tying": "kv", "hops": 2}, tmp_path / "p.pt", name="shown")
    err = capsys.readouterr().err

    n_train = len(
        load_splits(Path(cfg.data_dir), [1], memory_size=50, val_fraction=0.1, seed=3).train.answers
    )
    batches = [int(n) for n in re.findall(r"batches:\s+\d+%\|[^|]*\|\s*\d+/(\d+)", err)]
    assert batches and set(batches) == {math.ceil(n_train / cfg.batch_size)}
    assert re.search(r"train shown: 100%.*2/2 .*val_acc=", err), err[-500:]


def test_no_progress_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = qa1_config(epochs=1, ls_epochs=0, seed=3)
    train(cfg, {"dim": 20, "tying": "kv", "hops": 2}, tmp_path / "q.pt", progress=False)
    assert "batches" not in capsys.readouterr().err
