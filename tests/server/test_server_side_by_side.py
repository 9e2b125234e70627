"""Two ``memnet serve`` processes with default settings on one machine: both start (the
metrics port is off unless set), and every line either writes is a JSON log record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

MEMNET = str(Path(sys.executable).with_name("memnet"))  # the console script of this venv
START_TIMEOUT_S = 120.0


class ServeProcess:
    """``memnet serve --port 0`` with MEMNET_* scrubbed from its environment; collects
    every stdout and stderr line and the port it logged."""

    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMNET_")}
        self.process = subprocess.Popen(
            [MEMNET, "serve", "--port", "0", "--data-dir", str(data_dir)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.port = 0
        self.serving = threading.Event()
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))
            if '"msg": "serving"' in line:
                self.port = int(json.loads(line)["address"].rsplit(":", 1)[1])
                self.serving.set()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        for reader in self._readers:
            reader.join(5)
        return code


def test_two_default_servers_start_side_by_side_and_log_only_json(tmp_path: Path) -> None:
    servers = [ServeProcess(tmp_path / f"data-{i}") for i in range(2)]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        for server in servers:
            while not server.serving.wait(0.2):
                assert server.process.poll() is None, "exited:\n" + "\n".join(server.lines)
                assert time.monotonic() < deadline, "never served:\n" + "\n".join(server.lines)
        for server in servers:
            with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
                assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        codes = [server.stop() for server in servers]
    assert codes == [0, 0]
    for server in servers:
        assert server.lines, "the server logged nothing"
        for line in server.lines:
            record = json.loads(line)  # fails on any plain-text line (faiss's loader, ...)
            assert {"ts", "level", "logger", "msg"} <= record.keys(), line
        assert not any(json.loads(line)["logger"].startswith("faiss") for line in server.lines)
