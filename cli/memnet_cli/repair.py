"""``memnet repair BANK``: salvage a quarantined bank offline, with the server stopped.

Every whole record of the bank's logs is kept, what was lost is listed (byte ranges of
damaged log bytes, the sequence numbers they held, gaps, unusable snapshots), and the
damaged originals are moved into ``damaged-<UTC time>/`` inside the bank's directory.
The store's directory lock makes it refuse while a server has the data directory open.
Exit status: 0 nothing to repair, 1 repaired (or would be, with --dry-run).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "repair",
        help="salvage a damaged bank offline (server stopped): keep every whole record",
    )
    parser.add_argument("bank", help="name of the bank to repair")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("MEMNET_DATA_DIR", "memnet-data")),
        help="directory holding every bank (default: $MEMNET_DATA_DIR, else ./memnet-data)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="report what would be lost; change nothing"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from memnet.store.repair import repair_bank

    report = repair_bank(args.data_dir, args.bank, dry_run=args.dry_run)
    for line in report.lines():
        print(line)
    if report.damaged and args.dry_run:
        print("  (dry run: nothing was changed)")
    return 1 if report.damaged else 0
