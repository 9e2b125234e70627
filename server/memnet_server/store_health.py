"""The store behind the server: opening the milvus store, and health that follows it.

``StoreHealth`` asks the store (``BankStore.status``) at start and then every
``HEALTH_CHECK_INTERVAL_S``, and sets every gRPC health service SERVING or NOT_SERVING
to match: a server whose Milvus is down or too slow to answer reports NOT_SERVING (so
a load balancer or Kubernetes readiness probe takes it out of rotation) until Milvus
answers again. The FAISS store is serving from open to close.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from grpc_health.v1 import health_pb2

from memnet.errors import MemnetError
from memnet.store.interface import BankStore
from memnet.store.types import StoreLimits
from memnet_server.config import ServerSettings
from memnet_server.loop import HealthBoard

LOG = logging.getLogger(__name__)

HEALTH_CHECK_INTERVAL_S = 2.0


def open_milvus_store(settings: ServerSettings, limits: StoreLimits) -> BankStore:
    """The milvus store of ``settings`` (needs ``pip install memnet[milvus]``)."""
    from memnet.store_milvus import MilvusSettings, MilvusStore

    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    return MilvusStore(
        MilvusSettings(
            uri=settings.milvus_uri,
            token=token,
            db=settings.milvus_db,
            collection_prefix=settings.milvus_collection_prefix,
            timeout_s=settings.milvus_timeout_s,
        ),
        limits,
    )


def bank_sizes(store: BankStore) -> list[tuple[str, int]]:
    """(name, live memories) of every bank; none while the store cannot answer."""
    try:
        return [(bank.name, bank.count()) for bank in store.banks()]
    except MemnetError as error:
        LOG.debug("bank sizes unavailable: %s", error)
        return []


class StoreHealth:
    """Keeps the gRPC health of ``services`` in step with ``store.status()``."""

    def __init__(
        self,
        store: BankStore,
        servicer: HealthBoard,
        services: Sequence[str],
        *,
        interval_s: float = HEALTH_CHECK_INTERVAL_S,
    ) -> None:
        self._store = store
        self._servicer = servicer
        self._services = tuple(services)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.serving: bool | None = None  # None until the first check
        self.check()
        self._thread = threading.Thread(target=self._loop, name="memnet-store-health", daemon=True)
        self._thread.start()

    def check(self) -> bool:
        """Ask the store once and publish the answer; returns whether it serves."""
        try:
            status = self._store.status()
            serving, detail = status.serving, status.detail
        except Exception as error:  # a status check must never kill the loop
            serving, detail = False, f"{type(error).__name__}: {error}"
        if serving != self.serving:
            if serving:
                LOG.info("store serving")
            else:
                LOG.warning("store not serving: %s", detail)
            code = (
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in self._services:
                self._servicer.set(name, code)
            self.serving = serving
        return serving

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.check()

    def stop(self) -> None:
        self._stop.set()
