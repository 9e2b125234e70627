"""A bank's reads: get, contents, gather, list and search, under its shared lock.

``BankReads`` is the read half of ``memnet.store.bank.Bank`` (which it is mixed into);
it reads the attributes it declares below, which the bank sets and swaps only under
its exclusive lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from memnet.core.search_options import SearchOptions
from memnet.errors import FailedPrecondition, KeySpaceChanged, NotFound
from memnet.store import search as srch
from memnet.store import validation
from memnet.store.locks import RWLock
from memnet.store.state import BankState
from memnet.store.types import (
    BankConfig,
    MemoryContent,
    MemoryRecord,
    SearchResult,
    StoreLimits,
)


class BankReads:
    config: BankConfig
    _state: BankState
    _rw: RWLock
    _limits: StoreLimits
    _tail_rng: np.random.Generator
    _closed: bool
    _dropped: bool

    @property
    def name(self) -> str:
        return self.config.name

    def _check_open(self) -> None:
        if self._dropped:
            raise NotFound(f"bank {self.name!r} was dropped", field="bank")
        if self._closed:
            raise FailedPrecondition(f"bank {self.name!r} is closed", field="bank")

    def get(self, ids: Sequence[str]) -> list[MemoryRecord | None]:
        wanted = validation.id_list(ids, limits=self._limits)
        with self._rw.read():
            self._check_open()
            t = self._state.table
            return [None if s is None else t.record(s) for s in t.slots_of(wanted)]

    def contents(self, ids: Iterable[str]) -> dict[str, MemoryContent]:
        """Text and metadata of the live memories among ``ids`` that have either, by id.

        For ids this bank returned (search results): no id validation and no vector
        copies, so attaching content to K attended memories costs a dict lookup each.
        Unknown, deleted and content-less ids are absent from the result.
        """
        out: dict[str, MemoryContent] = {}
        with self._rw.read():
            self._check_open()
            t = self._state.table
            if not t.has_content():  # a bank of vectors alone: ``ids`` is never read
                return out
            slot_of, texts, metadata = t.slot_of, t.texts, t.metadata
            for mid in dict.fromkeys(ids):  # once each: hops and rows repeat memories
                s = slot_of.get(mid)
                if s is not None and (texts[s] or metadata[s]):
                    out[mid] = MemoryContent(text=texts[s], metadata=metadata[s])
        return out

    def gather(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(N, Dk) keys and (N, Dv) values of ``ids``; NotFound names the first missing id."""
        wanted = validation.id_list(ids, limits=self._limits)
        with self._rw.read():
            self._check_open()
            t = self._state.table
            slots = t.slots_of(wanted)
            for mid, s in zip(wanted, slots, strict=True):
                if s is None:
                    raise NotFound(f"memory {mid!r} not found in bank {self.name!r}", field="ids")
            idx = np.array(slots, np.int64)
            return t.keys[idx].copy(), t.values[idx].copy()

    def list(
        self, *, page_size: int = 100, page_token: str | None = None
    ) -> tuple[list[MemoryRecord], str | None]:
        """Live memories in seq order, ``page_size`` at a time; pass back the returned token."""
        size = validation.page_size(page_size, self._limits)
        after = validation.page_token(page_token)
        with self._rw.read():
            self._check_open()
            t = self._state.table
            live = t.live_slots()
            start = int(np.searchsorted(t.seqs[live], after, side="right"))
            page = live[start : start + size]
            records = [t.record(s) for s in page.tolist()]
            more = start + size < len(live)
            token = validation.make_page_token(records[-1].seq) if more and records else None
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

        ``k`` is either the number of memories per query, with the search knobs as
        keywords, or a ``SearchOptions`` that carries them all (then give no knobs).
        ``tail_samples`` also estimates, per query, log Σ exp(score) over the searched
        memories outside its top-k from that many uniformly sampled ones (exact when it
        covers them all), and the value they read as: what a softmax over the top-k
        needs to account for the rest (``SearchResult.tail_log_mass``, ``tail_value``).
        ``with_vectors``: also the values, and the keys unless ``with_keys`` is False.
        """
        options = SearchOptions.of_search_call(
            k, ef_search=ef_search, nprobe=nprobe, metadata_filter=metadata_filter,
            tail_samples=tail_samples,
        )  # fmt: skip
        with self._rw.read():
            self._check_open()
            check_key_space(options, self.config)
            q = validation.search_args(queries, options, self.config, self._limits)
            return srch.search(
                self._state,
                self.config,
                q,
                options.k,
                ef_search=options.ef_search,
                nprobe=options.nprobe,
                metadata_filter=options.filter_dict,
                tail_samples=options.tail_samples,
                with_keys=with_vectors and with_keys,
                with_values=with_vectors,
                rng=self._tail_rng,
            )


def check_batch_key_space(wanted: str | None, config: BankConfig) -> None:
    """KeySpaceChanged when a batch was encoded for another model version."""
    if wanted is not None and wanted != config.key_space:
        raise KeySpaceChanged(
            f"bank {config.name!r} is now encoded with model {config.model}@"
            f"{config.model_version}; the batch was encoded for {wanted.split(':')[0]}",
            field="bank",
        )


def check_key_space(options: SearchOptions, config: BankConfig) -> None:
    """KeySpaceChanged when the query was encoded for another model version."""
    wanted = options.key_space
    if wanted is not None and wanted != config.key_space:
        raise KeySpaceChanged(
            f"bank {config.name!r} is now encoded with model {config.model}@"
            f"{config.model_version}; the query was encoded for {wanted.split(':')[0]}",
            field="bank",
        )
