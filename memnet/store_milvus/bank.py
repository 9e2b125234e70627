"""One bank on Milvus: a collection, written through the catalog's sequence heads.

Write path (serialised per bank within this process; other replicas may write at the
same time): validate → read which ids exist (INSERT mode, capacity) → reserve seqs in
the catalog → upsert the rows → delete evicted memories → commit the seqs → return.
The call returns only after Milvus acknowledged every request; a write that failed
on the way is reported as failed (its ids may or may not be stored, a retry with the
same ids is safe: writes are upserts). Reads go to Milvus at Strong consistency and
so see every write acknowledged before they began, on any replica.

Not atomic across replicas: the INSERT-mode existence check and the capacity check
read the bank, then write; two replicas writing the same new id at once in INSERT
mode may both succeed (the later one replaces the other), and two writers near
capacity may overfill a REJECT bank by their batches.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import numpy as np

from memnet.core.search_options import SearchOptions
from memnet.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted
from memnet.store import validation
from memnet.store.types import (
    BankConfig,
    CapacityPolicy,
    MemoryBatch,
    MemoryContent,
    MemoryRecord,
    SearchResult,
    StoreLimits,
    WriteMode,
    WriteResult,
)
from memnet.store.vectors import generate_missing_ids
from memnet.store_milvus import expressions as expr
from memnet.store_milvus import search as srch
from memnet.store_milvus.catalog import BankEntry, Catalog
from memnet.store_milvus.connection import MilvusConnection
from memnet.store_milvus.recency import RecencyCache
from memnet.store_milvus.rows import Row, check_for_milvus, chunks, record, to_rows
from memnet.store_milvus.schema import FIELDS, TOP_K_MAX

LOG = logging.getLogger(__name__)

IDS_PER_REQUEST = 1_000  # ids in one ``id in [...]`` expression


class MilvusBank:
    """A named set of memories in one Milvus collection (see ``memnet.store_milvus``)."""

    def __init__(
        self,
        entry: BankEntry,
        *,
        conn: MilvusConnection,
        catalog: Catalog,
        limits: StoreLimits,
        last_seq: int,
    ) -> None:
        self.entry = entry
        self._conn = conn
        self._catalog = catalog
        self._limits = limits
        self._last_seq = last_seq
        self._version: tuple[tuple[str, int], ...] = ()  # writers' committed seqs, last read
        self._own_changes = 0  # this process's writes since (they change the bank too)
        self._recency = RecencyCache()
        self._write_mutex = threading.Lock()
        self._tail_rng = np.random.default_rng()
        self._view = srch.BankView(entry.name, entry.collection, entry.config, self._call)

    # ---- properties -------------------------------------------------------------------

    @property
    def config(self) -> BankConfig:
        return self.entry.config

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def last_seq(self) -> int:
        """The highest seq acknowledged by any replica when this bank was last looked up
        (``MilvusStore.bank``) or written through this process."""
        return self._last_seq

    def seen(self, last_seq: int, version: tuple[tuple[str, int], ...]) -> None:
        """What a fresh catalog lookup found: the last seq and the writers' versions."""
        self._last_seq = max(self._last_seq, last_seq)
        self._version = version

    def _call(self, what: str, request: Any) -> Any:
        try:
            return self._conn.call(what, request, collection=self.entry.collection)
        except NotFound as error:
            if error.field != "bank":
                raise
            raise NotFound(f"bank {self.name!r} was dropped", field="bank") from error

    def count(self) -> int:
        return self._view.count()

    def searchable_now(self) -> bool:
        """Never: every search is a round trip to Milvus."""
        return False

    # ---- writes -----------------------------------------------------------------------

    def write(self, batch: MemoryBatch, *, mode: WriteMode = WriteMode.UPSERT) -> WriteResult:
        """Insert or replace ``batch`` (N memories); acknowledged by Milvus before return."""
        try:
            mode = WriteMode(mode)
        except ValueError:
            raise InvalidArgument(
                f"mode must be one of {[m.value for m in WriteMode]}, got {mode!r}", field="mode"
            ) from None
        if not isinstance(batch, MemoryBatch):
            raise InvalidArgument("batch must be a MemoryBatch", field="batch")
        clean = validation.batch(batch, self.config, self._limits)
        check_for_milvus(clean)
        with self._write_mutex:
            ids = generate_missing_ids(clean.ids)
            existing = self._existing(ids)
            if mode is WriteMode.INSERT and existing:
                first = next(i for i in ids if i in existing)
                raise AlreadyExists(
                    f"memory id {first!r} already exists in bank {self.name!r} (mode insert)",
                    field="ids",
                )
            n_new = len(ids) - len(existing)
            evicted = self._plan_eviction(n_new, existing)
            first_seq, last_seq = self._catalog.reserve(self.entry, len(ids))
            rows = to_rows(ids, clean, first_seq=first_seq, written_ns=time.time_ns())
            row_bytes = 4 * (self.config.key_dim + self.config.value_dim) + 256
            for part in chunks(rows, row_bytes=row_bytes):
                self._call(
                    f"write to bank {self.name!r}",
                    lambda c, t, part=part: c.upsert(self.entry.collection, part, timeout=t),
                )
            self._delete_ids(evicted)
            self._commit(first_seq, last_seq)
        return WriteResult(ids, last_seq, n_new, len(existing), evicted)

    def _existing(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), IDS_PER_REQUEST):
            part = ids[start : start + IDS_PER_REQUEST]
            rows = self._view.query(expr.id_in(part), ["id"], limit=len(part))
            found.update(r["id"] for r in rows)
        return found

    def _plan_eviction(self, n_new: int, replacing: set[str]) -> list[str]:
        cap = self.config.capacity
        if cap is None:
            return []
        n_live = self.count()
        if n_live + n_new <= cap:
            return []
        what = f"bank {self.name!r} holds {n_live} of capacity {cap}; {n_new} new memories"
        if self.config.capacity_policy is CapacityPolicy.REJECT or n_new > cap:
            raise ResourceExhausted(f"{what} would exceed capacity {cap}", field="capacity")
        return self._oldest_ids(n_live + n_new - cap, exclude=replacing)

    def _oldest_ids(self, count: int, *, exclude: set[str]) -> list[str]:
        """Ids of the ``count`` lowest-seq live memories not in ``exclude``."""
        out: list[tuple[int, str]] = []
        low, width = 0, max(2 * (count + len(exclude)), 64)
        top = self._catalog.lookup(self.name).top
        while len(out) < count and low <= top:
            rows = self._view.query(
                f"seq > {low} and seq <= {low + width}", ["id", "seq"], limit=TOP_K_MAX
            )
            found = sorted((int(r["seq"]), r["id"]) for r in rows if r["id"] not in exclude)
            out.extend(found[: count - len(out)])
            low += width
            width *= 2
        return [mid for _, mid in out]

    def delete(self, ids: Sequence[str]) -> int:
        """Delete memories by id; unknown ids are ignored. Returns how many were deleted."""
        wanted = validation.id_list(ids, limits=self._limits)
        for mid in wanted:
            expr.string_literal(mid, field="ids")
        with self._write_mutex:
            existing = self._existing(wanted)
            present = [i for i in dict.fromkeys(wanted) if i in existing]
            if not present:
                return 0
            first_seq, last_seq = self._catalog.reserve(self.entry, 1)
            self._delete_ids(present)
            self._commit(first_seq, last_seq)
            return len(present)

    def clear(self) -> None:
        """Delete every memory (the bank and its config remain)."""
        with self._write_mutex:
            first_seq, last_seq = self._catalog.reserve(self.entry, 1)
            self._call(
                f"clear bank {self.name!r}",
                lambda c, t: c.delete(self.entry.collection, filter="seq >= 0", timeout=t),
            )
            self._commit(first_seq, last_seq)

    def _delete_ids(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), IDS_PER_REQUEST):
            part = list(ids[start : start + IDS_PER_REQUEST])
            self._call(
                f"delete from bank {self.name!r}",
                lambda c, t, part=part: c.delete(self.entry.collection, ids=part, timeout=t),
            )

    def _commit(self, first_seq: int, last_seq: int) -> None:
        self._catalog.commit(self.entry, first_seq, last_seq)
        self._last_seq = max(self._last_seq, last_seq)
        self._own_changes += 1

    # ---- reads ------------------------------------------------------------------------

    def _rows(self, ids: Sequence[str], fields: list[str]) -> dict[str, Row]:
        out: dict[str, Row] = {}
        for start in range(0, len(ids), IDS_PER_REQUEST):
            part = list(dict.fromkeys(ids[start : start + IDS_PER_REQUEST]))
            for row in self._view.query(expr.id_in(part), fields, limit=len(part)):
                out[row["id"]] = row
        return out

    def get(self, ids: Sequence[str]) -> list[MemoryRecord | None]:
        wanted = validation.id_list(ids, limits=self._limits)
        rows = self._rows(wanted, list(FIELDS))
        return [record(rows[i]) if i in rows else None for i in wanted]

    def contents(self, ids: Iterable[str]) -> dict[str, MemoryContent]:
        """Text and metadata of the live memories among ``ids`` that have either, by id."""
        wanted = [i for i in dict.fromkeys(ids) if i]
        out: dict[str, MemoryContent] = {}
        for mid, row in self._rows(wanted, ["id", "text", "metadata"]).items():
            meta = row.get("metadata") or {}
            if row.get("text") or meta:
                out[mid] = MemoryContent(text=row.get("text"), metadata=meta)
        return out

    def gather(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(N, Dk) keys and (N, Dv) values of ``ids``; NotFound names the first missing id."""
        wanted = validation.id_list(ids, limits=self._limits)
        rows = self._rows(wanted, ["id", "key", "value"])
        for mid in wanted:
            if mid not in rows:
                raise NotFound(f"memory {mid!r} not found in bank {self.name!r}", field="ids")
        keys = np.asarray([rows[i]["key"] for i in wanted], np.float32)
        values = np.asarray([rows[i]["value"] for i in wanted], np.float32)
        return keys.reshape(-1, self.config.key_dim), values.reshape(-1, self.config.value_dim)

    def list(
        self, *, page_size: int = 100, page_token: str | None = None
    ) -> tuple[list[MemoryRecord], str | None]:
        """Live memories in seq order, ``page_size`` at a time; pass back the returned token."""
        size = validation.page_size(page_size, self._limits)
        after = validation.page_token(page_token)
        top = self._catalog.lookup(self.name).top
        found: list[tuple[int, str]] = []
        low, width = after, max(2 * size, 64)
        while len(found) <= size and low < top:
            high = min(low + width, top)
            window = f"seq > {low} and seq <= {high}"
            rows = self._view.query(window, ["id", "seq"], limit=TOP_K_MAX)
            if len(rows) == TOP_K_MAX and width > 1:  # a window too wide: narrow it
                width //= 4
                continue
            found.extend(sorted((int(r["seq"]), r["id"]) for r in rows))
            low, width = high, width * 2
        page = found[:size]
        by_id = self._rows([mid for _, mid in page], list(FIELDS))
        records = [record(by_id[mid]) for _, mid in page if mid in by_id]
        more = len(found) > size
        token = validation.make_page_token(page[-1][0]) if more and page else None
        return records, token

    def search(
        self,
        queries: np.ndarray,
        k: int | SearchOptions,
        *,
        ef_search: int | None = None,
        nprobe: int | None = None,
        metadata_filter: dict[str, Any] | None = None,
        with_vectors: bool = False,
        with_keys: bool = True,
        tail_samples: int | None = None,
    ) -> SearchResult:
        """Top-k memories for (B, Dk) float32 queries, exactly re-scored, best first.

        ``k`` is the number of memories per query with the knobs as keywords, or a
        ``SearchOptions`` that carries them all (as ``memnet.store.Bank.search``).
        ``with_vectors``: also the values, and the keys unless ``with_keys`` is False
        (the keys are fetched either way: the exact scores are computed from them).
        """
        options = SearchOptions.of_search_call(
            k, ef_search=ef_search, nprobe=nprobe, metadata_filter=metadata_filter,
            tail_samples=tail_samples,
        )  # fmt: skip
        q = validation.search_args(queries, options, self.config, self._limits)
        flt = options.filter_dict
        if flt:
            expr.metadata_filter(flt)  # InvalidArgument before any request if untranslatable
        version = (self._version, self._own_changes)

        def ranks(seqs: np.ndarray) -> dict[int, int]:
            return self._recency.ranks(
                seqs, partial(_seqs_where, self._view), top_seq=self._last_seq, version=version
            )

        result = srch.search(
            self._view, q, options, with_vectors=with_vectors, ranks=ranks, rng=self._tail_rng
        )
        return result if with_keys else dataclasses.replace(result, keys=None)


def _seqs_where(view: srch.BankView, flt: str) -> list[int]:
    """Seqs of the live memories matching ``flt`` (at most TOP_K_MAX)."""
    return [int(r["seq"]) for r in view.query(flt, ["seq"], limit=TOP_K_MAX)]
