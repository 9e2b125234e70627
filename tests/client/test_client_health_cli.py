"""``memnet health`` (the container HEALTHCHECK) against a live server and a dead port."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from client_support import RunningServer, self_signed, serve

from memnet_cli import main


def test_health_exits_0_and_prints_serving_for_a_live_server(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", "--target", server.target, "--timeout-s", "5"]) == 0
    assert capsys.readouterr().out.strip() == f"{server.target}: SERVING"


def test_health_exits_1_when_nothing_listens(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    assert main(["health", "--target", f"127.0.0.1:{closed_port}", "--timeout-s", "1"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_health_target_defaults_to_memnet_port(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMNET_PORT", server.target.rsplit(":", 1)[1])
    assert main(["health", "--timeout-s", "5"]) == 0
    assert "SERVING" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_health_speaks_tls_with_the_given_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = self_signed(tmp_path, "localhost", alt_names="DNS:localhost,IP:127.0.0.1")
    with serve(tmp_path / "data", tls_cert_file=cert, tls_key_file=key) as running:
        target = running.target
        assert main(["health", "--target", target, "--tls-ca", str(cert), "--timeout-s", "5"]) == 0
        assert "SERVING" in capsys.readouterr().out
        assert main(["health", "--target", target, "--timeout-s", "2"]) == 1  # plaintext refused
