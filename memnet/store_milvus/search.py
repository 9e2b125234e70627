"""Search of one Milvus bank: candidates from Milvus, exact re-scoring, recency, tail.

Milvus proposes the top-k candidates (with its index, metric and the filter as a
boolean expression) and returns their stored keys; every score memnet reports is
recomputed from those float32 keys (``memnet.store.scores.exact_scores``), so the weights a model
puts on them are those of the FAISS store. A memory Milvus matched but whose metadata
is not JSON-equal to the filter (Milvus Lite compares ``true`` equal to ``1``) makes
the search run again over exactly the memories that match, so a filtered search
returns the exact top-k of the matching memories.

Recency ranks (0 = newest live memory) come from ``recency.RecencyCache``: exact for
the newest ``RECENCY_EXACT`` memories, older ones report ``RECENCY_EXACT`` (text
models clip far below that). The softmax tail (``tail_samples``) is computed over a population of at
most ``TAIL_POPULATION_MAX`` memories, fetched whole; a larger one is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from memnet.core.search_options import SearchOptions
from memnet.errors import FailedPrecondition
from memnet.store.metadata_index import json_equal
from memnet.store.scores import exact_scores
from memnet.store.types import BankConfig, SearchResult
from memnet.store_milvus import expressions as expr
from memnet.store_milvus.rows import Row, metadata_of
from memnet.store_milvus.schema import TOP_K_MAX, search_params
from memnet.store_milvus.scoring import tail_estimate

if TYPE_CHECKING:
    from pymilvus import MilvusClient

TAIL_POPULATION_MAX = 16_384  # memories a tail estimate may fetch (Milvus's query window)

Call = Callable[[str, Callable[["MilvusClient", float], Any]], Any]  # (what, request)
Ranks = Callable[[np.ndarray], dict[int, int]]  # unique seqs → recency rank
_MISSING = object()


@dataclass(frozen=True)
class BankView:
    """What a search needs of a bank: its collection and config, a way to call Milvus."""

    name: str
    collection: str
    config: BankConfig
    call: Call  # MilvusConnection.call

    def query(self, flt: str, fields: list[str], *, limit: int) -> list[Row]:
        def run(client: MilvusClient, timeout_s: float) -> list[Row]:
            return list(
                client.query(
                    self.collection,
                    filter=flt,
                    output_fields=fields,
                    limit=limit,
                    consistency_level="Strong",
                    timeout=timeout_s,
                )
            )

        return self.call(f"query bank {self.name!r}", run)

    def count(self, flt: str = "") -> int:
        def run(client: MilvusClient, timeout_s: float) -> int:
            rows = client.query(
                self.collection,
                filter=flt,
                output_fields=["count(*)"],
                consistency_level="Strong",
                timeout=timeout_s,
            )
            return int(rows[0]["count(*)"])

        return self.call(f"count bank {self.name!r}", run)


def matches(meta: dict[str, Any], flt: dict[str, Any]) -> bool:
    return all(json_equal(meta.get(key, _MISSING), value) for key, value in flt.items())


def _milvus_search(
    view: BankView, q: np.ndarray, options: SearchOptions, *, k: int, flt: str, fields: list[str]
) -> list[list[Row]]:
    params = search_params(view.config, k=k, ef_search=options.ef_search, nprobe=options.nprobe)

    def run(client: MilvusClient, timeout_s: float) -> list[list[Row]]:
        hits = client.search(
            view.collection,
            data=[row for row in q],
            anns_field="key",
            limit=k,
            filter=flt,
            search_params=params,
            output_fields=fields,
            consistency_level="Strong",
            timeout=timeout_s,
        )
        return [[{**hit["entity"], "id": hit["id"]} for hit in row] for row in hits]

    return view.call(f"search bank {view.name!r}", run)


def candidates(view: BankView, q: np.ndarray, options: SearchOptions) -> list[list[Row]]:
    """Per query row, up to k matching memories (id, seq, key, value), best first.

    When Milvus matched a memory whose metadata is not JSON-equal to the filter (Milvus
    Lite compares ``true`` equal to ``1``), the memories the expression matches are
    checked here and the search runs again over exactly those that match.
    """
    flt_dict = options.filter_dict
    base = expr.metadata_filter(flt_dict) if flt_dict else ""
    fields = ["seq", "key", "value"] + (["metadata"] if flt_dict else [])
    k = min(options.k, TOP_K_MAX)
    rows = _milvus_search(view, q, options, k=k, flt=base, fields=fields)
    if not flt_dict or all(matches(metadata_of(r), flt_dict) for row in rows for r in row):
        return rows
    matched = view.query(base, ["id", "metadata"], limit=TOP_K_MAX + 1)
    if len(matched) > TOP_K_MAX:
        raise FailedPrecondition(
            f"bank {view.name!r}: Milvus matched metadata_filter loosely (values of another "
            f"JSON type) among more than {TOP_K_MAX} memories; filter on a key whose values "
            "share one type",
            field="metadata_filter",
        )
    exact = sorted(r["id"] for r in matched if matches(metadata_of(r), flt_dict))
    if not exact:
        return [[] for _ in range(q.shape[0])]
    return _milvus_search(view, q, options, k=k, flt=expr.id_in(exact), fields=fields)


def assemble(
    view: BankView,
    q: np.ndarray,
    rows: list[list[Row]],
    k: int,
    *,
    with_vectors: bool,
    ranks: Ranks,
) -> SearchResult:
    """Exact scores, best first, padded to k, with recency (and vectors when asked)."""
    config = view.config
    B, Dk, Dv = q.shape[0], config.key_dim, config.value_dim
    keys = np.zeros((B, k, Dk), np.float32)
    values = np.zeros((B, k, Dv), np.float32)
    valid = np.zeros((B, k), bool)
    ids = [[""] * k for _ in range(B)]
    seqs = np.full((B, k), -1, np.int64)
    for b, row in enumerate(rows):
        for j, hit in enumerate(row[:k]):
            keys[b, j] = hit["key"]
            values[b, j] = hit["value"]
            valid[b, j] = True
            ids[b][j] = hit["id"]
            seqs[b, j] = int(hit["seq"])
    scores = exact_scores(config.metric, q, keys).astype(np.float32)  # (B, k)
    scores[~valid] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")  # (B, k): Milvus's order, re-checked
    rank_of = ranks(np.unique(seqs[valid]))
    recency = np.full((B, k), -1, np.int64)
    for b in range(B):
        perm = order[b]
        keys[b], values[b], valid[b] = keys[b, perm], values[b, perm], valid[b, perm]
        scores[b], seqs[b] = scores[b, perm], seqs[b, perm]
        ids[b] = [ids[b][j] for j in perm.tolist()]
        recency[b] = [rank_of[int(s)] if s >= 0 else -1 for s in seqs[b].tolist()]
    return SearchResult(
        ids=ids,
        scores=scores,
        valid=valid,
        recency=recency,
        keys=keys if with_vectors else None,
        values=values if with_vectors else None,
    )


def with_tail(
    view: BankView,
    q: np.ndarray,
    result: SearchResult,
    options: SearchOptions,
    *,
    rng: np.random.Generator,
) -> SearchResult:
    """``result`` with the softmax tail of each row (``options.tail_samples`` given)."""
    import dataclasses

    assert options.tail_samples is not None
    flt_dict = options.filter_dict
    base = expr.metadata_filter(flt_dict) if flt_dict else ""
    n = view.count(base)
    if n > TAIL_POPULATION_MAX:
        raise FailedPrecondition(
            f"tail_samples: bank {view.name!r} searches {n} memories; the milvus store "
            f"estimates the softmax tail over at most {TAIL_POPULATION_MAX}",
            field="tail_samples",
        )
    fields = ["key", "value"] + (["metadata"] if flt_dict else [])
    rows = view.query(base or "seq >= 0", fields, limit=TOP_K_MAX) if n else []
    if flt_dict:
        rows = [r for r in rows if matches(metadata_of(r), flt_dict)]
    population = [r["id"] for r in rows]
    keys = np.asarray([r["key"] for r in rows], np.float32).reshape(-1, view.config.key_dim)
    values = np.asarray([r["value"] for r in rows], np.float32).reshape(-1, view.config.value_dim)
    position = {mid: i for i, mid in enumerate(population)}
    in_result = np.zeros((q.shape[0], len(population)), bool)  # (B, N)
    for b, row in enumerate(result.ids):
        for mid in row:
            i = position.get(mid)
            if i is not None:
                in_result[b, i] = True
    log_mass, value = tail_estimate(
        view.config.metric, q, in_result, keys, values, n_samples=options.tail_samples, rng=rng
    )
    return dataclasses.replace(result, tail_log_mass=log_mass, tail_value=value)


def search(
    view: BankView,
    q: np.ndarray,
    options: SearchOptions,
    *,
    with_vectors: bool,
    ranks: Ranks,
    rng: np.random.Generator,
) -> SearchResult:
    """Top ``options.k`` of validated (B, Dk) queries, exactly re-scored, best first."""
    rows = candidates(view, q, options)
    result = assemble(view, q, rows, options.k, with_vectors=with_vectors, ranks=ranks)
    if options.tail_samples is None:
        return result
    return with_tail(view, q, result, options, rng=rng)
