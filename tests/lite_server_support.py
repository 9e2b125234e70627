"""Milvus Lite as its own server process on 127.0.0.1, for the milvus store's tests.

``LiteServer.start(data_dir)`` runs Milvus Lite's gRPC server in a child process on a
port the kernel picks (port 0; the child prints the port it bound), so test servers
never race for a port. ``stop`` ends it with SIGTERM (SIGKILL after a grace),
``kill`` with SIGKILL; ``restart`` starts it again on the same port and data.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

START_TIMEOUT_S = 120.0  # a cold start imports pyarrow and faiss on a busy machine
CONNECT_TIMEOUT_S = 60.0  # pymilvus gives up after 10 s; a busy shared Lite can take longer

# pymilvus pings its channels every 10 s, idle or not (keepalive_permit_without_calls);
# gRPC's server defaults answer a client that pings more often than every 5 minutes
# without data with GOAWAY "Too many pings", which failed a test client's connect after
# an idle spell of the shared server. The Lite server here accepts a ping every 5 s.
_LAUNCHER = """
import signal, sys
import grpc

_server = grpc.server
PINGS = [("grpc.http2.min_ping_interval_without_data_ms", 5000), ("grpc.http2.max_ping_strikes", 0)]
grpc.server = lambda *args, options=(), **kw: _server(*args, options=[*options, *PINGS], **kw)

from milvus_lite.adapter.grpc.server import start_server_in_thread

server, db, port = start_server_in_thread(sys.argv[1], host="127.0.0.1", port=int(sys.argv[2]))
signal.signal(signal.SIGTERM, lambda *_: (server.stop(1).wait(5), db.close(), sys.exit(0)))
print(port, flush=True)
server.wait_for_termination()
"""


def milvus_lite_missing() -> str:
    """Why the milvus store cannot be tested here ("" when it can)."""
    for module, package in (("pymilvus", "pymilvus"), ("milvus_lite", "milvus-lite")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed (pip install -e '.[milvus]')"
    return ""


def skip_without_milvus_lite() -> None:
    missing = milvus_lite_missing()
    if missing:
        pytest.skip(f"milvus store tests skipped: {missing}")


@dataclass
class LiteServer:
    """A running Milvus Lite server process."""

    data_dir: Path
    port: int
    process: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, data_dir: Path, *, port: int = 0) -> LiteServer:
        process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(data_dir), str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        first: list[str] = []
        reader = threading.Thread(
            target=lambda: first.append(process.stdout.readline() if process.stdout else ""),
            daemon=True,
        )
        reader.start()
        reader.join(START_TIMEOUT_S)
        line = first[0].strip() if first else ""
        if not line.isdigit():
            process.kill()
            rest = process.communicate(timeout=10)[0]
            raise RuntimeError(f"Milvus Lite did not start: {line!r} {rest[-2000:]}")
        server = cls(data_dir, int(line), process)
        threading.Thread(target=server._drain, daemon=True).start()
        return server

    def _drain(self) -> None:
        """Keep reading the child's output so it never blocks on a full pipe."""
        stream = self.process.stdout
        if stream is not None:
            for line in stream:
                self.log.append(line)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def restart(self) -> LiteServer:
        """The same data directory served again on the same port."""
        self.stop()
        deadline = time.monotonic() + 30
        while True:
            try:
                return LiteServer.start(self.data_dir, port=self.port)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def lite_client(uri: str, db_name: str = "") -> Any:
    """A pymilvus client for a test's own checks on the Lite server, patient with a busy one."""
    from pymilvus import MilvusClient

    return MilvusClient(uri=uri, db_name=db_name, timeout=CONNECT_TIMEOUT_S)


def unique_prefix() -> str:
    """A collection prefix no other test uses on a shared server."""
    return f"t{uuid.uuid4().hex[:12]}_"
