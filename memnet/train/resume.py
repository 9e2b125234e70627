"""The resume file of a training run: everything needed to continue after an epoch.

Written after every epoch to a temporary name and renamed into place, so that a run
killed mid-write leaves the previous epoch's file whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from memnet.errors import InvalidArgument
from memnet.model.memn2n import MemN2N


@dataclass
class TrainState:
    """Progress of a run: epochs done, the best validation state so far, the history."""

    epoch: int = 0  # epochs completed
    best_score: tuple[float, float] = (-1.0, -math.inf)  # (valid accuracy, -valid loss)
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def save_resume(
    path: Path,
    *,
    model: MemN2N,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    rng: np.random.Generator,
    state: TrainState,
    ema: AveragedModel | None = None,
    renamed_classes: list[list[str]] | None = None,
) -> None:
    """Write weights, optimizer, both random streams, ``state`` and the averaged weights."""
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "torch_rng": gen.get_state(),
            "numpy_rng": rng.bit_generator.state,
            "epoch": state.epoch,
            "best_score": list(state.best_score),
            "best_epoch": state.best_epoch,
            "best_state": state.best_state,
            "history": state.history,
            "seconds": state.seconds,
            "ema": ema.state_dict() if ema is not None else None,
            "renamed_classes": renamed_classes,
        },
        tmp,
    )
    tmp.replace(path)


def load_resume(
    path: Path,
    model: MemN2N,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    rng: np.random.Generator,
    *,
    ema: AveragedModel | None = None,
    renamed_classes: list[list[str]] | None = None,
) -> TrainState:
    """Restore ``model``, ``opt``, ``gen``, ``rng`` and ``ema`` in place; the run's state.

    Raises InvalidArgument when the file was written with another entity renaming or
    weight-averaging setting than this run's.
    """
    d = torch.load(path, map_location="cpu", weights_only=True)
    # resume files written before renaming was recorded lack the key: not checked
    if "renamed_classes" in d and d["renamed_classes"] != renamed_classes:
        raise InvalidArgument(
            f"{path} was written renaming entity classes {d['renamed_classes']}, "
            f"this run renames {renamed_classes}; resume with the same "
            "--augment-entities on the same training data",
            field="augment_entities",
        )
    model.load_state_dict(d["model"])
    if (ema is not None) != (d.get("ema") is not None):
        raise InvalidArgument(
            f"{path} was written with{'out' if d.get('ema') is None else ''} --ema-decay; "
            "resume with the same setting",
            field="ema_decay",
        )
    if ema is not None:
        ema.load_state_dict(d["ema"])
    opt.load_state_dict(d["optimizer"])
    gen.set_state(d["torch_rng"])
    rng.bit_generator.state = d["numpy_rng"]
    return TrainState(
        epoch=int(d["epoch"]),
        best_score=(float(d["best_score"][0]), float(d["best_score"][1])),
        best_epoch=int(d["best_epoch"]),
        best_state=d["best_state"],
        history=list(d["history"]),
        seconds=float(d["seconds"]),
    )
