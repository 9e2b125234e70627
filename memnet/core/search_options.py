"""``SearchOptions``: how one query searches and attends, from the RPC to ``Bank.search``.

One frozen, hashable, validated value carries every per-query knob through the
server (it is the dynamic batcher's key: queries with equal options share a
forward), the engine, the model's hops and the memory source into the bank's
search. Each rule about a knob lives here, once, with its one limit. Rules that
depend on the model (its hop count, its attention modes) are in ``for_model``;
the limits a store is configured with (``StoreLimits.max_k`` for ``k``, its
metadata size for the filter) are checked by the store.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from memnet.core.enums import AttentionMode
from memnet.core.json_values import canonical_json
from memnet.errors import InvalidArgument

MAX_K = 4096  # memories per hop, at most (the store's StoreLimits.max_k is the limit in force)
MAX_HOPS = 64  # any model's hop count; each model has its own max_hops below this
MAX_EF_SEARCH = 65_536  # HNSW beam width
MAX_NPROBE = 65_536  # IVF lists probed
MAX_TAIL_SAMPLES = 65_536  # memories sampled per search to estimate the softmax tail


@dataclass(frozen=True)
class MetadataFilter:
    """Keep memories whose metadata has each top-level key with an equal JSON value.

    Held as canonical JSON text (sorted keys), so two equal filters are equal and hash
    alike; ``as_dict`` parses it once.
    """

    text: str

    @classmethod
    def of(cls, value: dict[str, Any], *, field: str = "metadata_filter") -> MetadataFilter:
        """A filter from a JSON object; InvalidArgument naming ``field`` if it is not one."""
        return cls(canonical_json(value, field=field))

    @cached_property
    def as_dict(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.text)
        return parsed


def _positive(value: object, *, name: str, maximum: int | None, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be an integer, got {value!r}", field=name)
    if value < 1 or (maximum is not None and value > maximum):
        limit = f"1..{maximum}" if maximum is not None else "at least 1"
        raise InvalidArgument(f"{name} must be {limit}, got {value}", field=name)


@dataclass(frozen=True)
class SearchOptions:
    """Per-query search and attention knobs; None means the bank's or model's default.

    ``k``: memories attended per hop (the top-k candidates of each hop's search);
    ``hops``: None = the model's default; ``mode``: sparse (softmax over the top k),
    soft (over every memory; the model sets k to the bank size) or hard;
    ``ef_search`` / ``nprobe``: the index's search width for this query;
    ``metadata_filter``: only memories whose metadata matches are searched;
    ``tail_samples``: memories sampled to estimate the softmax mass outside the top k
    (vector models, sparse attention); ``key_space``: the model version the query
    vectors were encoded with (``BankConfig.key_space``): a bank whose keys are in
    another refuses the search with ``KeySpaceChanged`` (None: no check).
    """

    k: int = 32
    hops: int | None = None
    mode: AttentionMode = AttentionMode.SPARSE
    ef_search: int | None = None
    nprobe: int | None = None
    metadata_filter: MetadataFilter | None = field(default=None)
    tail_samples: int | None = None
    key_space: str | None = None

    def __post_init__(self) -> None:
        _positive(self.k, name="k", maximum=None, optional=False)  # max: StoreLimits.max_k
        _positive(self.hops, name="hops", maximum=MAX_HOPS, optional=True)
        if not isinstance(self.mode, AttentionMode):
            raise InvalidArgument(
                f"mode must be one of {[m.value for m in AttentionMode]}, got {self.mode!r}",
                field="attention_mode",
            )
        _positive(self.ef_search, name="ef_search", maximum=MAX_EF_SEARCH, optional=True)
        _positive(self.nprobe, name="nprobe", maximum=MAX_NPROBE, optional=True)
        _positive(self.tail_samples, name="tail_samples", maximum=MAX_TAIL_SAMPLES, optional=True)
        if self.metadata_filter is not None and not isinstance(
            self.metadata_filter, MetadataFilter
        ):
            raise InvalidArgument(
                "metadata_filter must be a MetadataFilter", field="metadata_filter"
            )

    @property
    def filter_dict(self) -> dict[str, Any] | None:
        """The metadata filter as a dict; None when there is no filter (or it is empty)."""
        if self.metadata_filter is None:
            return None
        return self.metadata_filter.as_dict or None

    @classmethod
    def of_search_call(
        cls,
        k: int | SearchOptions,
        *,
        ef_search: int | None,
        nprobe: int | None,
        metadata_filter: dict[str, Any] | None,
        tail_samples: int | None,
    ) -> SearchOptions:
        """The options of a store's ``search(queries, k, **knobs)`` call: ``k`` itself when
        it is a ``SearchOptions`` (then no knob may be given), else built from ``k`` (any
        integer type) and the keyword knobs."""
        if isinstance(k, SearchOptions):
            if (ef_search, nprobe, metadata_filter, tail_samples) != (None, None, None, None):
                raise InvalidArgument(
                    "give the search knobs in the SearchOptions or as keywords, not both",
                    field="options",
                )
            return k
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise InvalidArgument(f"k must be an integer, got {k!r}", field="k")
        return cls(
            k=int(k),
            ef_search=ef_search,
            nprobe=nprobe,
            metadata_filter=None
            if metadata_filter is None
            else MetadataFilter.of(metadata_filter, field="metadata_filter"),
            tail_samples=tail_samples,
        )

    def with_k(self, k: int) -> SearchOptions:
        """The same options with ``k`` memories per hop (soft attention: the bank size)."""
        return self if k == self.k else replace(self, k=k)

    def for_model(
        self,
        *,
        name: str,
        max_hops: int,
        modes: tuple[AttentionMode, ...],
        estimates_tail: bool,
    ) -> None:
        """InvalidArgument if model ``name`` cannot run these options: more hops than
        ``max_hops``, an attention mode it lacks, or ``tail_samples`` where there is no
        softmax tail to estimate (``estimates_tail`` False, or not sparse attention)."""
        if self.hops is not None and self.hops > max_hops:
            raise InvalidArgument(
                f"hops must be 1..{max_hops} for model {name!r}, got {self.hops}", field="hops"
            )
        if self.mode not in modes:
            allowed = ", ".join(m.value for m in modes)
            raise InvalidArgument(
                f"attention_mode {self.mode.value} is not supported by model {name!r} "
                f"(supported: {allowed})",
                field="attention_mode",
            )
        if self.tail_samples is None:
            return
        if not estimates_tail:
            raise InvalidArgument(
                f"tail_samples is for vector models; model {name!r} takes text and "
                "does not estimate the softmax tail",
                field="tail_samples",
            )
        if self.mode is AttentionMode.SOFT:
            raise InvalidArgument(
                "tail_samples is for ATTENTION_MODE_SPARSE; ATTENTION_MODE_SOFT already "
                "attends over every memory, so there is no tail to estimate",
                field="tail_samples",
            )
        if self.mode is not AttentionMode.SPARSE:
            raise InvalidArgument(
                f"tail_samples is for ATTENTION_MODE_SPARSE, not ATTENTION_MODE_{self.mode.name} "
                "(no softmax over the top-k whose tail it could estimate)",
                field="tail_samples",
            )
