"""Fixtures shared by every test directory: a Milvus Lite server for the milvus store.

The server starts once per session, on first use, in its own process on 127.0.0.1
(see ``lite_server_support``); tests on it isolate themselves by collection prefix.
Without milvus-lite installed, tests that ask for it are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lite_server_support import LiteServer, skip_without_milvus_lite


@pytest.fixture(scope="session")
def milvus_lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteServer]:
    skip_without_milvus_lite()
    data_dir: Path = tmp_path_factory.mktemp("milvus-lite")
    server = LiteServer.start(data_dir)
    yield server
    server.kill()  # its data is temporary: no need to wait for a clean shutdown
