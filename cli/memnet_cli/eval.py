"""``memnet eval CHECKPOINT``: per-task error, failed tasks, supporting-fact hit rates."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from memnet_cli.train import add_data_arguments, resolve_data_dir


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint: error %% per task, failed tasks, support hit rates",
        description="Evaluate on a bAbI directory (--data-dir) or on files (--test): "
        "bAbI-format text or JSON Lines, as `memnet train` reads them.",
    )
    p.add_argument("checkpoint", type=Path, help="a checkpoint written by `memnet train`")
    add_data_arguments(p)
    p.add_argument(
        "--test",
        nargs="+",
        type=Path,
        default=None,
        metavar="FILE",
        help="test files instead of --data-dir (tasks matched to the checkpoint's by name)",
    )
    p.add_argument(
        "--tasks",
        default=None,
        help="with --data-dir: numbers (default: the tasks the checkpoint trained on); "
        "with --test: task names (default: every task in the files)",
    )
    p.add_argument(
        "--split", default="test", choices=["test", "train"], help="with --data-dir: which files"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    p.add_argument("-o", "--out", type=Path, default=None, help="also write the table (markdown)")
    p.add_argument(
        "--record",
        action="store_true",
        help="add the result to the checkpoint's model card (the file is rewritten atomically)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.set_defaults(func=run)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name next to ``path``, then rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    import torch

    from memnet.core.card import fingerprint
    from memnet.errors import InvalidArgument
    from memnet.model.checkpoint import load_checkpoint, record_result
    from memnet.train.evaluate import evaluate
    from memnet.train.run_card import eval_record
    from memnet.train.sources import load_eval_data

    if args.test and args.data_dir:
        raise InvalidArgument("give --test files or --data-dir, not both", field="test")
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    loaded = load_eval_data(
        ckpt,
        data_dir=None if args.test else resolve_data_dir(args.data_dir),
        files=args.test,
        tasks=args.tasks,
        split=args.split,
    )
    report = evaluate(ckpt.build_model(), loaded.data, task_names=loaded.task_names)
    table = report.table()
    split = args.split if not args.test else "test"
    print(f"{args.checkpoint} on {loaded.source} ({split}):\n\n{table}\n")
    print(f"mean error {report.mean_error_pct:.2f} %, failed tasks {report.failed_tasks}")
    data_fingerprint = fingerprint(loaded.files)
    if args.out:
        _write_atomically(args.out, table + "\n")
    if args.json:
        payload = {
            "checkpoint": str(args.checkpoint),
            "data_dir": loaded.source,
            "split": split,
            "data_fingerprint": data_fingerprint,
            **report.to_dict(),
        }
        _write_atomically(args.json, json.dumps(payload, indent=2) + "\n")
    if args.record:
        record_result(
            args.checkpoint, eval_record(split, report, data_fingerprint=data_fingerprint)
        )
        print(f"recorded on the model card of {args.checkpoint}")
    return 0
