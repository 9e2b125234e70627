"""QueryService: answer questions against a bank and explain each answer hop by hop."""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

import grpc
import numpy as np

from memnet.api.tensors import from_tensor, to_tensor
from memnet.api.v1 import query_pb2, query_pb2_grpc
from memnet.core.search_options import MetadataFilter, SearchOptions
from memnet.errors import InvalidArgument
from memnet.serving.contract import HopAttention
from memnet.store.types import MAX_VECTOR_DIM
from memnet_server.config import ServerSettings
from memnet_server.convert import (
    ATTENTION_MODE_FROM_PROTO,
    dump_json,
    enum_value,
    parse_json_object,
)
from memnet_server.engine import Engine, QueryAnswer, answer_rows
from memnet_server.placement import Placement
from memnet_server.servicers.query_arrays import decode_layout, encode_arrays, hop_weight_order

DEFAULT_TOP_ANSWERS = 5
MAX_QUESTION_BYTES = 64 * 1024
MAX_FILTER_BYTES = 64 * 1024
NO_DEADLINE_S = 1e8  # time_remaining() above this means the caller set no deadline
OPTIONS_CACHE_SIZE = 256  # distinct option combinations decoded once each


def decode_options(request: query_pb2.QueryRequest, settings: ServerSettings) -> SearchOptions:
    """The request's search options (``SearchOptions`` checks every rule and limit)."""
    options = _options_of(
        k=request.k or settings.default_k,
        hops=request.hops or None,
        attention_mode=request.attention_mode,
        ef_search=request.ef_search if request.HasField("ef_search") else None,
        nprobe=request.nprobe if request.HasField("nprobe") else None,
        tail_samples=request.tail_samples if request.HasField("tail_samples") else None,
    )
    if not request.metadata_filter_json:
        return options
    metadata_filter = parse_json_object(
        request.metadata_filter_json, field="metadata_filter_json", max_bytes=MAX_FILTER_BYTES
    )
    if not metadata_filter:
        return options
    return replace(
        options, metadata_filter=MetadataFilter.of(metadata_filter, field="metadata_filter_json")
    )


@lru_cache(maxsize=OPTIONS_CACHE_SIZE)
def _options_of(
    *,
    k: int,
    hops: int | None,
    attention_mode: int,
    ef_search: int | None,
    nprobe: int | None,
    tail_samples: int | None,
) -> SearchOptions:
    """Options without a filter, built and checked once per combination of fields
    (``SearchOptions`` is frozen, so queries share them; a rejected one raises each time)."""
    return SearchOptions(
        k=k,
        hops=hops,
        mode=enum_value(ATTENTION_MODE_FROM_PROTO, attention_mode, field="attention_mode"),
        ef_search=ef_search,
        nprobe=nprobe,
        tail_samples=tail_samples,
    )


def decode_inputs(
    request: query_pb2.QueryRequest, settings: ServerSettings
) -> tuple[list[str] | None, np.ndarray | None]:
    """(questions, None) or (None, (B, Dk) vectors), with B within max_batch_queries."""
    limit = settings.max_batch_queries
    has_vectors = request.HasField("query_vectors")
    if request.questions and has_vectors:
        raise InvalidArgument("send questions or query_vectors, not both", field="questions")
    if has_vectors:
        vectors = from_tensor(
            request.query_vectors,
            field="query_vectors",
            ndim=2,
            max_elements=limit * MAX_VECTOR_DIM,
        )
        if not 1 <= vectors.shape[0] <= limit:
            raise InvalidArgument(
                f"query_vectors must hold 1..{limit} rows (max_batch_queries), "
                f"got {vectors.shape[0]}",
                field="query_vectors",
            )
        return None, vectors
    questions = list(request.questions)
    if not questions:
        raise InvalidArgument("questions or query_vectors is required", field="questions")
    if len(questions) > limit:
        raise InvalidArgument(
            f"questions has {len(questions)} entries, limit max_batch_queries={limit}",
            field="questions",
        )
    for i, question in enumerate(questions):
        if not question.strip():
            raise InvalidArgument(f"questions[{i}] is empty", field=f"questions[{i}]")
        if len(question.encode()) > MAX_QUESTION_BYTES:
            raise InvalidArgument(
                f"questions[{i}] is longer than {MAX_QUESTION_BYTES} bytes",
                field=f"questions[{i}]",
            )
    return questions, None


def _add_hop(
    result: query_pb2.QueryResult,
    hop_number: int,
    hop: HopAttention,
    row: int,
    answer: QueryAnswer,
    *,
    order: Iterable[int],
    include_vectors: bool,
) -> None:
    """Append one hop's attended memories (padding dropped) in ``order``: the row's
    positions, highest weight first."""
    ids = hop.ids[row]
    scores, weights = hop.scores[row].tolist(), hop.weights[row].tolist()
    contents, records = answer.contents, answer.records
    message = result.hops.add(hop=hop_number)
    if hop.tail_weights is not None:
        message.tail_weight = float(hop.tail_weights[row])
    add = message.memories.add
    if not contents and not records:  # nothing to attach (a bank of vectors alone)
        for j in order:
            memory_id = ids[j]
            if memory_id:
                add(id=memory_id, score=scores[j], weight=weights[j])
        return
    for j in order:
        memory_id = ids[j]
        if not memory_id:
            continue
        content = contents.get(memory_id)
        if content is None:
            attended = add(id=memory_id, score=scores[j], weight=weights[j])
        elif content.metadata:
            attended = add(
                id=memory_id,
                score=scores[j],
                weight=weights[j],
                text=content.text,
                metadata_json=dump_json(content.metadata),
            )
        else:  # one call with every field: setting them one by one costs more
            attended = add(id=memory_id, score=scores[j], weight=weights[j], text=content.text)
        record = records.get(memory_id) if include_vectors else None
        if record is not None:
            attended.key.CopyFrom(to_tensor(record.key))
            attended.value.CopyFrom(to_tensor(record.value))


Orders = list[list[list[int]] | None]  # per hop: per row, positions by weight; None: in order


def weight_orders(answer: QueryAnswer) -> Orders:
    """Per hop, per row: positions by weight, highest first (ties keep the score order);
    None for a hop whose rows are in that order already."""
    orders: Orders = []
    for hop in answer.output.hops:
        order = hop_weight_order(hop)
        orders.append(None if order is None else order.tolist())
    return orders


def encode_result(
    answer: QueryAnswer,
    row: int,
    *,
    top_answers: int,
    include_vectors: bool,
    orders: Orders | None = None,
) -> query_pb2.QueryResult:
    """Row ``row`` of ``answer``; pass ``orders`` (``weight_orders``) when encoding many rows."""
    output, info = answer.output, answer.model
    orders = orders if orders is not None else weight_orders(answer)
    result = query_pb2.QueryResult(
        readout=to_tensor(output.readout[row]), unknown_words=answer.unknown_words[row]
    )
    if output.answer_probs is not None and info.answer_vocab:
        probs = output.answer_probs[row]  # (A,)
        best = np.argsort(-probs, kind="stable")[:top_answers]
        for index in best.tolist():
            result.alternatives.add(
                answer=info.answer_vocab[index], probability=float(probs[index])
            )
        result.answer = result.alternatives[0].answer
        result.probability = result.alternatives[0].probability
    for hop_number, hop in enumerate(output.hops, start=1):
        hop_order = orders[hop_number - 1]
        order = range(len(hop.ids[row])) if hop_order is None else hop_order[row]
        _add_hop(result, hop_number, hop, row, answer, order=order, include_vectors=include_vectors)
    return result


def decode_top_answers(request: query_pb2.QueryRequest, settings: ServerSettings) -> int:
    top = request.top_answers or DEFAULT_TOP_ANSWERS
    if top > settings.max_top_answers:
        raise InvalidArgument(
            f"top_answers must be 0..{settings.max_top_answers}, got {top}", field="top_answers"
        )
    return top


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._settings = engine.settings

    def placement(self, request: query_pb2.QueryRequest) -> Placement:
        """Where the server runs this request (``Engine.placement``)."""
        shape = request.query_vectors.shape
        n_queries = len(request.questions) or (shape[0] if shape else 1)
        return self._engine.placement(request.bank, n_queries)

    def Query(  # noqa: N802
        self, request: query_pb2.QueryRequest, context: grpc.ServicerContext
    ) -> query_pb2.QueryResponse:
        call = _Call.of(request, self._settings)
        remaining_s = context.time_remaining()  # huge, not None, when the call has no deadline
        has_deadline = remaining_s is not None and remaining_s < NO_DEADLINE_S
        deadline = time.monotonic() + remaining_s if has_deadline else None
        return call.respond(call.ask(self._engine, deadline=deadline))

    def query_together(
        self, requests: list[query_pb2.QueryRequest]
    ) -> list[query_pb2.QueryResponse | Exception]:
        """Answer requests that arrived together: text requests with the same bank,
        options and layout as one engine call on their questions joined (up to
        ``batching_max_batch`` questions), each answered with its own rows; a request
        with query vectors alone. A request that fails (bad input) fails alone; an
        engine error fails its group. Runs every forward here (``direct``)."""
        out: list[query_pb2.QueryResponse | Exception] = [
            InvalidArgument("not answered", field="request")
        ] * len(requests)
        groups: dict[Hashable, list[tuple[int, _Call]]] = {}
        for i, request in enumerate(requests):
            try:
                call = _Call.of(request, self._settings)
            except Exception as error:
                out[i] = error
                continue
            if call.questions is None:  # query vectors: answered (or refused) on their own
                groups[("alone", i)] = [(i, call)]
            else:
                groups.setdefault(call.group_key(), []).append((i, call))
        max_rows = self._settings.batching_max_batch
        for members in groups.values():
            for chunk in _chunks(members, max_rows):
                self._answer_chunk(chunk, out)
        return out

    def _answer_chunk(
        self, chunk: list[tuple[int, _Call]], out: list[query_pb2.QueryResponse | Exception]
    ) -> None:
        first = chunk[0][1]
        joined = None if len(chunk) == 1 else [q for _, c in chunk for q in c.questions or ()]
        try:
            answer = first.ask(self._engine, deadline=None, direct=True, questions=joined)
        except Exception as error:
            for i, _ in chunk:
                out[i] = error
            return
        if joined is None:  # a request alone: its own answer, whole
            out[chunk[0][0]] = first.respond(answer)
            return
        start = 0
        for i, call in chunk:
            rows = len(call.questions or ())
            out[i] = call.respond(answer_rows(answer, start, start + rows))
            start += rows


@dataclass(frozen=True)
class _Call:
    """One QueryRequest decoded: what the engine needs and how to answer."""

    request: query_pb2.QueryRequest
    options: SearchOptions
    top: int
    questions: list[str] | None
    vectors: np.ndarray | None
    as_arrays: bool

    @classmethod
    def of(cls, request: query_pb2.QueryRequest, settings: ServerSettings) -> _Call:
        options = decode_options(request, settings)
        top = decode_top_answers(request, settings)
        questions, vectors = decode_inputs(request, settings)
        return cls(request, options, top, questions, vectors, decode_layout(request))

    def group_key(self) -> Hashable:
        """Requests with equal keys can share one engine call."""
        return (self.request.bank, self.options, self.as_arrays, self.request.include_vectors)

    def ask(
        self,
        engine: Engine,
        *,
        deadline: float | None,
        direct: bool = False,
        questions: list[str] | None = None,
    ) -> QueryAnswer:
        """The engine's answer to this request, or to ``questions`` (this request's and
        others' joined) with this request's options and layout."""
        return engine.query(
            self.request.bank,
            self.options,
            questions=self.questions if questions is None else questions,
            vectors=self.vectors if questions is None else None,
            deadline=deadline,
            include_vectors=self.request.include_vectors,
            include_contents=not self.as_arrays,
            direct=direct,
        )

    def respond(self, answer: QueryAnswer) -> query_pb2.QueryResponse:
        if self.as_arrays:
            return query_pb2.QueryResponse(
                arrays=encode_arrays(answer),
                model=answer.model.name,
                model_version=answer.model_version,
                bank_seq=answer.bank_seq,
            )
        rows = answer.output.readout.shape[0]
        orders = weight_orders(answer)
        return query_pb2.QueryResponse(
            results=[
                encode_result(
                    answer,
                    row,
                    top_answers=self.top,
                    include_vectors=self.request.include_vectors,
                    orders=orders,
                )
                for row in range(rows)
            ],
            model=answer.model.name,
            model_version=answer.model_version,
            bank_seq=answer.bank_seq,
        )


def _chunks(members: list[tuple[int, _Call]], max_rows: int) -> Iterable[list[tuple[int, _Call]]]:
    """Consecutive runs of ``members`` of at most ``max_rows`` questions (one at least)."""
    chunk: list[tuple[int, _Call]] = []
    rows = 0
    for member in members:
        n = len(member[1].questions or ())
        if chunk and rows + n > max_rows:
            yield chunk
            chunk, rows = [], 0
        chunk.append(member)
        rows += n
    if chunk:
        yield chunk
