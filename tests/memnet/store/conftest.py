"""``backend``: the store contract tests run once on each store backend.

``faiss`` is ``MemoryStore`` over a temporary directory; ``milvus`` is ``MilvusStore``
on the session's Milvus Lite server with a collection prefix of its own. Its
collections stay until the server (and its temporary data) goes at the end of the
session: dropping a filled collection costs Milvus Lite seconds. A reopen of a milvus
store is a new ``MilvusStore`` on the same prefix: it finds its banks in the catalog.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lite_server_support import unique_prefix
from store_testlib import FAISS, MILVUS, Backend

from memnet.store import MemoryStore, StoreSettings


@pytest.fixture(params=[FAISS, MILVUS])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == FAISS:

        def open_faiss(**settings: Any) -> MemoryStore:
            return MemoryStore(tmp_path, StoreSettings(**settings))

        yield Backend(FAISS, open_faiss)
        return
    server = request.getfixturevalue("milvus_lite")
    from memnet.store_milvus import MilvusSettings, MilvusStore

    milvus = MilvusSettings(uri=server.uri, collection_prefix=unique_prefix(), timeout_s=30.0)

    def open_milvus(**settings: Any) -> MilvusStore:
        return MilvusStore(milvus, StoreSettings(**settings).limits)

    yield Backend(MILVUS, open_milvus)
