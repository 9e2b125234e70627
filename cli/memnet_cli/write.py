"""``memnet write BANK SOURCE``: write text lines, or a .npy of vectors, into a bank (SDK only).

A SOURCE ending in ``.npy`` holds an (N, Dk) float array of keys; its values are the
same array unless ``--values`` names another (N, Dv) ``.npy``. Any other SOURCE (or
``-`` for stdin) holds one memory per non-empty line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from memnet_cli.connection import add_connection_arguments, connect, json_object_argument
from memnet_client import DEFAULT_MAX_CHUNK_MEMORIES
from memnet_client.errors import ValidationError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("write", help="write memories: text lines, or a .npy of vectors")
    parser.add_argument("bank")
    parser.add_argument(
        "source", help="text file (one memory per line; '-' = stdin) or an (N, Dk) .npy of keys"
    )
    parser.add_argument("--values", default=None, help="(N, Dv) .npy of values (vector banks)")
    parser.add_argument(
        "--metadata",
        default=None,
        help="JSON object stored with every memory, e.g. '{\"story\": 1}'",
    )
    parser.add_argument(
        "--id-prefix",
        default=None,
        help="give memory i the id PREFIX<i> (0-based; default: server-generated ids)",
    )
    parser.add_argument("--mode", choices=["upsert", "insert"], default="upsert")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar on stderr (shown for writes of more than one request)",
    )
    add_connection_arguments(parser)
    parser.set_defaults(func=run)


def _read_lines(source: str) -> list[str]:
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as error:
            raise ValidationError(f"cannot read {source}: {error}", field="source") from error
    return [line.strip() for line in text.splitlines() if line.strip()]


def _load_npy(path: str, *, field: str) -> Any:
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValidationError(f"cannot read {path} as .npy: {error}", field=field) from error


def run(args: argparse.Namespace) -> int:
    texts: list[str] | None = None
    keys = values = None
    if args.source.endswith(".npy"):
        keys = _load_npy(args.source, field="source")
        values = _load_npy(args.values, field="--values") if args.values else keys
        size = len(keys)
    else:
        if args.values:
            raise ValidationError("--values goes with a .npy source", field="--values")
        texts = _read_lines(args.source)
        if not texts:
            raise ValidationError(f"{args.source} holds no non-empty line", field="source")
        size = len(texts)
    metadata_object = json_object_argument(args.metadata, flag="--metadata")
    ids = [f"{args.id_prefix}{i}" for i in range(size)] if args.id_prefix is not None else None
    with connect(args) as client:
        result = client.write(
            args.bank,
            texts,
            keys=keys,
            values=values,
            ids=ids,
            metadata=[metadata_object] * size if metadata_object is not None else None,
            mode=args.mode,
            progress=not args.no_progress and size > DEFAULT_MAX_CHUNK_MEMORIES,
        )
    print(
        f"wrote {len(result.ids)} memories to {args.bank} "
        f"({result.inserted} new, {result.replaced} replaced; seq {result.seq}; "
        f"{result.requests} request(s))"
    )
    if result.evicted_ids:
        print(f"evicted {len(result.evicted_ids)} oldest memories (capacity)")
    if result.unknown_words:
        print(
            "warning: words unknown to the model (ignored): " + ", ".join(result.unknown_words),
            file=sys.stderr,
        )
    return 0
