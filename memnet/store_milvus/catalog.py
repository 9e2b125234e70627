"""The bank catalog, kept in Milvus itself: a replica started with only the URI sees
every bank, and replicas share sequence numbers without a coordinator of their own.

Rows of the ``<prefix>catalog`` collection (primary key ``key``):

- ``bank/<name>``: the bank's uid, its ``BankConfig`` and its collection;
- ``claim/<name>/<uid>``: a creation in progress (see ``Catalog.create``);
- ``head/<uid>/<writer>``: one per store process that wrote to the bank: the range of
  sequence numbers it reserved last (``first``..``last``) and the highest one it
  committed (wrote and acknowledged).

Milvus has no transactions and no compare-and-set, but its reads at Strong consistency
see every write acknowledged before they began. Both protocols here use only that:
*announce, then check*. A writer reserves the range after the highest any head holds,
writes its head, reads the heads again, and keeps the range only if no other writer's
head overlaps it; on an overlap it backs off for a random while and retries. Two
overlapping writers cannot both keep their ranges: whichever checked last had already
seen the other's announcement. So sequence numbers are unique across replicas, and a
write that began after another was acknowledged gets higher ones. Creating a bank
works the same way on claim rows; a claim older than ``CLAIM_TTL_S`` belongs to a
creator that died and is cleaned up.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memnet.errors import AlreadyExists, NotFound, Unavailable
from memnet.store.types import BankConfig
from memnet.store_milvus.connection import MilvusConnection
from memnet.store_milvus.expressions import string_literal
from memnet.store_milvus.schema import (
    CATALOG_VECTOR_DIM,
    TOP_K_MAX,
    bank_collection,
    catalog_collection,
    catalog_schema,
    create_collection,
)

if TYPE_CHECKING:
    from pymilvus import MilvusClient

LOG = logging.getLogger(__name__)

CLAIM_TTL_S = 120.0  # a creation claim older than this is a dead creator's
HEAD_TTL_S = 600.0  # an idle writer head older than this may be garbage-collected
HEADS_GC_MIN = 32  # ... once a bank has at least this many heads
CONTENDED_ATTEMPTS = 40  # announce-then-check rounds before giving up
BACKOFF_S = 0.005  # first random back-off after a clash; doubles per round, capped
BACKOFF_MAX_S = 0.5

_ZERO = [0.0] * CATALOG_VECTOR_DIM


@dataclass(frozen=True)
class BankEntry:
    """A bank as the catalog records it."""

    name: str
    uid: str
    config: BankConfig
    collection: str
    created_ns: int


@dataclass(frozen=True)
class Head:
    """One writer's last reservation in one bank."""

    writer: str
    first: int
    last: int
    committed: int  # highest seq this writer acknowledged (0 = none)
    at_ns: int

    def overlaps(self, first: int, last: int) -> bool:
        return self.first <= last and self.last >= first


@dataclass(frozen=True)
class Lookup:
    """What one catalog query tells about a bank name."""

    entry: BankEntry | None
    heads: dict[str, Head]  # writer → head, of ``entry``'s uid only
    claims: dict[str, int]  # uid → claim time (ns), of creations in progress

    @property
    def last_seq(self) -> int:
        return max((h.committed for h in self.heads.values()), default=0)

    @property
    def version(self) -> tuple[tuple[str, int], ...]:
        """Every writer's committed seq: changes with every acknowledged write."""
        return tuple(sorted((w, h.committed) for w, h in self.heads.items()))

    @property
    def top(self) -> int:
        """The highest seq any writer reserved or committed."""
        return max((max(h.last, h.committed) for h in self.heads.values()), default=0)


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0.0, min(BACKOFF_S * (2 ** min(attempt, 10)), BACKOFF_MAX_S)))


class Catalog:
    """Bank rows, creation claims and sequence heads in ``<prefix>catalog``."""

    def __init__(self, conn: MilvusConnection, prefix: str) -> None:
        self._conn = conn
        self.prefix = prefix
        self.collection = catalog_collection(prefix)
        self.writer = uuid.uuid4().hex  # this process's writer id in every bank's heads

    # ---- the collection -------------------------------------------------------------

    def ensure(self) -> None:
        """Create the catalog collection if there is none (idempotent, race-safe)."""

        def make(client: MilvusClient, timeout_s: float) -> None:
            if client.has_collection(self.collection, timeout=timeout_s):
                return
            schema, index = catalog_schema()
            try:
                create_collection(client, self.collection, schema, index, timeout_s)
            except Exception:
                if not client.has_collection(self.collection, timeout=timeout_s):
                    raise  # not a replica that created it at the same moment

        self._conn.call("create the bank catalog", make)

    def _query(self, flt: str, what: str) -> list[dict[str, Any]]:
        def run(client: MilvusClient, timeout_s: float) -> list[dict[str, Any]]:
            return list(
                client.query(
                    self.collection,
                    filter=flt,
                    output_fields=["key", "bank", "kind", "doc"],
                    limit=TOP_K_MAX,
                    consistency_level="Strong",
                    timeout=timeout_s,
                )
            )

        return self._conn.call(what, run, collection=self.collection)

    def _put(self, key: str, bank: str, kind: str, doc: dict[str, Any], what: str) -> None:
        row = {"key": key, "bank": bank, "kind": kind, "doc": doc, "unused": _ZERO}
        self._conn.call(
            what,
            lambda c, t: c.upsert(self.collection, [row], timeout=t),
            collection=self.collection,
        )

    def _delete(self, keys: list[str], what: str) -> None:
        if keys:
            self._conn.call(
                what,
                lambda c, t: c.delete(self.collection, ids=keys, timeout=t),
                collection=self.collection,
            )

    # ---- reading ----------------------------------------------------------------------

    def lookup(self, name: str) -> Lookup:
        """The bank row, its heads and the open claims of ``name`` (one Strong query)."""
        flt = f"bank == {string_literal(name, field='bank')}"
        rows = self._query(flt, f"look up bank {name!r}")
        entry = next((_entry(r) for r in rows if r["kind"] == "bank"), None)
        heads: dict[str, Head] = {}
        claims: dict[str, int] = {}
        for row in rows:
            doc = row["doc"]
            if row["kind"] == "head" and entry is not None and doc.get("uid") == entry.uid:
                heads[doc["writer"]] = _head(doc)
            elif row["kind"] == "claim":
                claims[doc["uid"]] = int(doc["at_ns"])
        return Lookup(entry, heads, claims)

    def entries(self) -> tuple[list[BankEntry], dict[str, int]]:
        """Every bank, sorted by name, and each bank uid's last committed seq."""
        rows = self._query('kind in ["bank", "head"]', "list banks")
        entries = sorted((_entry(r) for r in rows if r["kind"] == "bank"), key=lambda e: e.name)
        last: dict[str, int] = {}
        for row in rows:
            if row["kind"] == "head":
                doc = row["doc"]
                last[doc["uid"]] = max(last.get(doc["uid"], 0), int(doc.get("committed", 0)))
        return entries, last

    # ---- creating and dropping --------------------------------------------------------

    def create(self, config: BankConfig, make_collection: Callable[[str], None]) -> BankEntry:
        """Claim ``config.name``, make its collection, record the bank; AlreadyExists if
        the name is taken (also when another replica creates it at the same moment)."""
        name = config.name
        for attempt in range(CONTENDED_ATTEMPTS):
            if self.lookup(name).entry is not None:
                raise AlreadyExists(f"bank {name!r} already exists", field="name")
            uid = uuid.uuid4().hex
            claim_key = f"claim/{name}/{uid}"
            self._put(claim_key, name, "claim", {"uid": uid, "at_ns": time.time_ns()}, "claim")
            seen = self.lookup(name)
            rivals = self._live_rivals(name, seen.claims, mine=uid)
            if seen.entry is not None or rivals:
                self._delete([claim_key], f"withdraw the claim on bank {name!r}")
                if seen.entry is not None:
                    raise AlreadyExists(f"bank {name!r} already exists", field="name")
                _backoff(attempt)
                continue
            collection = bank_collection(self.prefix, uid)
            try:
                make_collection(collection)
                doc = {
                    "uid": uid,
                    "collection": collection,
                    "config": config.model_dump(mode="json"),
                    "created_ns": time.time_ns(),
                }
                self._put(f"bank/{name}", name, "bank", doc, f"record bank {name!r}")
            finally:
                self._delete([claim_key], f"release the claim on bank {name!r}")
            entry = self.lookup(name).entry
            assert entry is not None and entry.uid == uid, "the bank row was just written"
            return entry
        raise Unavailable(
            f"bank {name!r}: {CONTENDED_ATTEMPTS} attempts to create it clashed with other "
            "replicas creating it; retry",
            field="name",
        )

    def _live_rivals(self, name: str, claims: dict[str, int], *, mine: str) -> list[str]:
        """Other creations of ``name`` in progress; dead ones (older than CLAIM_TTL_S) are
        removed with whatever collection they made."""
        now = time.time_ns()
        rivals = []
        for uid, at_ns in claims.items():
            if uid == mine:
                continue
            if now - at_ns > CLAIM_TTL_S * 1e9:
                self.drop_collection(bank_collection(self.prefix, uid))
                self._delete([f"claim/{name}/{uid}"], "remove a dead creator's claim")
            else:
                rivals.append(uid)
        return rivals

    def drop_collection(self, collection: str) -> None:
        def drop(client: MilvusClient, timeout_s: float) -> None:
            if client.has_collection(collection, timeout=timeout_s):
                client.drop_collection(collection, timeout=timeout_s)

        self._conn.call(f"drop collection {collection}", drop)

    def drop(self, name: str) -> None:
        """Remove the bank row (the bank is gone for every replica from then on), then
        its collection and heads; NotFound if there is no bank ``name``."""
        seen = self.lookup(name)
        if seen.entry is None:
            raise NotFound(f"bank {name!r} not found", field="bank")
        self._delete([f"bank/{name}"], f"drop bank {name!r}")
        self.drop_collection(seen.entry.collection)
        self._delete(
            [f"head/{seen.entry.uid}/{w}" for w in seen.heads], f"drop bank {name!r}'s heads"
        )

    def sweep(self) -> None:
        """Drop bank collections and heads no bank row or open claim refers to (left by a
        replica that died while creating or dropping a bank). Collections are listed
        before the catalog is read, so a creation in progress is always seen by its claim."""
        names = self._conn.call("list collections", lambda c, t: c.list_collections(timeout=t))
        rows = self._query('kind in ["bank", "claim", "head"]', "read the catalog")
        now = time.time_ns()
        kept = {r["doc"]["uid"] for r in rows if r["kind"] == "bank"}
        kept |= {
            r["doc"]["uid"]
            for r in rows
            if r["kind"] == "claim" and now - int(r["doc"]["at_ns"]) <= CLAIM_TTL_S * 1e9
        }
        stem = bank_collection(self.prefix, "")
        for collection in names:
            if collection.startswith(stem) and collection[len(stem) :] not in kept:
                LOG.warning("dropping orphaned Milvus collection %s", collection)
                self.drop_collection(collection)
        orphans = [r["key"] for r in rows if r["kind"] == "head" and r["doc"]["uid"] not in kept]
        self._delete(orphans, "remove orphaned heads")

    # ---- sequence numbers -------------------------------------------------------------

    def reserve(self, entry: BankEntry, n: int) -> tuple[int, int]:
        """A range of ``n`` seqs of ``entry`` that no other writer holds, above every seq
        reserved before this call began (announce, then check)."""
        mine: Head | None = None
        for attempt in range(CONTENDED_ATTEMPTS):
            heads = self.lookup(entry.name).heads
            top = Lookup(None, heads, {}).top
            old = heads.get(self.writer)
            mine = Head(self.writer, top + 1, top + n, old.committed if old else 0, time.time_ns())
            self._put_head(entry, mine)
            heads = self.lookup(entry.name).heads
            clash = [
                h for w, h in heads.items() if w != self.writer and h.overlaps(top + 1, top + n)
            ]
            if not clash:
                if len(heads) >= HEADS_GC_MIN:
                    self._collect_heads(entry, heads)
                return top + 1, top + n
            _backoff(attempt)
        raise Unavailable(
            f"bank {entry.name!r}: {CONTENDED_ATTEMPTS} attempts to reserve sequence numbers "
            "clashed with other writers; retry",
            field="bank",
        )

    def commit(self, entry: BankEntry, first: int, last: int) -> None:
        """Record that this writer acknowledged seqs up to ``last``."""
        self._put_head(entry, Head(self.writer, first, last, last, time.time_ns()))

    def _put_head(self, entry: BankEntry, head: Head) -> None:
        doc = {
            "uid": entry.uid,
            "writer": head.writer,
            "first": head.first,
            "last": head.last,
            "committed": head.committed,
            "at_ns": head.at_ns,
        }
        self._put(
            f"head/{entry.uid}/{head.writer}", entry.name, "head", doc, "reserve sequence numbers"
        )

    def _collect_heads(self, entry: BankEntry, heads: dict[str, Head]) -> None:
        """Delete idle heads of other writers (never the highest, so seqs never go back)."""
        top = max(heads.values(), key=lambda h: max(h.last, h.committed))
        old = time.time_ns() - int(HEAD_TTL_S * 1e9)
        doomed = [
            f"head/{entry.uid}/{h.writer}"
            for h in heads.values()
            if h is not top and h.writer != self.writer and h.at_ns < old
        ]
        self._delete(doomed, "collect idle heads")


def _entry(row: dict[str, Any]) -> BankEntry:
    doc = row["doc"]
    return BankEntry(
        name=row["bank"],
        uid=doc["uid"],
        config=BankConfig.model_validate(doc["config"]),
        collection=doc["collection"],
        created_ns=int(doc["created_ns"]),
    )


def _head(doc: dict[str, Any]) -> Head:
    return Head(
        writer=doc["writer"],
        first=int(doc["first"]),
        last=int(doc["last"]),
        committed=int(doc.get("committed", 0)),
        at_ns=int(doc["at_ns"]),
    )
