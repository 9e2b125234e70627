"""The ``memnet`` command line: one module per subcommand, each with ``register(subparsers)``.

The command line stands on top of everything else: it imports the library
(``memnet``), the server (``memnet_server``, for ``serve``) and the SDK
(``memnet_client``, for the client commands); none of them imports it. Heavy
imports (torch, faiss, the server) happen inside the commands that need them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from memnet import __version__
from memnet.errors import MemnetError

_COMMAND_MODULES = [
    "memnet_cli.banks",
    "memnet_cli.write",
    "memnet_cli.query",
    "memnet_cli.explain",
    "memnet_cli.train",
    "memnet_cli.eval",
    "memnet_cli.models",
    "memnet_cli.serve",
    "memnet_cli.health",
    "memnet_cli.repair",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memnet",
        description="memnet: a memory network served over gRPC, with its training tools.",
    )
    parser.add_argument("--version", action="version", version=f"memnet {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    args.argv = arguments  # the command line as given, for model cards
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except MemnetError as error:
        field = f" [{error.field}]" if error.field else ""
        print(f"memnet {args.command}: error{field}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"memnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
