"""One Milvus client per store, and the one place where Milvus failures become domain errors.

pymilvus is imported here, on first use, so that neither the default install nor the
FAISS store ever loads it. Every call to Milvus goes through ``MilvusConnection.call``,
which sets the timeout and maps what can go wrong:

- Milvus cannot be reached (connection refused, channel down) → ``Unavailable``;
- Milvus did not answer within ``timeout_s`` → ``DeadlineExceeded``;
- a collection that is gone → ``NotFound`` (a bank dropped, possibly by another replica);
- Milvus's rate limiter → ``ResourceExhausted``;
- anything else Milvus refuses → ``Unavailable`` with Milvus's message (a server-side
  state memnet cannot fix; never INTERNAL).

A client whose channel failed is dropped and a new one is made at the next call: a
pymilvus client can stay broken after its server restarts.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from memnet.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    MemnetError,
    NotFound,
    ResourceExhausted,
    Unavailable,
)

if TYPE_CHECKING:
    from pymilvus import MilvusClient

LOG = logging.getLogger(__name__)

T = TypeVar("T")

COLLECTION_NOT_FOUND = 100  # pymilvus ErrorCode.COLLECTION_NOT_FOUND
RATE_LIMIT = 8  # pymilvus ErrorCode.RATE_LIMIT
CONNECT_FAILED = 2  # pymilvus: "Fail connecting to server on ..."


@dataclass(frozen=True)
class MilvusSettings:
    """Where the banks live and how long to wait for Milvus."""

    uri: str = "http://127.0.0.1:19530"
    token: str | None = None  # "user:password" or an API key; None = no authentication
    db: str = "default"  # Milvus database holding the catalog and every bank
    collection_prefix: str = "memnet_"  # every collection memnet makes starts with this
    timeout_s: float = 10.0  # per Milvus request; past it the call is DEADLINE_EXCEEDED


def quiet_pymilvus() -> None:
    """pymilvus logs every failed request with its traceback to its own stderr handler
    (not through the application's logging); memnet maps and logs those failures itself.
    Its loggers are silenced unless ``PYMILVUS_LOG_LEVEL`` asks for them. Call after
    importing pymilvus, whose import configures them."""
    if "PYMILVUS_LOG_LEVEL" in os.environ:
        return
    for name in ("pymilvus", "pymilvus.milvus_client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


class MilvusConnection:
    """A lazily made ``MilvusClient``; ``call`` runs one request with error mapping."""

    def __init__(self, settings: MilvusSettings) -> None:
        self.settings = settings
        self._client: MilvusClient | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def where(self) -> str:
        return f"Milvus at {self.settings.uri} (database {self.settings.db!r})"

    def _get(self) -> MilvusClient:
        with self._lock:
            if self._closed:
                raise FailedPrecondition("the memory store is closed", field="store")
            if self._client is None:
                from pymilvus import MilvusClient

                quiet_pymilvus()
                # dedicated: a channel of its own (pymilvus shares one per address by
                # default), so dropping a failed client really makes a new connection.
                self._client = MilvusClient(
                    uri=self.settings.uri,
                    token=self.settings.token or "",
                    db_name=self.settings.db,
                    timeout=self.settings.timeout_s,
                    dedicated=True,
                )
            return self._client

    def _drop(self, client: MilvusClient) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
        try:
            client.close()
        except Exception:  # a broken client may fail to close; it is dropped anyway
            LOG.debug("closing a failed Milvus client failed", exc_info=True)

    def call(
        self,
        what: str,
        request: Callable[[MilvusClient, float], T],
        *,
        collection: str | None = None,
    ) -> T:
        """Run ``request(client, timeout_s)``; Milvus failures become domain errors that
        name Milvus and ``what`` (e.g. "search bank 'x'"). A ``collection`` Milvus holds
        released (Milvus Lite forgets what was loaded when it restarts) is loaded and the
        request run again."""
        try:
            client = self._get()
        except MemnetError:
            raise
        except Exception as error:
            raise self._mapped(error, what) from error
        for attempt in range(2):
            try:
                return request(client, self.settings.timeout_s)
            except MemnetError:
                raise
            except Exception as error:
                if attempt == 0 and collection is not None and _not_loaded(error):
                    LOG.info("loading Milvus collection %s (it was released)", collection)
                    self._load(client, collection, what)
                    continue
                mapped = self._mapped(error, what)
                if isinstance(mapped, Unavailable | DeadlineExceeded):
                    self._drop(client)
                raise mapped from error
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _load(self, client: MilvusClient, collection: str, what: str) -> None:
        try:
            client.load_collection(collection, timeout=self.settings.timeout_s)
        except Exception as error:
            raise self._mapped(error, what) from error

    def _mapped(self, error: Exception, what: str) -> MemnetError:
        import grpc
        from pymilvus.exceptions import MilvusException

        timeout_s = self.settings.timeout_s
        if isinstance(error, grpc.RpcError):
            code = error.code() if callable(getattr(error, "code", None)) else None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return DeadlineExceeded(
                    f"{self.where} did not answer within {timeout_s:g} s ({what})",
                    field="milvus",
                )
            return Unavailable(f"{self.where} is unavailable ({what}): {code}", field="milvus")
        if isinstance(error, MilvusException):
            message = error.message
            if error.code == COLLECTION_NOT_FOUND:
                return NotFound(f"{what}: the collection is gone from Milvus", field="bank")
            if error.code == RATE_LIMIT:
                return ResourceExhausted(
                    f"{self.where} is rate-limiting ({what}): {message}", field="milvus"
                )
            if "deadline" in message.lower() or "timeout" in message.lower():
                return DeadlineExceeded(
                    f"{self.where} did not answer within {timeout_s:g} s ({what})",
                    field="milvus",
                )
            if error.code == CONNECT_FAILED:
                return Unavailable(f"{self.where} is unavailable ({what})", field="milvus")
            if getattr(error, "is_input_error", False):
                return InvalidArgument(f"{self.where} refused {what}: {message}", field="milvus")
            return Unavailable(f"{self.where} failed {what}: {message}", field="milvus")
        if isinstance(error, ValueError | TypeError):
            return InvalidArgument(f"{self.where} refused {what}: {error}", field="milvus")
        return Unavailable(f"{self.where} failed {what}: {error!r}", field="milvus")

    def ping(self, timeout_s: float) -> str:
        """ "" if Milvus answers within ``timeout_s``, else why not."""

        def probe(client: MilvusClient, _: float) -> Any:
            return client.get_server_version(timeout=timeout_s)

        try:
            self.call("a health check", probe)
        except MemnetError as error:
            return str(error)
        return ""

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _not_loaded(error: Exception) -> bool:
    message = str(getattr(error, "message", error)).lower()
    return "released" in message or "not loaded" in message
