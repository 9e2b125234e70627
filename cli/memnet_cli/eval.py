"""``memnet eval CHECKPOINT``: per-task bAbI error, failed tasks, supporting-fact hit rates."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from memnet_cli.train import add_data_arguments, resolve_data_dir


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint on bAbI: error %% per task, failed tasks, support hit rates",
    )
    p.add_argument("checkpoint", type=Path, help="a checkpoint written by `memnet train`")
    add_data_arguments(p)
    p.add_argument("--tasks", default=None, help="default: the tasks the checkpoint trained on")
    p.add_argument("--split", default="test", choices=["test", "train"])
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    p.add_argument("-o", "--out", type=Path, default=None, help="also write the table (markdown)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from memnet.data.babi import parse_tasks
    from memnet.model.checkpoint import load_checkpoint
    from memnet.train.dataset import load_test, task_names
    from memnet.train.evaluate import evaluate

    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    data_dir = resolve_data_dir(args.data_dir)
    trained = [int(t) for t in ckpt.train_config.get("tasks", [])]
    tasks = parse_tasks(args.tasks) if args.tasks else (trained or parse_tasks("all"))
    data = load_test(
        data_dir,
        tasks,
        vocab=ckpt.vocab,
        answers=ckpt.answers,
        memory_size=ckpt.memory_size,
        sentence_len=ckpt.sentence_len,
        query_len=ckpt.query_len,
        split=args.split,
    )
    report = evaluate(ckpt.build_model(), data, task_names=task_names(data_dir, tasks))
    table = report.table()
    print(f"{args.checkpoint} on {data_dir} ({args.split}):\n\n{table}\n")
    print(f"mean error {report.mean_error_pct:.2f} %, failed tasks {report.failed_tasks}")
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")
    if args.json:
        payload = {
            "checkpoint": str(args.checkpoint),
            "data_dir": str(data_dir),
            "split": args.split,
            **report.to_dict(),
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0
