"""Training step speed: the current step against the explicit one, side by side.

The current step encodes sentences as two weighted embedding bags (the position
weights factored as l_kj = α_j + β_k γ_j), clips every gradient in one pass and draws
the random-noise time indices for the whole batch at once. The baseline is the same
step written out: Σ_j l_j ⊙ E[w_j] with the (…, T, D) weights built per call,
``clip_grad_norm_`` per matrix, one ``rng.choice`` per story. Both run the same
batches from the same weights, interleaved (``timing.per_call_s``), so their ratio is
measured under the same load.

    .venv/bin/python bench/bench_train.py            # 1k joint, the shipping model
    .venv/bin/python bench/bench_train.py --batches 40 --repeats 2
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import timing

from memnet.data.babi import find_default_data_dir
from memnet.model.config import ModelConfig
from memnet.model.encoding import (
    SentenceEncoder,
    position_encoding,
    reference_position_encoding,
)
from memnet.model.memn2n import MemN2N
from memnet.train.batches import batch_order, random_time, trim
from memnet.train.config import TrainConfig
from memnet.train.dataset import load_splits
from memnet.train.trainer import clip_per_matrix, make_optimizer

# The forms timed: the shipped 1k model, and the 10k runs' adjacent form.
FORMS: dict[str, dict[str, object]] = {
    "kv, D 100, 4 hops (babi-joint)": {
        "dim": 100,
        "hops": 4,
        "tying": "kv",
        "activation": "half_relu",
    },
    "adjacent, D 150, 3 hops, relational, reference PE": {
        "dim": 150,
        "hops": 3,
        "tying": "adjacent",
        "activation": "half_relu",
        "head": "relational",
        "position_form": "reference",
    },
}


def explicit_encode(enc: SentenceEncoder, tokens: torch.Tensor) -> torch.Tensor:
    """Σ_j l_j ⊙ E[w_j] with the (…, T, D) position weights built per call."""
    e = enc.embedding(tokens)  # (..., T, D)
    if enc.position:
        T, D = tokens.shape[-1], e.shape[-1]
        lengths = (tokens > 0).sum(-1)
        if enc.position_form == "reference":
            e = e * reference_position_encoding(lengths, T, D, enc.position_length)
        else:
            e = e * position_encoding(lengths, T, D)
    return e.sum(-2)


def explicit_random_time(
    lengths: np.ndarray, M: int, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Random-noise time indices drawn story by story. (B,) -> (B, M) int64."""
    out = np.tile(np.arange(M, dtype=np.int64), (len(lengths), 1))
    for b, n in enumerate(lengths.tolist()):
        blanks = int(rng.integers(0, math.ceil(noise * n) + 1))
        if n and blanks:
            out[b, :n] = np.sort(rng.choice(n + blanks, size=n, replace=False))
    return out


def explicit_clip(model: torch.nn.Module, max_norm: float) -> None:
    for p in model.parameters():
        if p.grad is not None:
            torch.nn.utils.clip_grad_norm_([p], max_norm)


def make_step(
    model: MemN2N,
    cfg: TrainConfig,
    batches: list[tuple[torch.Tensor, ...]],
    *,
    explicit: bool,
) -> Callable[[], None]:
    """One pass of training steps over ``batches`` (forward, backward, clip, update)."""
    model = copy.deepcopy(model)
    if explicit:
        for enc in model.modules():
            if isinstance(enc, SentenceEncoder):
                enc.forward = types.MethodType(explicit_encode, enc)  # type: ignore[method-assign]
    opt = make_optimizer(cfg, model)
    draw = explicit_random_time if explicit else random_time
    clip = explicit_clip if explicit else clip_per_matrix
    rng = np.random.default_rng(0)

    def run() -> None:
        model.train()
        for queries, stories, mask, lengths, answers in batches:
            recency = torch.from_numpy(
                draw(lengths.numpy(), stories.shape[1], cfg.random_noise, rng)
            )
            out = model(queries, stories, mask, recency=recency)
            loss = F.cross_entropy(out.logits, answers, reduction="sum")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            clip(model, cfg.max_grad_norm)
            opt.step()
            model.zero_nil_()

    return run


def measure(
    data_dir: Path, *, n_batches: int, repeats: int, forms: dict[str, dict[str, object]]
) -> tuple[list[list[str]], int]:
    """Per form: explicit and current ms per batch, their ratio, and the current step's
    seconds per 1k joint epoch. Returns the table rows and the batches in an epoch."""
    tasks = list(range(1, 21))
    splits = load_splits(data_dir, tasks, memory_size=50, val_fraction=0.1, seed=0)
    cfg = TrainConfig(
        data_dir=str(data_dir), tasks=tuple(tasks), random_noise=0.2, weight_decay=1e-3
    )
    order = batch_order(
        splits.train.lengths, cfg.batch_size, cfg.bucket, torch.Generator().manual_seed(0)
    )
    batches = []
    for idx in order[:n_batches]:
        stories, mask, lengths = trim(splits.train, idx)
        batches.append(
            (splits.train.queries[idx], stories, mask, lengths, splits.train.answers[idx])
        )
    rows = []
    for name, form in forms.items():
        torch.manual_seed(0)
        model = MemN2N(
            ModelConfig(
                vocab_size=len(splits.vocab),
                answer_size=len(splits.answers),
                **form,  # type: ignore[arg-type]
            )
        )
        fns = [make_step(model, cfg, batches, explicit=e) for e in (True, False)]
        explicit_s, current_s = timing.per_call_s(fns, repeats=repeats)
        explicit_ms, current_ms = (1e3 * s / len(batches) for s in (explicit_s, current_s))
        rows.append(
            [
                name,
                f"{explicit_ms:.2f}",
                f"{current_ms:.2f}",
                f"{explicit_ms / current_ms:.2f}×",
                f"{current_ms * len(order) / 1e3:.1f}",
            ]
        )
    return rows, len(order)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=None, help="bAbI en/ (default: bundled)")
    p.add_argument("--batches", type=int, default=150, help="batches per timed pass")
    p.add_argument("--repeats", type=int, default=3, help="timed passes (median)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    data_dir = a.data_dir or find_default_data_dir()
    if data_dir is None:
        p.error("no bundled bAbI data found; pass --data-dir")
    rows, per_epoch = measure(data_dir, n_batches=a.batches, repeats=a.repeats, forms=FORMS)
    header = ["form", "explicit ms/batch", "current ms/batch", "speed-up", "current s/1k epoch"]
    title = (
        f"Training step, 1k joint batches of 32 ({a.batches} per pass, median of "
        f"{a.repeats}; {a.threads} thread(s); {per_epoch} batches per epoch)"
    )
    print(timing.table(title, header, rows))


if __name__ == "__main__":
    main()
