"""/metrics has no authentication: which bank names it shows is a setting
(``metrics_bank_labels``: names, hashed, none), and metrics are off unless a port is set."""

from __future__ import annotations

import logging
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from server_support import Running, StartServer

from memnet.errors import InvalidArgument
from memnet_server import load_settings
from memnet_server.metrics import LABEL_KEY_FILE, hashed_label

BANKS = {"tenant-alpha": 2, "tenant-beta": 3}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scrape(server: Running) -> str:
    url = f"http://127.0.0.1:{server.service.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def _start(start_server: StartServer, data_dir: Path, **overrides: object) -> Running:
    return start_server(metrics_port=_free_port(), data_dir=data_dir, **overrides)


def _fill(server: Running) -> None:
    for name, count in BANKS.items():
        server.vector_bank(name, 4)
        server.write_vectors(name, np.ones((count, 4), np.float32))


def test_names_label_each_bank_by_its_name(start_server: StartServer, tmp_path: Path) -> None:
    server = _start(start_server, tmp_path / "data", metrics_bank_labels="names")
    _fill(server)
    text = _scrape(server)
    for name, count in BANKS.items():
        assert f'memnet_bank_memories{{bank="{name}"}} {count}.0' in text


def test_hashed_labels_hide_names_and_stay_stable_across_restarts(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    caplog.set_level(logging.INFO, logger="memnet_server.metrics")
    server = _start(start_server, data_dir)  # hashed is the default
    _fill(server)
    text = _scrape(server)
    assert "tenant" not in text
    key = (data_dir / LABEL_KEY_FILE).read_bytes()
    assert len(key) == 32 and (data_dir / LABEL_KEY_FILE).stat().st_mode & 0o077 == 0
    labels = {name: hashed_label(name, key) for name in BANKS}
    for name, count in BANKS.items():
        assert f'memnet_bank_memories{{bank="{labels[name]}"}} {count}.0' in text
        assert f"bank {name} has metrics label {labels[name]}" in caplog.text  # for operators
    server.channel.close()
    server.service.stop(0).wait(10)
    again = _scrape(_start(start_server, data_dir))
    assert all(f'bank="{label}"' in again for label in labels.values())


def test_none_reports_one_total_without_bank_labels(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = _start(start_server, tmp_path / "data", metrics_bank_labels="none")
    _fill(server)
    text = _scrape(server)
    assert "tenant" not in text and 'bank="' not in text
    assert f"memnet_bank_memories {sum(BANKS.values())}.0" in text


def test_the_label_policy_and_the_port_come_from_flags_environment_and_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MEMNET_METRICS_PORT", "MEMNET_METRICS_BANK_LABELS", "MEMNET_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    defaults = load_settings()
    assert (defaults.metrics_port, defaults.metrics_bank_labels) == (0, "hashed")
    monkeypatch.setenv("MEMNET_METRICS_BANK_LABELS", "none")
    monkeypatch.setenv("MEMNET_METRICS_PORT", "9464")  # as the container image sets it
    from_env = load_settings()
    assert (from_env.metrics_port, from_env.metrics_bank_labels) == (9464, "none")
    assert load_settings(metrics_bank_labels="names").metrics_bank_labels == "names"
    with pytest.raises(InvalidArgument, match="metrics_bank_labels"):
        load_settings(metrics_bank_labels="everything")
