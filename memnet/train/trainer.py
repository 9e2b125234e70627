"""The reference MemN2N training recipe (Sukhbaatar et al. 2015, §4.2 and the authors' code).

SGD, batch 32, lr halved every ``decay_every`` epochs, gradients clipped to norm 40
per weight matrix, linear start (softmax removed for the first ``ls_epochs`` epochs at
``ls_lr``), random noise (10 % empty memories interleaved in time), 10 % of train held
out for validation (whole stories, see ``split_train_valid``). The saved model is the
epoch with the best validation accuracy of the softmax phase.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from memnet.data.tensors import BabiTensors
from memnet.errors import InvalidArgument
from memnet.model.checkpoint import Checkpoint, save_checkpoint
from memnet.model.config import ModelConfig
from memnet.model.memn2n import MemN2N
from memnet.train.augment import EntityRenamer
from memnet.train.batches import batch_order, random_time, trim
from memnet.train.config import TrainConfig
from memnet.train.dataset import Splits
from memnet.train.evaluate import evaluate, predict
from memnet.train.resume import TrainState, load_resume, save_resume
from memnet.train.run_card import train_config_dict, training_card
from memnet.train.sources import load_training_data

LOG = logging.getLogger(__name__)


@torch.no_grad()
def clip_per_matrix(model: torch.nn.Module, max_norm: float) -> None:
    """Clip each parameter's gradient to ``max_norm`` on its own, as the reference code does.

    The same scaling as ``clip_grad_norm_([p], max_norm)`` for every p, g ← g · min(1,
    max_norm / (‖g‖ + 1e-6)), in one pass over the gradients instead of a call per matrix.
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])  # (P,)
    scales = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # (P,)
    for g, scale in zip(grads, scales, strict=True):
        g.mul_(scale)


def make_optimizer(cfg: TrainConfig, model: MemN2N) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise InvalidArgument("optimizer must be 'sgd' or 'adam'", field="optimizer")


def make_ema(model: MemN2N, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights (Polyak averaging).

    After each step ``w_ema ← decay · w_ema + (1 − decay) · w``; the first update copies
    the weights. Nil rows stay zero: they are zero in every averaged step.
    """
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def averaged_module(ema: AveragedModel) -> MemN2N:
    return cast(MemN2N, ema.module)


def train_epoch(
    model: MemN2N,
    opt: torch.optim.Optimizer,
    data: BabiTensors,
    cfg: TrainConfig,
    *,
    linear: bool,
    gen: torch.Generator,
    rng: np.random.Generator,
    ema: AveragedModel | None = None,
    renamer: EntityRenamer | None = None,
    batch_bar: tqdm | None = None,
) -> tuple[float, float]:
    """One pass over ``data`` in random batches; mean loss and accuracy.

    With ``ema``, the moving average is updated after every step; with ``renamer``,
    every question is trained under a fresh renaming of its entities; ``batch_bar``
    is reset to the epoch's batch count and shows the running loss and accuracy.
    """
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    batches = batch_order(data.lengths, cfg.batch_size, cfg.bucket, gen)
    if batch_bar is not None:
        batch_bar.reset(total=len(batches))
    for idx in batches:
        stories, mask, lengths = trim(data, idx)
        recency = None
        if cfg.random_noise > 0:
            recency = torch.from_numpy(
                random_time(lengths.numpy(), stories.shape[1], cfg.random_noise, rng)
            )
        queries, answers = data.queries[idx], data.answers[idx]
        if renamer is not None:
            stories, queries, answers = renamer(stories, queries, answers, data.tasks[idx], rng)
        out = model(queries, stories, mask, recency=recency, linear=linear)
        loss = F.cross_entropy(out.logits, answers, reduction="sum")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_per_matrix(model, cfg.max_grad_norm)
        opt.step()
        model.zero_nil_()
        if ema is not None:
            ema.update_parameters(model)
        total_loss += float(loss.detach())
        correct += int((out.logits.argmax(-1) == answers).sum())
        seen += len(idx)
        if batch_bar is not None:
            batch_bar.set_postfix(
                loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False
            )
            batch_bar.update(1)
    return total_loss / len(data), correct / len(data)


def train(
    cfg: TrainConfig,
    model_cfg_overrides: dict[str, Any],
    out: Path,
    *,
    name: str = "memnet",
    description: str = "",
    resume: bool = False,
    progress: bool = True,
    command: str = "",
) -> Checkpoint:
    """Train, save the best-validation model to ``out``; resumable from ``out``.resume.

    ``command`` is the command line that started the run, for the model card.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    # Refuse bad model options before reading the data (seconds on 10k); the sizes
    # come from the data and are checked with the real config below.
    ModelConfig(vocab_size=1, answer_size=1, **{"temporal_buckets": 1, **model_cfg_overrides})
    data = load_training_data(cfg)
    splits = data.splits
    model_options = {"temporal_buckets": splits.memory_size, **model_cfg_overrides}
    model_cfg = ModelConfig(
        vocab_size=len(splits.vocab),
        answer_size=len(splits.answers),
        **model_options,
    )
    model = MemN2N(model_cfg)
    opt = make_optimizer(cfg, model)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    ema = make_ema(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    renamer = None
    if cfg.augment_entities:
        renamer = EntityRenamer.for_examples(splits.vocab, splits.answers, splits.train_examples)
        LOG.info(
            "entity renaming, word classes found in the training data:\n%s",
            renamer.report.describe(splits.task_names) or "none",
        )
    renamed = renamer.renamed_classes() if renamer is not None else None
    state = TrainState()
    resume_path = out.with_name(out.name + ".resume")
    if resume and resume_path.is_file():
        state = load_resume(resume_path, model, opt, gen, rng, ema=ema, renamed_classes=renamed)
        LOG.info("resumed from %s after epoch %d", resume_path, state.epoch)
    _fit(
        model,
        opt,
        splits,
        cfg,
        state,
        gen=gen,
        rng=rng,
        ema=ema,
        renamer=renamer,
        resume_path=resume_path,
        name=name,
        progress=progress,
    )
    best = state.best_state or model.state_dict()
    model.load_state_dict(best)
    report = evaluate(model, splits.valid, task_names=splits.task_names)
    metrics = {
        "best_epoch": state.best_epoch,
        "valid_accuracy": state.best_score[0],
        "valid_mean_error_pct": report.mean_error_pct,
        "valid_failed_tasks": report.failed_tasks,
        "valid_tasks": report.to_dict()["tasks"],
        "train_seconds": state.seconds,
        "history": state.history,
    }
    if renamer is not None:
        metrics["word_classes"] = renamer.report.to_dict()
    ckpt = Checkpoint(
        model_config=model_cfg,
        vocab=splits.vocab,
        answers=splits.answers,
        memory_size=splits.memory_size,
        sentence_len=splits.sentence_len,
        query_len=splits.query_len,
        state_dict=best,
        name=name,
        description=description,
        train_config=train_config_dict(cfg),
        metrics=metrics,
        task_names=splits.task_names,
        card=training_card(
            cfg,
            model_cfg_overrides,
            data,
            report,
            command=command,
            train_seconds=state.seconds,
            renamed=renamed,
        ),
    )
    save_checkpoint(out, ckpt)
    LOG.info(
        "validation: mean error %.2f %%, %d failed; %.0f s of training",
        report.mean_error_pct,
        report.failed_tasks,
        state.seconds,
    )
    return ckpt


def _fit(
    model: MemN2N,
    opt: torch.optim.Optimizer,
    splits: Splits,
    cfg: TrainConfig,
    state: TrainState,
    *,
    gen: torch.Generator,
    rng: np.random.Generator,
    ema: AveragedModel | None,
    renamer: EntityRenamer | None,
    resume_path: Path,
    name: str,
    progress: bool,
) -> None:
    """Run the remaining epochs: linear start, then softmax; keep the best validation state.

    With ``ema``, the softmax epochs update the average, and the average is what is
    validated and kept.
    """
    total = cfg.ls_epochs + cfg.epochs
    bar = tqdm(
        total=total,
        initial=state.epoch,
        disable=not progress,
        file=sys.stderr,
        desc=f"train {name}",
        unit="epoch",
        dynamic_ncols=True,
    )
    batch_bar = tqdm(  # the current epoch's batches, under the epoch bar; cleared when done
        total=0,
        disable=not progress,
        file=sys.stderr,
        desc="  batches",
        unit="batch",
        leave=False,
        position=1,
        mininterval=1.0,
        dynamic_ncols=True,
    )
    while state.epoch < total:
        e = state.epoch
        linear = e < cfg.ls_epochs
        for g in opt.param_groups:
            g["lr"] = cfg.lr_at(e)
        t0 = time.perf_counter()
        step_ema = None if linear else ema
        loss, acc = train_epoch(
            model,
            opt,
            splits.train,
            cfg,
            linear=linear,
            gen=gen,
            rng=rng,
            ema=step_ema,
            renamer=renamer,
            batch_bar=batch_bar,
        )
        state.seconds += time.perf_counter() - t0
        scored = averaged_module(step_ema) if step_ema is not None else model
        val_acc, val_loss = _validate(scored, splits.valid, linear=linear)
        state.history.append(
            {"epoch": e + 1, "loss": loss, "acc": acc, "val_loss": val_loss, "val_acc": val_acc}
        )
        if not linear and (val_acc, -val_loss) > state.best_score:
            state.best_score, state.best_epoch = (val_acc, -val_loss), e + 1
            state.best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
        state.epoch = e + 1
        save_resume(
            resume_path,
            model=model,
            opt=opt,
            gen=gen,
            rng=rng,
            state=state,
            ema=ema,
            renamed_classes=renamer.renamed_classes() if renamer is not None else None,
        )
        bar.set_postfix(  # progress on stderr: loss and accuracy
            loss=f"{loss:.3f}",
            acc=f"{acc:.3f}",
            val_acc=f"{val_acc:.3f}",
            lr=f"{cfg.lr_at(e):.4g}",
            ls=int(linear),
        )
        bar.update(1)
    batch_bar.close()
    bar.close()


def _validate(model: MemN2N, data: BabiTensors, *, linear: bool) -> tuple[float, float]:
    pred, _, loss = predict(model, data, linear=linear)
    return float((pred == data.answers).float().mean()), loss / len(data)
