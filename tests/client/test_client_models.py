"""Protos → SDK models without a server: attention matrices, vectors, malformed responses."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from memnet.api.tensors import to_tensor
from memnet.api.v1 import query_pb2
from memnet_client import _convert, errors


def _response(metadata_json: str = '{"story": 1}') -> query_pb2.QueryResponse:
    hop1 = query_pb2.HopAttention(
        hop=1,
        memories=[
            query_pb2.AttendedMemory(
                id="a", score=2.0, weight=0.75, text="A", metadata_json=metadata_json
            ),
            query_pb2.AttendedMemory(id="b", score=1.0, weight=0.25, text="B"),
        ],
    )
    hop2 = query_pb2.HopAttention(
        hop=2,
        tail_weight=0.25,
        memories=[
            query_pb2.AttendedMemory(
                id="c",
                score=3.0,
                weight=0.6,
                key=to_tensor(np.arange(3.0)),
                value=to_tensor(np.ones(2)),
            ),
            query_pb2.AttendedMemory(id="a", score=1.0, weight=0.4),
        ],
    )
    result = query_pb2.QueryResult(
        answer="kitchen",
        probability=0.9,
        alternatives=[query_pb2.AnswerCandidate(answer="kitchen", probability=0.9)],
        readout=to_tensor(np.array([1.0, -1.0], dtype=np.float64)),
        hops=[hop1, hop2],
    )
    return query_pb2.QueryResponse(results=[result], model="m", bank_seq=7)


def test_query_response_converts_with_vectors_and_metadata() -> None:
    response = _convert.query_response(_response())
    result = response.results[0]
    assert (response.model, response.bank_seq, result.answer) == ("m", 7, "kitchen")
    assert result.readout.dtype == np.float32 and result.readout.tolist() == [1.0, -1.0]
    assert not result.readout.flags.writeable
    first = result.hops[0].memories[0]
    assert first.metadata == {"story": 1} and first.key is None
    attended = result.hops[1].memories[0]
    assert attended.key is not None and attended.key.tolist() == [0.0, 1.0, 2.0]
    assert attended.value is not None and attended.value.shape == (2,)
    assert [hop.tail_weight for hop in result.hops] == [0.0, 0.25]


def test_attention_matrix_is_hops_by_distinct_memories() -> None:
    result = _convert.query_response(_response()).results[0]
    memories, weights = result.attention_matrix()
    assert [m.id for m in memories] == ["a", "b", "c"]
    np.testing.assert_allclose(weights, [[0.75, 0.25, 0.0], [0.4, 0.0, 0.6]])
    assert weights.dtype == np.float32


def test_malformed_responses_raise_internal_error() -> None:
    with pytest.raises(errors.InternalError) as broken:
        _convert.query_response(_response(metadata_json="[1, 2]"))
    assert broken.value.code is grpc.StatusCode.INTERNAL
    bad = _response()
    bad.results[0].readout.data = b"\x00" * 3
    with pytest.raises(errors.InternalError, match="readout"):
        _convert.query_response(bad)


def _arrays_response(n_ids: int = 4) -> query_pb2.QueryResponse:
    arrays = query_pb2.QueryArrays(
        ids=["a", "b", "c", ""][:n_ids],
        scores=to_tensor(np.array([[[2.0, 1.0]], [[3.0, -np.inf]]])),  # (B=2, H=1, K=2)
        weights=to_tensor(np.array([[[0.7, 0.3]], [[1.0, 0.0]]])),
        readouts=to_tensor(np.ones((2, 3))),
        answers=["x", "y"],
        probabilities=to_tensor(np.array([0.5, 0.9])),
    )
    return query_pb2.QueryResponse(arrays=arrays, model="m", bank_seq=3)


def test_query_arrays_convert_and_check_their_shapes() -> None:
    arrays = _convert.query_arrays(_arrays_response())
    assert arrays.ids.shape == (2, 1, 2) and arrays.ids[1, 0, 0] == "c"
    assert np.isneginf(arrays.scores[1, 0, 1]) and arrays.weights.dtype == np.float32
    assert arrays.probabilities.tolist() == pytest.approx([0.5, 0.9])
    assert (arrays.answers, arrays.tail_weights, arrays.bank_seq) == (["x", "y"], None, 3)
    with pytest.raises(errors.InternalError, match="disagree"):
        _convert.query_arrays(_arrays_response(n_ids=3))
    missing = _arrays_response()
    missing.arrays.ClearField("readouts")
    with pytest.raises(errors.InternalError, match="required"):
        _convert.query_arrays(missing)


def test_field_is_read_from_the_status_message_or_trailing_metadata() -> None:
    prefixed = errors.from_rpc_error(
        grpc.StatusCode.ALREADY_EXISTS, "name: bank 'x' already exists"
    )
    assert isinstance(prefixed, errors.AlreadyExists) and prefixed.field == "name"
    dotted = errors.from_rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "batch.keys.shape must be 2-D")
    assert dotted.field == "batch.keys.shape"
    plain = errors.from_rpc_error(grpc.StatusCode.NOT_FOUND, "bank 'x' not found")
    assert plain.field is None
    tagged = errors.from_rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, "too big", ((errors.FIELD_METADATA_KEY, "k"),)
    )
    assert tagged.field == "k"
    assert type(errors.from_rpc_error(grpc.StatusCode.DATA_LOSS, "")) is errors.InternalError
