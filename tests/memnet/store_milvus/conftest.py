"""``milvus_store``: a fresh ``MilvusStore`` (own collection prefix) on the session's
Milvus Lite server; ``milvus_settings`` its settings, to open a second store on them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from lite_server_support import LiteServer, unique_prefix


@pytest.fixture
def milvus_settings(milvus_lite: LiteServer) -> Any:
    from memnet.store_milvus import MilvusSettings

    return MilvusSettings(uri=milvus_lite.uri, collection_prefix=unique_prefix(), timeout_s=30.0)


@pytest.fixture
def milvus_store(milvus_settings: Any) -> Iterator[Any]:
    from memnet.store_milvus import MilvusStore

    store = MilvusStore(milvus_settings)
    yield store
    store.close()
