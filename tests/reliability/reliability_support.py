"""Shared helpers of the reliability tests: the short/long switch, a
``memnet serve`` subprocess, an in-process server, and the figures each test reports.

``MEMNET_RELIABILITY=long`` selects the long versions (``scripts/reliability_long.sh``);
anything else runs the short CI versions. ``MEMNET_RELIABILITY_FIGURES=<path>``
appends every figure a test measures to that file as one JSON object per line
(``docs/reliability.md`` quotes them).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, bank_pb2_grpc, memory_pb2, memory_pb2_grpc, query_pb2_grpc
from memnet_server import MemnetService, ServerSettings, create_server
from memnet_server.app import load_models
from memnet_server.binding import ModelCatalog

LOG = logging.getLogger(__name__)

MODE_ENV = "MEMNET_RELIABILITY"
FIGURES_ENV = "MEMNET_RELIABILITY_FIGURES"
LONG = os.environ.get(MODE_ENV, "").strip().lower() == "long"
MEMNET = Path(sys.executable).with_name("memnet")
LOCALHOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


def scale(short: int, long: int) -> int:
    """``long`` under MEMNET_RELIABILITY=long, else ``short``."""
    return long if LONG else short


def scale_s(short: float, long: float) -> float:
    return long if LONG else short


def record_figures(test: str, **figures: Any) -> None:
    """Log what a test measured and, if asked, append it to the figures file."""
    entry = {"test": test, "mode": "long" if LONG else "short", **figures}
    LOG.info("reliability figures: %s", json.dumps(entry, sort_keys=True))
    target = os.environ.get(FIGURES_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")


def percentile_ms(latencies_s: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(latencies_s, dtype=np.float64), q) * 1e3)


# ---- a memnet server as a subprocess ------------------------------------------------------


@dataclass
class ServeProcess:
    """``memnet serve`` on 127.0.0.1 (port 0) over ``data_dir``; stderr goes to ``log_path``."""

    data_dir: Path
    log_path: Path
    extra_args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    startup_s: float = 0.0
    log_offset: int = 0  # where this start's lines begin in the log file

    def start(self, *, timeout_s: float = STARTUP_TIMEOUT_S) -> int:
        """Start the server and wait until health says SERVING; returns the port."""
        assert self.process is None or self.process.poll() is not None, "already running"
        env = {**os.environ, "MEMNET_LOG_FORMAT": "json", **self.env}
        args = [str(MEMNET), "serve", "--host", LOCALHOST, "--port", "0", "--metrics-port", "0"]
        args += ["--data-dir", str(self.data_dir), *self.extra_args]
        started = time.monotonic()
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
            )
        self.port = self._wait_for_port(started + timeout_s)
        with grpc.insecure_channel(f"{LOCALHOST}:{self.port}") as channel:
            wait_serving(channel, deadline=started + timeout_s)
        self.startup_s = time.monotonic() - started
        return self.port

    def _wait_for_port(self, deadline: float) -> int:
        assert self.process is not None
        while time.monotonic() < deadline:
            for entry in self.log_entries(since_start=True):
                if entry.get("msg") == "serving":
                    return int(str(entry["address"]).rsplit(":", 1)[1])
            code = self.process.poll()
            if code is not None:
                raise AssertionError(
                    f"memnet serve exited with {code} before serving:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        raise AssertionError(f"memnet serve did not log 'serving' in time:\n{self.log_tail()}")

    @property
    def target(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def log_entries(self, *, since_start: bool = False) -> list[dict[str, Any]]:
        """The JSON log lines written so far (of this start only with ``since_start``)."""
        if not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as handle:
            if since_start:
                handle.seek(self.log_offset)
            lines = handle.read().decode("utf-8", "replace").splitlines()
        entries = []
        for line in lines:
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return entries

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])

    def rss_kib(self) -> int:
        """Resident memory of the server process (VmRSS), KiB."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def kill(self) -> None:
        """SIGKILL the server (no-op if it is not running) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def terminate(self, *, timeout_s: float = 30.0) -> int:
        """SIGTERM (graceful stop); returns the exit code (SIGKILLs after ``timeout_s``)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


@contextmanager
def serve_process(
    data_dir: Path, log_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[ServeProcess]:
    """A ``ServeProcess`` (not yet started) that is always killed on exit."""
    server = ServeProcess(data_dir=data_dir, log_path=log_path, extra_args=args, env=env or {})
    try:
        yield server
    finally:
        server.kill()


def wait_serving(channel: grpc.Channel, *, deadline: float) -> None:
    """Poll the health service until it answers SERVING (AssertionError past ``deadline``)."""
    stub = health_pb2_grpc.HealthStub(channel)
    last: object = None
    while time.monotonic() < deadline:
        try:
            status = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
            if status == health_pb2.HealthCheckResponse.SERVING:
                return
            last = status
        except grpc.RpcError as error:
            last = error.code()
        time.sleep(0.05)
    raise AssertionError(f"server not SERVING in time (last answer {last})")


# ---- raw stubs ------------------------------------------------------------------------------


@dataclass
class Stubs:
    channel: grpc.Channel
    banks: bank_pb2_grpc.BankServiceStub = field(init=False)
    memories: memory_pb2_grpc.MemoryServiceStub = field(init=False)
    queries: query_pb2_grpc.QueryServiceStub = field(init=False)

    def __post_init__(self) -> None:
        self.banks = bank_pb2_grpc.BankServiceStub(self.channel)
        self.memories = memory_pb2_grpc.MemoryServiceStub(self.channel)
        self.queries = query_pb2_grpc.QueryServiceStub(self.channel)


def vector_bank_request(name: str, dim: int) -> bank_pb2.CreateBankRequest:
    spec = bank_pb2.BankSpec(name=name, model="vector", key_dim=dim, value_dim=dim)
    return bank_pb2.CreateBankRequest(spec=spec)


def write_request(
    bank: str, keys: np.ndarray, ids: Sequence[str], values: np.ndarray | None = None
) -> memory_pb2.WriteMemoriesRequest:
    batch = memory_pb2.MemoryBatch(
        memories=[memory_pb2.MemoryInput(id=i) for i in ids],
        keys=to_tensor(keys),
        values=to_tensor(keys if values is None else values),
    )
    return memory_pb2.WriteMemoriesRequest(bank=bank, batch=batch)


def keys_for(ids: Sequence[str], dim: int) -> np.ndarray:
    """(N, dim) float32 vectors that depend only on each id (so any reader can re-derive them)."""
    rows: list[np.ndarray] = []
    for memory_id in ids:
        seed = zlib.crc32(memory_id.encode())
        rows.append(np.random.default_rng(seed).standard_normal(dim).astype(np.float32))
    return np.stack(rows) if rows else np.zeros((0, dim), np.float32)


def fetch_keys(
    stubs: Stubs, bank: str, ids: Sequence[str], *, chunk: int = 2000
) -> dict[str, np.ndarray]:
    """id → stored key vector for every id the bank holds (absent ids are left out)."""
    from memnet.api.tensors import from_tensor

    found: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), chunk):
        request = memory_pb2.GetMemoriesRequest(
            bank=bank, ids=list(ids[start : start + chunk]), include_vectors=True
        )
        response = stubs.memories.GetMemories(request, timeout=30)
        for memory in response.memories:
            found[memory.id] = from_tensor(memory.key, field="key")
    return found


# ---- a memnet server in this process --------------------------------------------------------


@functools.cache
def shipped_models() -> ModelCatalog:
    """The shipped model registry, loaded once per test session."""
    return load_models(ServerSettings())


def start_in_process(data_dir: Path, **overrides: Any) -> tuple[MemnetService, int]:
    """``create_server`` on 127.0.0.1, port 0, with the shipped models (the caller stops it)."""
    values: dict[str, Any] = {
        "host": LOCALHOST,
        "port": 0,
        "metrics_port": 0,
        "data_dir": data_dir,
        "grace_s": 0.0,
        "log_format": "text",
    }
    settings = ServerSettings(**{**values, **overrides})
    return create_server(settings, models=shipped_models())


@contextmanager
def in_process_server(data_dir: Path, **overrides: Any) -> Iterator[tuple[MemnetService, int]]:
    """``start_in_process``, stopped on exit."""
    service, port = start_in_process(data_dir, **overrides)
    try:
        yield service, port
    finally:
        service.stop(0).wait(STOP_TIMEOUT_S)
