"""Prometheus metrics, served on their own port from a registry owned by one server.

The endpoint has no authentication, so bank names (which may be tenants' names) appear
in it only when asked for: ``bank_labels`` is ``names`` (the bank's name), ``hashed`` (a
keyed hash, stable across restarts, that the server log maps to the name) or ``none``
(one series: the memories of all banks).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

LOG = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

BankSizes = Callable[[], list[tuple[str, int]]]
BankLabels = Literal["names", "hashed", "none"]
LABEL_KEY_FILE = "metrics-label.key"  # in the data directory: the key of hashed bank labels


def label_key(data_dir: Path) -> bytes:
    """The data directory's key for hashed bank labels, created (32 random bytes) once."""
    path = data_dir / LABEL_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    key = os.urandom(32)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    return key


def hashed_label(name: str, key: bytes) -> str:
    """``h-`` and 16 hex digits of HMAC-SHA256(key, name): unguessable without the key."""
    return "h-" + hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:16]


class _BankSizeCollector(Collector):
    def __init__(self, bank_sizes: BankSizes, *, labels: BankLabels, key: bytes | None) -> None:
        assert (labels == "hashed") == (key is not None)
        self._bank_sizes = bank_sizes
        self._labels = labels
        self._key = key
        self._announced: set[str] = set()  # banks whose hashed label was logged

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sizes = self._bank_sizes()
        if self._labels == "none":
            total = GaugeMetricFamily(
                "memnet_bank_memories", "Live memories in all banks (bank labels off)."
            )
            total.add_metric([], sum(count for _, count in sizes))
            yield total
            return
        gauge = GaugeMetricFamily(
            "memnet_bank_memories", "Live memories per bank.", labels=["bank"]
        )
        for name, count in sizes:
            gauge.add_metric([self._label(name)], count)
        yield gauge

    def _label(self, name: str) -> str:
        if self._key is None:
            return name
        label = hashed_label(name, self._key)
        if name not in self._announced:
            self._announced.add(name)
            LOG.info("bank %s has metrics label %s", name, label)
        return label


ModelVersions = Callable[[], list[tuple[str, int, str]]]  # (name, version, state)


class _ModelCollector(Collector):
    def __init__(self, versions: ModelVersions, load_failures: Callable[[], int]) -> None:
        self._versions = versions
        self._load_failures = load_failures

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        gauge = GaugeMetricFamily(
            "memnet_model_versions",
            "Model versions the server knows (1 each), by model, version and state.",
            labels=["model", "version", "state"],
        )
        for name, version, state in self._versions():
            gauge.add_metric([name, str(version), state], 1)
        yield gauge
        yield CounterMetricFamily(
            "memnet_model_load_failures",
            "Checkpoints that failed to load since the server started.",
            value=self._load_failures(),
        )


class Metrics:
    """Request counts and latencies by method and status code, batch sizes, bank sizes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "memnet_requests",
            "RPCs finished, by method and status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.errors = Counter(
            "memnet_errors",
            "RPCs that ended with a status other than OK, by method and code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "memnet_request_latency_seconds",
            "RPC handling time in seconds, by method.",
            ["method"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "memnet_query_batch_size",
            "Questions per model forward (dynamic batching).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._series: dict[tuple[str, str], tuple[Counter, Counter | None, Histogram]] = {}
        self._http: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def observe_call(self, method: str, code: str, latency_s: float) -> None:
        series = self._series.get((method, code))
        if series is None:  # the labelled children, looked up once per method and code
            errors = self.errors.labels(method, code) if code != "OK" else None
            series = (self.requests.labels(method, code), errors, self.latency.labels(method))
            self._series[method, code] = series
        requests, errors, latency = series
        requests.inc()
        if errors is not None:
            errors.inc()
        latency.observe(latency_s)

    def observe_batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def watch_banks(
        self, bank_sizes: BankSizes, *, labels: BankLabels, key: bytes | None = None
    ) -> None:
        """Report ``bank_sizes()`` at scrape time; ``key`` is required for hashed labels."""
        self.registry.register(_BankSizeCollector(bank_sizes, labels=labels, key=key))

    def watch_models(self, versions: ModelVersions, load_failures: Callable[[], int]) -> None:
        """Export the loaded model versions and the count of failed checkpoint loads."""
        self.registry.register(_ModelCollector(versions, load_failures))

    def serve(self, host: str, port: int) -> int:
        """Start the /metrics HTTP endpoint; returns the port it listens on."""
        self._http, self._thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(self._http.server_port)
        LOG.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
