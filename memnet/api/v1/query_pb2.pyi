from memnet.api.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AttentionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTENTION_MODE_UNSPECIFIED: _ClassVar[AttentionMode]
    ATTENTION_MODE_SPARSE: _ClassVar[AttentionMode]
    ATTENTION_MODE_SOFT: _ClassVar[AttentionMode]
    ATTENTION_MODE_HARD: _ClassVar[AttentionMode]

class ResultLayout(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESULT_LAYOUT_UNSPECIFIED: _ClassVar[ResultLayout]
    RESULT_LAYOUT_MEMORIES: _ClassVar[ResultLayout]
    RESULT_LAYOUT_ARRAYS: _ClassVar[ResultLayout]
ATTENTION_MODE_UNSPECIFIED: AttentionMode
ATTENTION_MODE_SPARSE: AttentionMode
ATTENTION_MODE_SOFT: AttentionMode
ATTENTION_MODE_HARD: AttentionMode
RESULT_LAYOUT_UNSPECIFIED: ResultLayout
RESULT_LAYOUT_MEMORIES: ResultLayout
RESULT_LAYOUT_ARRAYS: ResultLayout

class QueryRequest(_message.Message):
    __slots__ = ("bank", "questions", "query_vectors", "k", "hops", "attention_mode", "metadata_filter_json", "include_vectors", "top_answers", "ef_search", "nprobe", "tail_samples", "layout")
    BANK_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    QUERY_VECTORS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_MODE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    TOP_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    TAIL_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    bank: str
    questions: _containers.RepeatedScalarFieldContainer[str]
    query_vectors: _tensor_pb2.Tensor
    k: int
    hops: int
    attention_mode: AttentionMode
    metadata_filter_json: str
    include_vectors: bool
    top_answers: int
    ef_search: int
    nprobe: int
    tail_samples: int
    layout: ResultLayout
    def __init__(self, bank: _Optional[str] = ..., questions: _Optional[_Iterable[str]] = ..., query_vectors: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., k: _Optional[int] = ..., hops: _Optional[int] = ..., attention_mode: _Optional[_Union[AttentionMode, str]] = ..., metadata_filter_json: _Optional[str] = ..., include_vectors: _Optional[bool] = ..., top_answers: _Optional[int] = ..., ef_search: _Optional[int] = ..., nprobe: _Optional[int] = ..., tail_samples: _Optional[int] = ..., layout: _Optional[_Union[ResultLayout, str]] = ...) -> None: ...

class AnswerCandidate(_message.Message):
    __slots__ = ("answer", "probability")
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    answer: str
    probability: float
    def __init__(self, answer: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class AttendedMemory(_message.Message):
    __slots__ = ("id", "score", "weight", "text", "metadata_json", "key", "value")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    weight: float
    text: str
    metadata_json: str
    key: _tensor_pb2.Tensor
    value: _tensor_pb2.Tensor
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., weight: _Optional[float] = ..., text: _Optional[str] = ..., metadata_json: _Optional[str] = ..., key: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., value: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ...) -> None: ...

class HopAttention(_message.Message):
    __slots__ = ("hop", "memories", "tail_weight")
    HOP_FIELD_NUMBER: _ClassVar[int]
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    TAIL_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    hop: int
    memories: _containers.RepeatedCompositeFieldContainer[AttendedMemory]
    tail_weight: float
    def __init__(self, hop: _Optional[int] = ..., memories: _Optional[_Iterable[_Union[AttendedMemory, _Mapping]]] = ..., tail_weight: _Optional[float] = ...) -> None: ...

class QueryResult(_message.Message):
    __slots__ = ("answer", "probability", "alternatives", "readout", "hops", "unknown_words")
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    READOUT_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_WORDS_FIELD_NUMBER: _ClassVar[int]
    answer: str
    probability: float
    alternatives: _containers.RepeatedCompositeFieldContainer[AnswerCandidate]
    readout: _tensor_pb2.Tensor
    hops: _containers.RepeatedCompositeFieldContainer[HopAttention]
    unknown_words: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, answer: _Optional[str] = ..., probability: _Optional[float] = ..., alternatives: _Optional[_Iterable[_Union[AnswerCandidate, _Mapping]]] = ..., readout: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., hops: _Optional[_Iterable[_Union[HopAttention, _Mapping]]] = ..., unknown_words: _Optional[_Iterable[str]] = ...) -> None: ...

class QueryArrays(_message.Message):
    __slots__ = ("ids", "scores", "weights", "tail_weights", "readouts", "answers", "probabilities", "unknown_words")
    IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    TAIL_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    READOUTS_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_WORDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    scores: _tensor_pb2.Tensor
    weights: _tensor_pb2.Tensor
    tail_weights: _tensor_pb2.Tensor
    readouts: _tensor_pb2.Tensor
    answers: _containers.RepeatedScalarFieldContainer[str]
    probabilities: _tensor_pb2.Tensor
    unknown_words: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., scores: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., weights: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., tail_weights: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., readouts: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., answers: _Optional[_Iterable[str]] = ..., probabilities: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., unknown_words: _Optional[_Iterable[str]] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("results", "model", "bank_seq", "arrays", "model_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BANK_SEQ_FIELD_NUMBER: _ClassVar[int]
    ARRAYS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[QueryResult]
    model: str
    bank_seq: int
    arrays: QueryArrays
    model_version: int
    def __init__(self, results: _Optional[_Iterable[_Union[QueryResult, _Mapping]]] = ..., model: _Optional[str] = ..., bank_seq: _Optional[int] = ..., arrays: _Optional[_Union[QueryArrays, _Mapping]] = ..., model_version: _Optional[int] = ...) -> None: ...
