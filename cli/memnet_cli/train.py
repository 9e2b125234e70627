"""``memnet train``: train a memory network on bAbI or on your own files, with the reference
recipe (or a variant)."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import Any

from memnet.errors import InvalidArgument, NotFound
from memnet.model.config import (
    ACTIVATIONS,
    HEADS,
    POSITION_FORMS,
    SCORINGS,
    TRANSFORM_INITS,
    TYINGS,
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a MemN2N / KV-MemNN on bAbI or on your own question-answer files",
        description="Train on a bAbI directory (--data-dir) or on files (--train): bAbI-format "
        "text files of any name, or JSON Lines (.jsonl). Validation (--valid, or 10 %% of the "
        "training stories held out) picks the saved epoch. The test split is never read "
        "here: use `memnet eval`.",
    )
    add_data_arguments(p)
    p.add_argument(
        "--train",
        nargs="+",
        type=Path,
        default=None,
        metavar="FILE",
        help="training files instead of --data-dir: bAbI-format text, or .jsonl with "
        '{"story": [...], "question": ..., "answer": ...} per line (several = joint)',
    )
    p.add_argument(
        "--valid",
        nargs="+",
        type=Path,
        default=None,
        metavar="FILE",
        help="validation files (with --train); default: --val-fraction of the training "
        "stories, held out with --seed",
    )
    p.add_argument(
        "--tasks",
        default="all",
        help="with --data-dir: 'all' (joint over 1-20) or e.g. '1' or '1,2,3'; with --train: "
        "'all' or task names, e.g. 'pets,plants' (a file's name or its examples' task field)",
    )
    p.add_argument(
        "--fallback-data-dir",
        type=Path,
        default=None,
        help="where to take task files missing from --data-dir (e.g. 1k qa3 for 10k)",
    )
    p.add_argument("-o", "--out", type=Path, required=True, help="checkpoint file to write")
    p.add_argument("--name", default=None, help="model name stored in the checkpoint")
    p.add_argument("--resume", action="store_true", help="continue from OUT.resume if present")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("recipe (defaults: the authors' joint recipe)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--epochs", type=int, default=60, help="epochs with softmax attention")
    g.add_argument("--ls-epochs", type=int, default=30, help="linear-start epochs before (0 = off)")
    g.add_argument("--lr", type=float, default=0.01)
    g.add_argument("--ls-lr", type=float, default=0.005)
    g.add_argument("--decay-every", type=int, default=15, help="halve the lr every N epochs")
    g.add_argument("--decay", type=float, default=0.5)
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument(
        "--bucket",
        type=int,
        default=20,
        help="batches per length-sorting pool (0 = plain random batches)",
    )
    g.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    g.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty (optimizer's)")
    g.add_argument(
        "--ema-decay",
        type=float,
        default=0.0,
        help="validate and save an exponential moving average of the weights over the "
        "softmax steps, w <- d*w + (1-d)*w_step (e.g. 0.9999; 0 = off)",
    )
    g.add_argument("--max-grad-norm", type=float, default=40.0, help="per weight matrix")
    g.add_argument("--random-noise", type=float, default=0.1, help="RN fraction (0 = off)")
    g.add_argument(
        "--memory-size",
        type=int,
        default=None,
        help="most recent sentences kept (default: the longest training story, at most 50)",
    )
    g.add_argument(
        "--sentence-len",
        type=int,
        default=None,
        help="words kept per statement (default: the longest training statement)",
    )
    g.add_argument(
        "--vocab",
        type=Path,
        default=None,
        metavar="FILE",
        help="the word list to use (one a line) instead of the training data's words",
    )
    g.add_argument(
        "--answers",
        type=Path,
        default=None,
        metavar="FILE",
        help="the answer list to use (one a line) instead of the training data's answers",
    )
    g.add_argument("--val-fraction", type=float, default=0.1)
    g.add_argument(
        "--val-split",
        choices=["story", "question"],
        default="story",
        help="hold out whole stories (default), or single questions as runs up to "
        "2026-12-01 did (bAbI repeats questions within a story, so that leaks)",
    )
    g.add_argument(
        "--balance-tasks",
        action="store_true",
        help="repeat each task's training questions round(largest/own) times, so a task "
        "trained from a smaller file (10k: qa3 from 1k) weighs as much per epoch",
    )
    g.add_argument(
        "--augment-entities",
        action="store_true",
        help="train every question under a fresh consistent renaming of its entities "
        "(story, question and answer), by word classes discovered in the training data; "
        "the classes found are logged and kept in the checkpoint",
    )
    g.add_argument("--threads", type=int, default=1, help="torch threads")
    m = p.add_argument_group("model")
    m.add_argument("--dim", type=int, default=50)
    m.add_argument("--hops", type=int, default=3)
    m.add_argument("--tying", choices=TYINGS, default="layerwise")
    m.add_argument("--scoring", choices=SCORINGS, default="dot")
    m.add_argument("--heads", type=int, default=1)
    m.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        default="none",
        help="after each hop's update: half_relu = ReLU on half the units",
    )
    m.add_argument(
        "--gate",
        action="store_true",
        help="gated hop update (GMemN2N): g*o + (1-g)*u with g = sigmoid(W_g u + b_g) per hop",
    )
    m.add_argument(
        "--hop-transform",
        action="store_true",
        help="adjacent tying only: u_{h+1} = R_h(u_h + o_h) with a learned R_h per hop, as kv",
    )
    m.add_argument(
        "--transform-init",
        choices=TRANSFORM_INITS,
        default="normal",
        help="initial R_h (or H): normal N(0, 0.1), or identity (start from u_h + o_h)",
    )
    m.add_argument(
        "--head",
        choices=HEADS,
        default="linear",
        help="answer head: linear W u_H, or plus a relation network over the hops' readouts",
    )
    m.add_argument("--relation-dim", type=int, default=128, help="relation network width")
    m.add_argument("--relation-layers", type=int, default=2, help="relation network depth")
    m.add_argument("--dropout", type=float, default=0.0, help="in the relation network")
    m.add_argument("--no-position-encoding", action="store_true")
    m.add_argument(
        "--position-form",
        choices=POSITION_FORMS,
        default="paper",
        help="position encoding: the paper's (J = each sentence's length) or the authors' "
        "code's (one J for all sentences, --position-length)",
    )
    m.add_argument("--position-length", type=int, default=12, help="J of --position-form reference")
    m.add_argument("--no-temporal", action="store_true")
    p.set_defaults(func=run)


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="bAbI directory with qaN_*_{train,test}.txt (default: the repo's data/babi/en, "
        "when no files are given)",
    )


def resolve_data_dir(data_dir: Path | None) -> Path:
    from memnet.data.babi import find_default_data_dir

    found = data_dir or find_default_data_dir()
    if found is None:
        raise NotFound(
            "no bAbI data found: pass --data-dir (data/babi/en in the repo)", field="data_dir"
        )
    if not found.is_dir():
        raise NotFound(f"data directory {found} does not exist", field="data_dir")
    return found


def run(args: argparse.Namespace) -> int:
    from memnet.data.babi import parse_tasks
    from memnet.train.config import TrainConfig
    from memnet.train.trainer import train

    if args.valid and not args.train:
        raise InvalidArgument("--valid goes with --train", field="valid")
    if args.train and args.data_dir:
        raise InvalidArgument("give --train files or --data-dir, not both", field="train")
    if args.train:
        data: dict[str, Any] = {
            "train_files": tuple(str(p) for p in args.train),
            "valid_files": tuple(str(p) for p in args.valid or ()),
            "task_names": ()
            if args.tasks.strip().lower() == "all"
            else tuple(t.strip() for t in args.tasks.split(",") if t.strip()),
        }
    else:
        data = {
            "data_dir": str(resolve_data_dir(args.data_dir)),
            "tasks": tuple(parse_tasks(args.tasks)),
        }
    cfg = TrainConfig(
        **data,
        fallback_data_dir=str(args.fallback_data_dir) if args.fallback_data_dir else None,
        memory_size=args.memory_size,
        sentence_len=args.sentence_len,
        vocab_file=str(args.vocab) if args.vocab else None,
        answers_file=str(args.answers) if args.answers else None,
        epochs=args.epochs,
        ls_epochs=args.ls_epochs,
        lr=args.lr,
        ls_lr=args.ls_lr,
        decay_every=args.decay_every,
        decay=args.decay,
        batch_size=args.batch_size,
        bucket=args.bucket,
        max_grad_norm=args.max_grad_norm,
        random_noise=args.random_noise,
        val_fraction=args.val_fraction,
        val_split=args.val_split,
        balance_tasks=args.balance_tasks,
        augment_entities=args.augment_entities,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        ema_decay=args.ema_decay,
        seed=args.seed,
        threads=args.threads,
    )
    model = {
        "dim": args.dim,
        "hops": args.hops,
        "tying": args.tying,
        "scoring": args.scoring,
        "heads": args.heads,
        "activation": args.activation,
        "gate": args.gate,
        "hop_transform": args.hop_transform,
        "transform_init": args.transform_init,
        "head": args.head,
        "relation_dim": args.relation_dim,
        "relation_layers": args.relation_layers,
        "dropout": args.dropout,
        "position_encoding": not args.no_position_encoding,
        "position_form": args.position_form,
        "position_length": args.position_length,
    }
    if args.no_temporal:
        model["temporal_buckets"] = 0
    name = args.name or args.out.stem
    t0 = time.perf_counter()
    ckpt = train(
        cfg,
        model,
        args.out,
        name=name,
        resume=args.resume,
        progress=not args.no_progress,
        command=shlex.join(["memnet", *getattr(args, "argv", [])]),
    )
    m = ckpt.metrics
    print(
        f"saved {args.out} ({name}): best epoch {m['best_epoch']}, validation mean error "
        f"{m['valid_mean_error_pct']:.2f} %, {m['valid_failed_tasks']} failed tasks, "
        f"training {m['train_seconds']:.0f} s (wall {time.perf_counter() - t0:.0f} s)"
    )
    return 0
