"""``memnet banks create|list|get|delete|reindex``: manage the banks of a running server
(SDK only)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from memnet_cli.connection import add_connection_arguments, connect
from memnet_client._progress import Progress
from memnet_client.models import Bank

_METRICS = ["inner_product", "l2", "cosine"]
_INDEX_KINDS = ["flat", "hnsw", "ivf", "ivf_pq"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("banks", help="create, list, describe and delete banks")
    commands = parser.add_subparsers(dest="banks_command", required=True, metavar="ACTION")

    create = commands.add_parser("create", help="create a bank")
    create.add_argument("name", help="bank name: 1-64 letters, digits, '_', '.', '-'")
    create.add_argument("--model", default=None, help="model name (default: the server's)")
    create.add_argument("--key-dim", type=int, default=None, help="Dk, for model 'vector'")
    create.add_argument("--value-dim", type=int, default=None, help="Dv, for model 'vector'")
    create.add_argument("--metric", choices=_METRICS, default=None, help="default: the model's")
    create.add_argument("--index", choices=_INDEX_KINDS, default="flat")
    create.add_argument("--capacity", type=int, default=None, help="most live memories")
    create.add_argument("--capacity-policy", choices=["reject", "evict_oldest"], default="reject")
    create.add_argument("--description", default="")
    create.set_defaults(func=_create)

    listing = commands.add_parser("list", help="list banks")
    listing.set_defaults(func=_list)

    get = commands.add_parser("get", help="describe one bank")
    get.add_argument("name")
    get.set_defaults(func=_get)

    delete = commands.add_parser("delete", help="delete a bank and all its memories")
    delete.add_argument("name")
    delete.set_defaults(func=_delete)

    reindex = commands.add_parser(
        "reindex",
        help="re-encode a text bank with another model version (admin)",
        description="Re-encode every memory of a text bank with another model version, in "
        "the background; the bank keeps serving its old version until the switch. Waits "
        "with a progress bar unless --no-wait; Ctrl-C stops waiting, not the reindex.",
    )
    reindex.add_argument("name")
    reindex.add_argument("--model", required=True, help="NAME (its latest version) or NAME@VERSION")
    reindex.add_argument("--version", type=int, default=None, help="the version of --model")
    reindex.add_argument("--no-wait", action="store_true", help="start it and return")
    reindex.add_argument("--cancel", action="store_true", help="stop the running reindex")
    reindex.add_argument("--poll-s", type=float, default=0.5, help="progress poll interval")
    reindex.set_defaults(func=_reindex)

    for sub in (create, listing, get, delete, reindex):
        add_connection_arguments(sub)


def _describe(bank: Bank) -> str:
    spec = bank.spec
    lines = [
        f"name:        {spec.name}",
        f"model:       {bank.model_ref}",
        f"dims:        key {spec.key_dim}, value {spec.value_dim}",
        f"metric:      {spec.metric}",
        f"index:       {spec.index.kind}",
        f"capacity:    {spec.capacity or 'unbounded'} ({spec.capacity_policy})",
        f"memories:    {bank.memory_count}",
        f"last seq:    {bank.last_seq}",
        f"key space:   {bank.key_space}",
    ]
    if spec.description:
        lines.append(f"description: {spec.description}")
    status = bank.reindex
    if status is not None and status.state != "idle":
        line = f"reindex:     {status.state} {status.from_model} -> {status.to_model}"
        if status.total:
            line += f", {status.done}/{status.total} at {status.rate_per_s:,.0f}/s"
        if status.error:
            line += f" ({status.error})"
        lines.append(line)
    return "\n".join(lines)


def _create(args: argparse.Namespace) -> int:
    with connect(args) as client:
        bank = client.create_bank(
            args.name,
            model=args.model,
            key_dim=args.key_dim,
            value_dim=args.value_dim,
            metric=args.metric,
            index=args.index,
            capacity=args.capacity,
            capacity_policy=args.capacity_policy,
            description=args.description,
        )
    print(_describe(bank))
    return 0


def _list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        banks = client.list_banks()
    rows = [("NAME", "MODEL", "MEMORIES", "KEY_DIM", "VALUE_DIM", "INDEX")]
    rows += [
        (
            b.spec.name,
            b.spec.model,
            str(b.memory_count),
            str(b.spec.key_dim),
            str(b.spec.value_dim),
            b.spec.index.kind,
        )
        for b in sorted(banks, key=lambda b: b.spec.name)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _get(args: argparse.Namespace) -> int:
    with connect(args) as client:
        print(_describe(client.get_bank(args.name)))
    return 0


def _delete(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.delete_bank(args.name)
    print(f"deleted bank {args.name}")
    return 0


def _reindex(args: argparse.Namespace) -> int:
    with connect(args) as client:
        if args.cancel:
            print(_describe(client.cancel_reindex(args.name)))
            return 0
        bank = client.reindex_bank(args.name, args.model, version=args.version)
        if args.no_wait:
            print(_describe(bank))
            return 0
        status = bank.reindex
        with Progress(
            status.total if status else 0, desc=f"reindex {args.name}", unit="mem", enabled=True
        ) as bar:
            shown = 0
            while status is not None and status.state == "reindexing":
                time.sleep(args.poll_s)
                bank = client.get_bank(args.name)
                status = bank.reindex
                if status is not None:
                    bar.set_total(status.total)
                    bar.update(status.done - shown)
                    shown = status.done
    print(_describe(bank))
    return 0 if status is not None and status.state == "done" else 1
