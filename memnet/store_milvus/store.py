"""The Milvus bank store: every bank a Milvus collection, the catalog in Milvus too.

Nothing lives on the local disk, so any number of store processes (memnet replicas)
given the same URI, database and collection prefix serve the same banks. Each call
looks the bank up in the catalog (one Strong query), so a bank created or dropped by
another replica is seen at once.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence

from memnet.errors import FailedPrecondition, InvalidArgument, MemnetError, NotFound
from memnet.store.interface import StoreStatus
from memnet.store.types import BankConfig, RecoveryReport, StoreLimits
from memnet.store_milvus.bank import MilvusBank
from memnet.store_milvus.catalog import BankEntry, Catalog
from memnet.store_milvus.connection import MilvusConnection, MilvusSettings
from memnet.store_milvus.schema import bank_schema, check_index, create_collection

LOG = logging.getLogger(__name__)

PREFIX_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,31}$"  # Milvus collection names: letters, digits, _
HEALTH_TIMEOUT_S = 2.0  # a health check waits at most this long (or timeout_s if shorter)


class MilvusStore:
    """A ``BankStore`` whose banks live in Milvus (Milvus Lite, standalone or cluster)."""

    in_process = False  # every bank is reached over the network

    def __init__(self, settings: MilvusSettings, limits: StoreLimits | None = None) -> None:
        if not re.match(PREFIX_PATTERN, settings.collection_prefix):
            raise InvalidArgument(
                f"milvus collection prefix must match {PREFIX_PATTERN}, "
                f"got {settings.collection_prefix!r}",
                field="milvus_collection_prefix",
            )
        self.settings = settings
        self.limits = limits if limits is not None else StoreLimits()
        self._conn = MilvusConnection(settings)
        self._catalog = Catalog(self._conn, settings.collection_prefix)
        self._banks: dict[str, MilvusBank] = {}  # name → handle, reused while its uid holds
        self._mutex = threading.Lock()
        self._ready = False
        self._closed = False
        try:
            self._open()
        except MemnetError as error:  # Milvus down: serve NOT_SERVING until it answers
            LOG.warning("the Milvus store is not ready: %s", error)

    def _open(self) -> None:
        self._catalog.ensure()
        self._catalog.sweep()
        self._ready = True
        LOG.info(
            "Milvus store ready",
            extra={"milvus_uri": self.settings.uri, "milvus_db": self.settings.db},
        )

    def _check_ready(self) -> None:
        if self._closed:
            raise FailedPrecondition("the memory store is closed", field="store")
        if not self._ready:
            self._open()

    def _handle(
        self, entry: BankEntry, last_seq: int, version: tuple[tuple[str, int], ...] = ()
    ) -> MilvusBank:
        with self._mutex:
            bank = self._banks.get(entry.name)
            if bank is None or bank.entry.uid != entry.uid:
                bank = MilvusBank(
                    entry,
                    conn=self._conn,
                    catalog=self._catalog,
                    limits=self.limits,
                    last_seq=last_seq,
                )
                self._banks[entry.name] = bank
            bank.seen(last_seq, version)
            return bank

    def create_bank(self, config: BankConfig) -> MilvusBank:
        """Create an empty bank; AlreadyExists if the name is taken (on any replica)."""
        if not isinstance(config, BankConfig):
            raise InvalidArgument("config must be a BankConfig", field="config")
        check_index(config.index)
        self._check_ready()
        schema, index = bank_schema(config)

        def make(collection: str) -> None:
            self._conn.call(
                f"create bank {config.name!r}",
                lambda c, t: create_collection(c, collection, schema, index, t),
            )

        entry = self._catalog.create(config, make)
        LOG.info(
            "created bank %s (%s, %s) in Milvus collection %s",
            config.name,
            config.index.kind.value,
            config.metric.value,
            entry.collection,
        )
        return self._handle(entry, 0)

    def bank(self, name: str) -> MilvusBank:
        self._check_ready()
        seen = self._catalog.lookup(name)
        if seen.entry is None:
            with self._mutex:
                self._banks.pop(name, None)
            raise NotFound(f"bank {name!r} not found", field="bank")
        return self._handle(seen.entry, seen.last_seq, seen.version)

    def banks(self) -> Sequence[MilvusBank]:
        self._check_ready()
        entries, last = self._catalog.entries()
        return [self._handle(entry, last.get(entry.uid, 0)) for entry in entries]

    def drop_bank(self, name: str) -> None:
        """Delete a bank for every replica; NotFound if there is none."""
        self._check_ready()
        self._catalog.drop(name)
        with self._mutex:
            self._banks.pop(name, None)
        LOG.info("dropped bank %s", name)

    def recovery_reports(self) -> dict[str, RecoveryReport]:
        """Nothing is replayed locally: Milvus recovers its own state."""
        return {}

    def status(self) -> StoreStatus:
        """Serving while Milvus answers a health check (and the catalog exists)."""
        if self._closed:
            return StoreStatus(serving=False, detail="closed")
        problem = self._conn.ping(min(HEALTH_TIMEOUT_S, self.settings.timeout_s))
        if not problem and not self._ready:
            try:
                self._open()
            except MemnetError as error:
                problem = str(error)
        return StoreStatus(serving=not problem, detail=problem)

    def close(self) -> None:
        """Close the Milvus client. Idempotent; every write was acknowledged by Milvus."""
        if self._closed:
            return
        self._closed = True
        self._conn.close()

    def __enter__(self) -> MilvusStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"MilvusStore({self.settings.uri!r}, db={self.settings.db!r}, "
            f"prefix={self.settings.collection_prefix!r})"
        )
