"""The knobs of a query and of a write, grouped: ``SearchParams`` and ``WriteOptions``.

Both are frozen, hashable dataclasses checked when they are built, so a bad value
fails where it is written (``SearchParams(k=-1)`` raises ``ValidationError`` with
``field="k"``) and one object can be kept and reused across calls. The limits are
the protocol's own (``memnet.core.search_options``, the rules the server applies);
limits a server is configured with (its ``max_k``, ``max_top_answers``, a model's
``max_hops``) are the server's to enforce::

    precise = SearchParams(k=64, ef_search=256)
    client.query("story", "Where is Mary?", params=precise)
    client.query("story", "Where is John?", params=precise, hops=2)  # a keyword overrides a field

Methods take them as ``params=`` (``query``, ``query_arrays``) and ``options=``
(``write``, ``stream_write``). Each knob is also a keyword argument of those
methods, typed by ``QueryKnobs`` / ``SearchKnobs`` / ``WriteKnobs`` (``**knobs:
Unpack[...]``, so type checkers and IDEs know every name), and overrides the
object's field for that call: ``client.query(bank, q, k=8)`` is
``client.query(bank, q, params=SearchParams(k=8))``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, TypedDict, Unpack, get_args

from memnet.core.json_values import canonical_json
from memnet.core.search_options import (
    MAX_EF_SEARCH,
    MAX_HOPS,
    MAX_K,
    MAX_NPROBE,
    MAX_TAIL_SAMPLES,
)
from memnet.errors import InvalidArgument
from memnet_client import _checks
from memnet_client.errors import ValidationError
from memnet_client.models import AttentionMode, WriteMode

# A request carries at most this many memories unless ``max_chunk_memories`` says otherwise.
DEFAULT_MAX_CHUNK_MEMORIES = 1000
# Below the 4 MiB that a gRPC server accepts unless it raised its limit.
DEFAULT_CHUNK_BYTES = 3 * 1024 * 1024
# Room for the bank name, the mode, the tensor shapes and protobuf framing.
REQUEST_OVERHEAD_BYTES = 4096
# Distinct (params, keyword knobs) combinations whose SearchParams are kept for reuse.
PARAMS_CACHE_SIZE = 256


@dataclass(frozen=True)
class SearchParams:
    """How a query searches the bank and what it returns.

    Attributes:
        k: memories attended per hop (K), 0..4096; 0 = the server's default (32).
        hops: hops (H), 0..64; 0 = the model's default.
        attention: "sparse" (softmax over the top k candidates of the index), "soft"
            (over the whole bank, up to the server's ``max_k``) or "hard" (all weight
            on the best candidate).
        metadata_filter: keep only memories whose metadata has these top-level
            values (a JSON object of at most 64 KiB, nested at most 32 deep; kept as
            a read-only copy); None = no filter.
        ef_search: HNSW candidate list size for this call, 1..65536; None = the bank's.
        nprobe: IVF lists probed for this call, 1..65536; None = the bank's.
        tail_samples: vector models, sparse attention: sample this many memories
            (1..65536) per hop to estimate the softmax mass outside the top k
            (``Hop.tail_weight``); None = off.
        include_vectors: ``query`` only: return each attended memory's key (Dk,) and
            value (Dv,). ``query_arrays`` refuses True (it returns no vectors).
        top_answers: ``query`` only: alternative answers returned per question
            (``query_arrays`` returns the best answer only).
    """

    k: int = 0
    hops: int = 0
    attention: AttentionMode = "sparse"
    metadata_filter: Mapping[str, Any] | None = None
    ef_search: int | None = None
    nprobe: int | None = None
    tail_samples: int | None = None
    include_vectors: bool = False
    top_answers: int = 5

    def __post_init__(self) -> None:
        checked: dict[str, object] = {
            "k": _checks.count(self.k, field="k", maximum=MAX_K),
            "hops": _checks.count(self.hops, field="hops", maximum=MAX_HOPS),
            "attention": _checks.choice(self.attention, get_args(AttentionMode), field="attention"),
            "ef_search": _checks.optional_count(
                self.ef_search, field="ef_search", minimum=1, maximum=MAX_EF_SEARCH
            ),
            "nprobe": _checks.optional_count(
                self.nprobe, field="nprobe", minimum=1, maximum=MAX_NPROBE
            ),
            "tail_samples": _checks.optional_count(
                self.tail_samples, field="tail_samples", minimum=1, maximum=MAX_TAIL_SAMPLES
            ),
            "include_vectors": _checks.flag(self.include_vectors, field="include_vectors"),
            "top_answers": _checks.count(self.top_answers, field="top_answers"),
        }
        text = _canonical_filter(self.metadata_filter)
        # A private, read-only copy: changing the caller's dict later changes nothing here.
        checked["metadata_filter"] = MappingProxyType(json.loads(text)) if text else None
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def metadata_filter_json(self) -> str:
        """The filter as sent on the wire: canonical JSON (sorted keys); "" without one."""
        return _canonical_filter(self.metadata_filter)

    def __hash__(self) -> int:
        # The filter is a read-only mapping, not hashable: its canonical JSON stands in.
        return hash(
            tuple(
                self.metadata_filter_json if f.name == "metadata_filter" else getattr(self, f.name)
                for f in dataclasses.fields(self)
            )
        )

    def replace(self, **knobs: Unpack[QueryKnobs]) -> SearchParams:
        """A copy with these fields changed (checked again)."""
        return dataclasses.replace(self, **knobs)


class SearchKnobs(TypedDict, total=False):
    """The keyword form of ``SearchParams`` taken by ``query_arrays`` (see its fields)."""

    k: int
    hops: int
    attention: AttentionMode
    metadata_filter: Mapping[str, Any] | None
    ef_search: int | None
    nprobe: int | None
    tail_samples: int | None


class QueryKnobs(SearchKnobs, total=False):
    """The keyword form of ``SearchParams`` taken by ``query``: every field."""

    include_vectors: bool
    top_answers: int


@dataclass(frozen=True)
class WriteOptions:
    """How a write is sent.

    Attributes:
        mode: "upsert" replaces memories whose id exists; "insert" fails with
            AlreadyExists, writing nothing of that request, if an id exists.
        chunk_bytes: most bytes per request (per stream message for
            ``stream_write``); None = 3 MiB, under any server's limit. Never above
            the client's ``max_message_bytes``.
        max_chunk_memories: most memories per request (1000).
        progress: show a tqdm bar of memories sent on stderr (if tqdm is installed).
    """

    mode: WriteMode = "upsert"
    chunk_bytes: int | None = None
    max_chunk_memories: int = DEFAULT_MAX_CHUNK_MEMORIES
    progress: bool = False

    def __post_init__(self) -> None:
        checked: dict[str, object] = {
            "mode": _checks.choice(self.mode, get_args(WriteMode), field="mode"),
            "chunk_bytes": _checks.optional_count(
                self.chunk_bytes, field="chunk_bytes", minimum=2 * REQUEST_OVERHEAD_BYTES
            ),
            "max_chunk_memories": _checks.count(
                self.max_chunk_memories, field="max_chunk_memories", minimum=1
            ),
            "progress": _checks.flag(self.progress, field="progress"),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def budget_bytes(self) -> int:
        """``chunk_bytes`` with the default filled in."""
        return DEFAULT_CHUNK_BYTES if self.chunk_bytes is None else self.chunk_bytes

    def replace(self, **knobs: Unpack[WriteKnobs]) -> WriteOptions:
        """A copy with these fields changed (checked again)."""
        return dataclasses.replace(self, **knobs)


class WriteKnobs(TypedDict, total=False):
    """The keyword form of ``WriteOptions`` taken by ``write`` and ``stream_write``."""

    mode: WriteMode
    chunk_bytes: int | None
    max_chunk_memories: int
    progress: bool


def search_params(
    params: SearchParams | None, knobs: SearchKnobs | QueryKnobs, *, arrays: bool = False
) -> SearchParams:
    """``params`` (default ``SearchParams()``) with the keyword knobs of one call applied.

    ``arrays``: for ``query_arrays``, which takes the ``SearchKnobs`` only.
    """
    if params is not None and not isinstance(params, SearchParams):
        raise ValidationError(
            f"params must be a SearchParams, got {type(params).__name__}", field="params"
        )
    names = SearchKnobs.__optional_keys__ if arrays else QueryKnobs.__optional_keys__
    _known(knobs, names)
    base = params or DEFAULT_SEARCH_PARAMS
    if not knobs:
        return base
    # Typed, so that k=True or k=1.0 are checked (and refused) rather than found as k=1.
    key = tuple(sorted((name, type(value), value) for name, value in knobs.items()))
    try:
        hash(key)
    except TypeError:  # a metadata_filter dict, or a value that is refused below
        return dataclasses.replace(base, **knobs)
    return _with_knobs(params, key)  # None, not the default, as the key: cheaper to hash


@lru_cache(maxsize=PARAMS_CACHE_SIZE)
def _with_knobs(
    params: SearchParams | None, knobs: tuple[tuple[str, type, Any], ...]
) -> SearchParams:
    """``params`` (None: the default) with ``knobs`` applied, built and checked once per
    combination (the result is frozen, so calls share it; a rejected combination
    raises each time)."""
    fields: dict[str, Any] = {name: value for name, _, value in knobs}
    return dataclasses.replace(params or DEFAULT_SEARCH_PARAMS, **fields)


def write_options(options: WriteOptions | None, knobs: WriteKnobs) -> WriteOptions:
    """``options`` (default ``WriteOptions()``) with the keyword knobs of one call applied."""
    if options is not None and not isinstance(options, WriteOptions):
        raise ValidationError(
            f"options must be a WriteOptions, got {type(options).__name__}", field="options"
        )
    _known(knobs, WriteKnobs.__optional_keys__)
    base = options or WriteOptions()
    return base.replace(**knobs) if knobs else base


def _canonical_filter(value: Mapping[str, Any] | None) -> str:
    """The filter's canonical JSON under the server's rules; ValidationError if it breaks one."""
    if value is None:
        return ""
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"metadata_filter must be a dict, got {type(value).__name__}", field="metadata_filter"
        )
    try:
        return canonical_json(dict(value), field="metadata_filter")
    except InvalidArgument as error:
        raise ValidationError(str(error), field="metadata_filter") from error


def _known(knobs: Mapping[str, object], names: frozenset[str]) -> None:
    """A TypeError, as for any unknown keyword, that lists the knobs there are."""
    unknown = sorted(set(knobs) - names)
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {', '.join(unknown)}; the knobs here are "
            f"{', '.join(sorted(names))}"
        )


# What a call without ``params`` starts from (built once: it is frozen).
DEFAULT_SEARCH_PARAMS = SearchParams()
