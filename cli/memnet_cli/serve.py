"""``memnet serve``: run the gRPC server until SIGTERM or SIGINT, then stop gracefully.

Every server setting is also read from ``MEMNET_<NAME>`` environment variables and an
optional TOML file (``--config`` or ``MEMNET_CONFIG``); flags win over the
environment, which wins over the file. See docs/server.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

LOG = logging.getLogger(__name__)

# Flag → (settings field, type, help). Flags default to None so that the environment
# and the config file apply unless a flag is given.
_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("--host", "host", str, "address to bind (default 127.0.0.1)"),
    ("--port", "port", int, "gRPC port, 0 = any free port (default 50051)"),
    ("--metrics-port", "metrics_port", int, "Prometheus port, 0 = off (default 0)"),
    ("--metrics-bank-labels", "metrics_bank_labels", str, "names | hashed | none (default hashed)"),
    ("--data-dir", "data_dir", Path, "directory holding every bank (default ./memnet-data)"),
    ("--fsync", "fsync", str, "always | interval | none (default always)"),
    ("--store", "store", str, "where banks live: faiss (data dir) | milvus (default faiss)"),
    ("--milvus-uri", "milvus_uri", str, "Milvus URI (default http://127.0.0.1:19530)"),
    ("--milvus-token", "milvus_token", str, "Milvus user:password or API key (prefer the env)"),
    ("--milvus-db", "milvus_db", str, "Milvus database (default default)"),
    ("--milvus-collection-prefix", "milvus_collection_prefix", str, "default memnet_"),
    ("--milvus-timeout-s", "milvus_timeout_s", float, "per Milvus request (default 10)"),
    ("--models-dir", "models_dir", Path, "model repository: NAME/VERSION/model.pt or *.pt"),
    ("--model-poll-s", "model_poll_s", float, "rescan --models-dir every N s, 0 = off (30)"),
    ("--default-model", "default_model", str, "model of banks created without one"),
    ("--max-message-bytes", "max_message_bytes", int, "gRPC message limit (default 64 MiB)"),
    ("--worker-threads", "worker_threads", int, "RPC handler threads (default 32)"),
    ("--grace-s", "grace_s", float, "drain time on shutdown in seconds (default 10)"),
    ("--api-keys-file", "api_keys_file", Path, "JSON/TOML API keys; unset = no auth"),
    ("--tls-cert-file", "tls_cert_file", Path, "PEM certificate chain; enables TLS"),
    ("--tls-key-file", "tls_key_file", Path, "PEM private key"),
    ("--tls-client-ca-file", "tls_client_ca_file", Path, "PEM CA bundle; requires client certs"),
    ("--log-format", "log_format", str, "json | text (default json)"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the gRPC server",
        description="Serve memnet over gRPC. Every setting is also MEMNET_<NAME> in the "
        "environment or a key of the --config TOML file (see docs/server.md).",
    )
    parser.add_argument("--config", type=Path, default=None, help="TOML settings file")
    for flag, dest, kind, text in _FLAGS:
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=text)
    batching = parser.add_mutually_exclusive_group()
    batching.add_argument(
        "--batching", dest="batching_enabled", action="store_true", default=None,
        help="batch concurrent queries per bank (default on)",
    )  # fmt: skip
    batching.add_argument(
        "--no-batching", dest="batching_enabled", action="store_false",
        help="run every query on its own",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # One OpenMP thread per FAISS search / torch op unless the caller chose otherwise:
    # concurrency comes from the RPC threads, and OpenMP teams spinning on 2 busy cores
    # made batched queries slower (docs/server.md). Must precede the torch/faiss import.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # faiss's loader logs which CPU build it loads (and which it could not) at INFO while
    # the server is imported, before the JSON log handler exists: keep that out of the logs.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    from memnet_server import create_server, load_settings
    from memnet_server.logs import configure_logging

    flags = {dest: getattr(args, dest) for _, dest, _, _ in _FLAGS}
    flags["batching_enabled"] = args.batching_enabled
    settings = load_settings(args.config, **flags)
    configure_logging(settings.log_format, settings.log_level)
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        LOG.info("received %s; stopping", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server, port = create_server(settings)
    where = f"Milvus at {settings.milvus_uri}" if settings.store == "milvus" else settings.data_dir
    LOG.info("memnet serving on %s:%d (banks in %s)", settings.host, port, where)
    while not stop_requested.wait(0.5):
        pass
    server.stop(settings.grace_s).wait()
    return 0
