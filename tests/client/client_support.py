"""Constants and helpers shared by the client tests (a unique module name, no package)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memnet_client import RetryPolicy
from memnet_server import ServerSettings, create_server

TEXT_MODEL = "babi-joint"
# Writers may use any key; "reader" may only read banks named "shared-*".
API_KEYS = {
    "keys": [
        {"name": "writer", "key": "writer-key", "banks": ["*"], "rights": "write"},
        {"name": "reader", "key": "reader-key", "banks": ["shared-*"], "rights": "read"},
    ]
}
# Story 1 of bAbI qa1 (test split), without its questions.
QA1_STORY = [
    "John travelled to the hallway.",
    "Mary journeyed to the bathroom.",
    "Daniel went back to the bathroom.",
    "John moved to the bedroom.",
]
FAST_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class RunningServer:
    target: str
    data_dir: Path


def one_hot_keys(n: int, dim: int, *, scale: float = 10.0) -> np.ndarray:
    """(n, dim) float32 keys, row i = scale * e_(i mod dim): query e_i picks memory i."""
    keys = np.zeros((n, dim), dtype=np.float32)
    keys[np.arange(n), np.arange(n) % dim] = scale
    return keys


@contextmanager
def serve(data_dir: Path, **overrides: object) -> Iterator[RunningServer]:
    """A real server on 127.0.0.1, port 0, over ``data_dir``; settings overridden by name."""
    settings = ServerSettings(
        host="127.0.0.1",
        port=0,
        data_dir=data_dir,
        metrics_port=0,
        log_level="WARNING",
        log_format="text",
        grace_s=0.0,
        **overrides,  # type: ignore[arg-type]
    )
    server, port = create_server(settings)
    try:
        yield RunningServer(target=f"127.0.0.1:{port}", data_dir=data_dir)
    finally:
        server.stop(0).wait(10)


def self_signed(directory: Path, name: str, *, alt_names: str | None = None) -> tuple[Path, Path]:
    """A self-signed certificate and key for CN ``name`` (made with the openssl CLI).

    ``alt_names`` is the subjectAltName list, default ``DNS:<name>``.
    """
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={name}", "-addext", f"subjectAltName={alt_names or f'DNS:{name}'}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key
