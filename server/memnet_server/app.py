"""Assembly: ``create_server(settings) -> (server, port)``.

The returned server is a ``MemnetService``: a ``grpc.Server`` whose ``stop(grace)``
shuts down gracefully — health NOT_SERVING, refuse new RPCs and drain running ones
for ``grace`` seconds, wait for handlers to return, then close the store (fsync +
snapshot) and the metrics endpoint.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from collections.abc import Iterable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from memnet.api.v1 import (
    bank_pb2,
    bank_pb2_grpc,
    memory_pb2,
    memory_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)
from memnet.errors import FailedPrecondition
from memnet.serving.repository import ModelRepository
from memnet.store import MemoryStore
from memnet.store.interface import BankStore
from memnet.store.types import StoreLimits, StoreSettings
from memnet_server.auth import KeyRing
from memnet_server.binding import ModelCatalog
from memnet_server.config import MIB, ServerSettings
from memnet_server.engine import Engine
from memnet_server.interceptors import CallInterceptor
from memnet_server.loop import HealthBoard, LoopBatcher, ServerLoop
from memnet_server.metrics import Metrics, label_key
from memnet_server.model_poller import ModelPoller
from memnet_server.placement import Placement
from memnet_server.reflection import enable_reflection
from memnet_server.servicers.bank import BankServicer
from memnet_server.servicers.memory import MemoryServicer
from memnet_server.servicers.model import ModelServicer
from memnet_server.servicers.query import QueryServicer
from memnet_server.store_health import StoreHealth, bank_sizes, open_milvus_store

LOG = logging.getLogger(__name__)

SERVICE_NAMES: tuple[str, ...] = (
    bank_pb2.DESCRIPTOR.services_by_name["BankService"].full_name,
    memory_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name,
    query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name,
    model_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
)
HANDLER_DRAIN_S = 5.0  # extra wait, after the gRPC grace, for handler threads to return
# Health name that is SERVING once every bank has opened (or been quarantined); the
# service itself ("") serves the open banks while others still replay their logs.
BANKS_HEALTH_NAME = "memnet.banks"
QUERY_METHOD = "/memnet.api.v1.QueryService/Query"


def load_models(settings: ServerSettings) -> ModelRepository:
    """The shipped models plus every checkpoint of ``settings.models_dir``
    (``NAME/VERSION/model.pt``, or ``*.pt`` as version 1 of the name stored in it)."""
    repository = ModelRepository(models_dir=settings.models_dir)
    repository.refresh()
    return repository


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    pair = (settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())
    client_ca = settings.tls_client_ca_file
    return grpc.ssl_server_credentials(
        [pair],
        root_certificates=client_ca.read_bytes() if client_ca is not None else None,
        require_client_auth=client_ca is not None,
    )


class MemnetService(grpc.Server):
    """A running memnet server: the gRPC server plus the loop, store, engine and metrics
    it owns. Every method may be called from any thread but the server's loop."""

    def __init__(
        self,
        server: grpc.aio.Server,
        *,
        loop: ServerLoop,
        pool: futures.ThreadPoolExecutor,
        engine: Engine,
        health_board: HealthBoard,
        interceptor: CallInterceptor,
        metrics: Metrics,
        settings: ServerSettings,
    ) -> None:
        self.server = server
        self.loop = loop
        self.engine = engine
        self.health = health_board
        self.metrics = metrics
        self.settings = settings
        self.port = 0
        self.metrics_port = 0
        self._pool = pool
        self._interceptor = interceptor
        self._stopped: threading.Event | None = None
        self._terminated = threading.Event()  # the gRPC server has stopped
        self._stop_lock = threading.Lock()
        self.poller: ModelPoller | None = None
        self.store_health: StoreHealth | None = None  # set once the server has started

    def stop(self, grace: float | None = None) -> threading.Event:
        """NOT_SERVING → drain for ``grace`` seconds → stop → close the store. Idempotent;
        the returned event is set once the store is closed."""
        with self._stop_lock:
            if self._stopped is not None:
                return self._stopped
            self._stopped = threading.Event()
        LOG.info("shutting down", extra={"grace_s": grace})
        if self.store_health is not None:
            self.store_health.stop()
        self.health.enter_graceful_shutdown()
        grpc_done = asyncio.run_coroutine_threadsafe(self.server.stop(grace), self.loop.loop)
        done = self._stopped

        def finish() -> None:
            try:
                grpc_done.result()
                self._terminated.set()
                idle = self._interceptor.wait_idle(HANDLER_DRAIN_S)
                if not idle:
                    LOG.warning("handlers still running %.1f s after stop", HANDLER_DRAIN_S)
                if self.poller is not None:
                    self.poller.stop()
                self.engine.reindexer.stop()
                self.engine.store.close()
                self.metrics.close()
                self._pool.shutdown(wait=False)
                if idle:  # a handler still running may yet need the loop
                    self.loop.close()
                LOG.info("stopped; store closed")
            except Exception:
                LOG.exception("shutdown failed; the store may not have been closed cleanly")
            finally:
                self._terminated.set()
                done.set()

        threading.Thread(target=finish, name="memnet-shutdown", daemon=True).start()
        return done

    def start(self) -> None:
        self.loop.call(self.server.start())

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Wait until the server has stopped; True if ``timeout`` passed first."""
        return not self._terminated.wait(timeout)

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        self.server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        self.server.add_registered_method_handlers(service_name, method_handlers)  # type: ignore[attr-defined]

    def add_insecure_port(self, address: str) -> int:
        return int(self.server.add_insecure_port(address))

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return int(self.server.add_secure_port(address, server_credentials))


def _serve_when_banks_open(store: MemoryStore, health_servicer: HealthBoard, wait_s: float) -> None:
    """SERVING once every bank opened, or after ``wait_s`` with the banks that have; then
    ``BANKS_HEALTH_NAME`` turns SERVING when the last one has opened."""
    all_open = store.wait_until_open(wait_s)
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if all_open:
        health_servicer.set(BANKS_HEALTH_NAME, health_pb2.HealthCheckResponse.SERVING)
        return
    LOG.warning("serving while banks still open: %s", ", ".join(store.status().opening))

    def wait_for_the_rest() -> None:
        store.wait_until_open()
        health_servicer.set(BANKS_HEALTH_NAME, health_pb2.HealthCheckResponse.SERVING)
        LOG.info("every bank is open")

    threading.Thread(target=wait_for_the_rest, name="memnet-banks-open", daemon=True).start()


def _resume_reindexes_when_open(store: MemoryStore, engine: Engine) -> None:
    """Once every bank is open, start again the reindexes a restart cut off."""

    def resume() -> None:
        store.wait_until_open()
        engine.reindexer.resume_interrupted(list(store.banks()))

    threading.Thread(target=resume, name="memnet-reindex-resume", daemon=True).start()


def create_server(
    settings: ServerSettings, *, models: ModelCatalog | None = None
) -> tuple[MemnetService, int]:
    """Open the store and models, build and START the server; returns it and its bound port.

    ``models`` replaces the shipped model registry (tests pass doubles). Health
    reports SERVING for every service once this returns.
    """
    started = time.perf_counter()
    catalog = models if models is not None else load_models(settings)
    store: BankStore
    if settings.store == "milvus":
        store = open_milvus_store(settings, StoreLimits(max_k=max(settings.max_k, 1)))
    else:
        store = MemoryStore(
            settings.data_dir,
            StoreSettings(
                fsync=settings.fsync,
                fsync_interval_ms=settings.fsync_interval_ms,
                snapshot_after_log_bytes=settings.snapshot_after_log_mib * MIB,
                snapshot_after_log_records=settings.snapshot_after_log_records,
                snapshot_after_log_age_s=settings.snapshot_after_log_age_s,
                limits=StoreLimits(max_k=max(settings.max_k, 1)),
            ),
            open_in_background=True,
        )
    try:
        return _assemble(settings, store, catalog, started)
    except BaseException:
        store.close()
        raise


def _assemble(
    settings: ServerSettings, store: BankStore, catalog: ModelCatalog, started: float
) -> tuple[MemnetService, int]:
    metrics = Metrics()
    engine = Engine(store, catalog, settings, observe_batch=metrics.observe_batch)
    keys = KeyRing.load(settings.api_keys_file) if settings.api_keys_file is not None else None
    if keys is None and not _is_loopback(settings.host):
        LOG.warning(
            "serving on %s without API keys: anyone who can connect may write", settings.host
        )
    loop = ServerLoop()
    pool = futures.ThreadPoolExecutor(max_workers=settings.worker_threads, thread_name_prefix="rpc")
    try:
        return _assemble_on(
            settings, store, catalog=catalog, started=started, loop=loop, pool=pool,
            metrics=metrics, engine=engine, keys=keys,
        )  # fmt: skip
    except BaseException:
        pool.shutdown(wait=False)
        loop.close()
        raise


def _assemble_on(
    settings: ServerSettings,
    store: BankStore,
    *,
    catalog: ModelCatalog,
    started: float,
    loop: ServerLoop,
    pool: futures.ThreadPoolExecutor,
    metrics: Metrics,
    engine: Engine,
    keys: KeyRing | None,
) -> tuple[MemnetService, int]:
    query_servicer = QueryServicer(engine)

    def place(method: str, request: Any) -> Placement:
        return query_servicer.placement(request) if method == QUERY_METHOD else Placement.POOL

    batcher = LoopBatcher(
        query_servicer.query_together,
        max_delay_s=settings.batching_max_delay_ms / 1000.0,
        max_batch=settings.batching_max_batch,
    )
    interceptor = CallInterceptor(
        keys=keys,
        metrics=metrics,
        pool=pool,
        place=place,
        batcher=batcher,
    )
    health_board = HealthBoard(loop)

    async def build() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(
            migration_thread_pool=pool,
            interceptors=[interceptor],
            options=[
                ("grpc.max_send_message_length", settings.max_message_bytes),
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.so_reuseport", 0),
                # Accept client keepalive pings every 60 s or more, with or without calls
                # in flight: the SDK pings every 300 s, which gRPC's default minimum (also
                # 300 s) turns into ping strikes and a GOAWAY "too_many_pings" when timers
                # jitter.
                ("grpc.http2.min_ping_interval_without_data_ms", 60_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ],
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        )
        bank_pb2_grpc.add_BankServiceServicer_to_server(BankServicer(engine), server)
        memory_pb2_grpc.add_MemoryServiceServicer_to_server(MemoryServicer(engine), server)
        query_pb2_grpc.add_QueryServiceServicer_to_server(query_servicer, server)
        model_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(engine), server)
        health_pb2_grpc.add_HealthServicer_to_server(health_board.servicer, server)
        enable_reflection((*SERVICE_NAMES, health.SERVICE_NAME), server)
        try:
            if credentials is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, credentials)
        except RuntimeError as error:
            raise FailedPrecondition(
                f"cannot listen on {address}: {error}", field="port"
            ) from error
        if not port:
            raise FailedPrecondition(f"cannot listen on {address}", field="port")
        return server, port

    address = f"{settings.host}:{settings.port}"
    credentials = _credentials(settings)
    server, port = loop.call(build())
    for name in ("", *SERVICE_NAMES, BANKS_HEALTH_NAME):
        health_board.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    service = MemnetService(
        server,
        loop=loop,
        pool=pool,
        engine=engine,
        health_board=health_board,
        interceptor=interceptor,
        metrics=metrics,
        settings=settings,
    )
    service.port = port
    if settings.model_poll_s > 0 and settings.models_dir is not None:
        service.poller = ModelPoller(catalog, interval_s=settings.model_poll_s)
    metrics.watch_models(
        lambda: [(v.name, v.version, v.state.value) for v in catalog.versions()],
        lambda: getattr(catalog, "load_failures", 0),
    )
    if settings.metrics_port:
        labels = settings.metrics_bank_labels
        metrics.watch_banks(
            lambda: bank_sizes(store),
            labels=labels,
            key=label_key(settings.data_dir) if labels == "hashed" else None,
        )
        metrics_address = f"{settings.metrics_host}:{settings.metrics_port}"
        try:
            service.metrics_port = metrics.serve(settings.metrics_host, settings.metrics_port)
        except OSError as error:
            loop.call(server.stop(None))
            raise FailedPrecondition(
                f"cannot serve metrics on {metrics_address}: {error}", field="metrics_port"
            ) from error
    loop.call(server.start())
    if service.poller is not None:
        service.poller.start()
    if isinstance(store, MemoryStore):
        _serve_when_banks_open(store, health_board, settings.bank_open_wait_s)
        _resume_reindexes_when_open(store, engine)
    service.store_health = StoreHealth(store, health_board, ("", *SERVICE_NAMES))
    LOG.info(
        "serving",
        extra={
            "address": f"{settings.host}:{port}",
            "tls": credentials is not None,
            "auth": keys is not None,
            "store": settings.store,
            "banks": len(bank_sizes(store)),
            "default_model": engine.default_model,
            "startup_s": round(time.perf_counter() - started, 3),
        },
    )
    return service, port
