"""argparse helpers of the commands built on the SDK (``memnet banks|write|query|explain``).

Connection flags fall back to environment variables, so scripts set them once:
``MEMNET_TARGET`` (default ``127.0.0.1:50051``), ``MEMNET_API_KEY``, ``MEMNET_TLS_CA``.
The target may name several replicas, as the SDK's ``target`` does: a comma-separated
list (``10.0.0.5:50051,10.0.0.6:50051``) or a gRPC URI (``dns:///memnet:50051``).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from memnet_client._call import DEFAULT_TIMEOUT_S, DEFAULT_WRITE_TIMEOUT_S
from memnet_client._channel import DEFAULT_TARGET, TlsConfig
from memnet_client.client import MemnetClient
from memnet_client.errors import ValidationError


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--target``, ``--api-key``, ``--tls-ca``, ``--tls-server-name`` and ``--timeout-s``."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--target",
        default=os.environ.get("MEMNET_TARGET", DEFAULT_TARGET),
        help="host:port of the server; several replicas as 'host:port,host:port' or "
        "'dns:///name:port' (round-robin, idempotent calls retried on another replica) "
        "(env MEMNET_TARGET; default %(default)s)",
    )
    group.add_argument(
        "--api-key",
        default=os.environ.get("MEMNET_API_KEY"),
        help="API key, sent as 'authorization: Bearer <key>' (env MEMNET_API_KEY)",
    )
    group.add_argument(
        "--tls-ca",
        default=os.environ.get("MEMNET_TLS_CA"),
        help="PEM CA bundle of the server certificate; enables TLS (env MEMNET_TLS_CA)",
    )
    group.add_argument(
        "--tls-server-name", default=None, help="name to check in the server certificate"
    )
    group.add_argument(
        "--timeout-s",
        type=float,
        default=None,
        help="deadline of each call in seconds (default: 10 for reads and queries, 60 for writes)",
    )


def connect(args: argparse.Namespace) -> MemnetClient:
    """A client configured from the connection flags of ``add_connection_arguments``."""
    tls = (
        TlsConfig.from_files(args.tls_ca, server_name=args.tls_server_name) if args.tls_ca else None
    )
    timeout_s: float | None = args.timeout_s
    return MemnetClient(
        args.target,
        api_key=args.api_key or None,
        tls=tls,
        timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
        write_timeout_s=DEFAULT_WRITE_TIMEOUT_S if timeout_s is None else timeout_s,
    )


def json_object_argument(text: str | None, *, flag: str) -> dict[str, Any] | None:
    """Parse a flag holding a JSON object (``--metadata '{"story": 1}'``); None stays None."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValidationError(f"{flag} is not valid JSON: {error}", field=flag) from error
    if not isinstance(value, dict):
        raise ValidationError(f"{flag} must be a JSON object", field=flag)
    return value


def truncate(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"
