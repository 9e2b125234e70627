"""A real memnet server on 127.0.0.1 (port 0) for the SDK and CLI tests, plus helpers."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator

import pytest
from client_support import API_KEYS, FAST_RETRY, TEXT_MODEL, RunningServer, serve

from memnet_client import MemnetClient


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One plaintext server without auth, shared by the whole client test session."""
    with serve(tmp_path_factory.mktemp("memnet-data")) as running:
        yield running


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server that requires API keys (``API_KEYS``)."""
    directory = tmp_path_factory.mktemp("memnet-auth")
    keys_file = directory / "keys.json"
    keys_file.write_text(json.dumps(API_KEYS))
    with serve(directory / "data", api_keys_file=keys_file) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[MemnetClient]:
    with MemnetClient(server.target, retry=FAST_RETRY) as sdk:
        yield sdk


_names = itertools.count()


@pytest.fixture
def bank_name(request: pytest.FixtureRequest) -> Callable[[], str]:
    """Unique bank names per test (the session server is shared)."""
    stem = request.node.name.replace("[", "-").replace("]", "")[:40].strip("-_.")

    def make() -> str:
        return f"{stem}-{next(_names)}"

    return make


@pytest.fixture
def text_model(client: MemnetClient) -> str:
    """The shipped bAbI model's name; it ships with the package, so it must be served."""
    names = {m.name for m in client.list_models()}
    assert TEXT_MODEL in names, f"shipped model {TEXT_MODEL!r} not served (got {sorted(names)})"
    return TEXT_MODEL
