"""A real memnet server on 127.0.0.1, port 0, over a temporary data directory.

``start_server(**overrides)`` starts servers with test settings (metrics off, short
grace) and stops them at teardown; ``server`` is one started with defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from server_support import Running, StartServer

from memnet_server import ServerSettings, create_server
from memnet_server.app import load_models
from memnet_server.binding import ModelCatalog


@pytest.fixture(scope="session")
def shipped_models() -> ModelCatalog:
    return load_models(ServerSettings())


@pytest.fixture
def start_server(tmp_path: Path, shipped_models: ModelCatalog) -> Iterator[StartServer]:
    started: list[Running] = []

    def start(
        *,
        models: ModelCatalog | None = None,
        data_dir: Path | None = None,
        channel: grpc.Channel | None = None,
        **overrides: Any,
    ) -> Running:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "metrics_port": 0,
            "data_dir": data_dir or tmp_path / "data",
            "grace_s": 1.0,
            "log_format": "text",
        }
        settings = ServerSettings(**{**values, **overrides})
        service, port = create_server(settings, models=models or shipped_models)
        target = f"127.0.0.1:{port}"
        options = [("grpc.max_receive_message_length", settings.max_message_bytes)]
        channel = channel or grpc.insecure_channel(target, options=options)
        running = Running(service, port, settings, channel)
        started.append(running)
        return running

    yield start
    for running in started:
        running.channel.close()
        running.service.stop(0).wait(10)


@pytest.fixture
def server(start_server: StartServer) -> Running:
    return start_server()
