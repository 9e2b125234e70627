"""RESULT_LAYOUT_ARRAYS: a whole batch's answers and attention as packed arrays.

One ``QueryArrays`` message per response instead of B results with H·K attended
memory messages each: the per-memory protobuf work, the text/metadata lookup and most
of the response bytes go away, which is what a high-rate caller pays for.
"""

from __future__ import annotations

from itertools import chain

import numpy as np

from memnet.api.tensors import to_tensor
from memnet.api.v1 import query_pb2
from memnet.errors import InvalidArgument
from memnet.serving.contract import HopAttention
from memnet_server.engine import QueryAnswer

_LAYOUTS = frozenset(query_pb2.ResultLayout.values())


def decode_layout(request: query_pb2.QueryRequest) -> bool:
    """True for RESULT_LAYOUT_ARRAYS; INVALID_ARGUMENT for an unknown layout or one that
    cannot carry what the request asks for."""
    layout = request.layout
    if layout not in _LAYOUTS:
        raise InvalidArgument(f"layout {layout} is not a ResultLayout", field="layout")
    arrays = layout == query_pb2.RESULT_LAYOUT_ARRAYS
    if arrays and request.include_vectors:
        raise InvalidArgument(
            "include_vectors needs RESULT_LAYOUT_MEMORIES (RESULT_LAYOUT_ARRAYS carries no "
            "per-memory vectors)",
            field="include_vectors",
        )
    return arrays


def hop_weight_order(hop: HopAttention) -> np.ndarray | None:
    """(B, K) positions of each row by weight, highest first (ties keep the score order):
    the order both layouts list a hop's memories in. None when every row is in that
    order already, as a softmax over best-first scores is (no sort needed)."""
    w = hop.weights  # (B, K)
    if bool(np.logical_and.reduce(w[:, :-1] >= w[:, 1:], axis=None)):
        return None
    return np.argsort(-w, axis=1, kind="stable")


def _sorted_ids(ids: list[list[str]], order: np.ndarray) -> list[list[str]]:
    """Each row's ids in ``order`` (B, K)."""
    return [[row[j] for j in row_order] for row, row_order in zip(ids, order.tolist(), strict=True)]


def _by_row(per_hop: list[np.ndarray]) -> np.ndarray:
    """H arrays (B, ...) -> one (B, H, ...) array (a view for a single hop)."""
    return per_hop[0][:, None] if len(per_hop) == 1 else np.stack(per_hop, axis=1)


def encode_arrays(answer: QueryAnswer) -> query_pb2.QueryArrays:
    """The (B, H, K) ids, scores and weights, (B, D) readouts and the answers of ``answer``."""
    output, info = answer.output, answer.model
    B = output.readout.shape[0]
    scores, weights, ids_by_hop = [], [], []
    for hop in output.hops:
        order = hop_weight_order(hop)  # (B, K), None: in order already
        if order is None:
            weights.append(hop.weights)
            scores.append(hop.scores)
            ids_by_hop.append(hop.ids)
        else:
            weights.append(np.take_along_axis(hop.weights, order, 1))
            scores.append(np.take_along_axis(hop.scores, order, 1))
            ids_by_hop.append(_sorted_ids(hop.ids, order))
    arrays = query_pb2.QueryArrays(
        scores=to_tensor(_by_row(scores)),  # (B, H, K)
        weights=to_tensor(_by_row(weights)),  # (B, H, K)
        readouts=to_tensor(output.readout),  # (B, D)
        unknown_words=sorted(set(chain.from_iterable(answer.unknown_words))),
    )
    arrays.ids.extend(
        chain.from_iterable(hop_ids[b] for b in range(B) for hop_ids in ids_by_hop)
    )  # row-major over (B, H, K)
    tails = [hop.tail_weights for hop in output.hops if hop.tail_weights is not None]
    if len(tails) == len(output.hops):
        arrays.tail_weights.CopyFrom(to_tensor(_by_row(tails)))  # (B, H)
    if output.answer_probs is not None and info.answer_vocab:
        best = output.answer_probs.argmax(axis=1)  # (B,)
        arrays.answers.extend(info.answer_vocab[i] for i in best.tolist())
        arrays.probabilities.CopyFrom(to_tensor(output.answer_probs[np.arange(B), best]))
    return arrays
