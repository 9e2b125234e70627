import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from memnet.api.v1 import bank_pb2 as _bank_pb2
from memnet.api.v1 import query_pb2 as _query_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelVersionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_VERSION_STATE_UNSPECIFIED: _ClassVar[ModelVersionState]
    MODEL_VERSION_STATE_READY: _ClassVar[ModelVersionState]
    MODEL_VERSION_STATE_FAILED: _ClassVar[ModelVersionState]

class InputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_KIND_UNSPECIFIED: _ClassVar[InputKind]
    INPUT_KIND_TEXT: _ClassVar[InputKind]
    INPUT_KIND_VECTOR: _ClassVar[InputKind]
MODEL_VERSION_STATE_UNSPECIFIED: ModelVersionState
MODEL_VERSION_STATE_READY: ModelVersionState
MODEL_VERSION_STATE_FAILED: ModelVersionState
INPUT_KIND_UNSPECIFIED: InputKind
INPUT_KIND_TEXT: InputKind
INPUT_KIND_VECTOR: InputKind

class ModelVersion(_message.Message):
    __slots__ = ("version", "fingerprint", "state", "error", "source", "loaded_at")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    version: int
    fingerprint: str
    state: ModelVersionState
    error: str
    source: str
    loaded_at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[int] = ..., fingerprint: _Optional[str] = ..., state: _Optional[_Union[ModelVersionState, str]] = ..., error: _Optional[str] = ..., source: _Optional[str] = ..., loaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "description", "input_kind", "key_dim", "value_dim", "default_hops", "max_hops", "metric", "scoring", "heads", "attention_modes", "vocab_size", "answer_vocabulary", "temporal_buckets", "is_default", "card", "version", "fingerprint", "versions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    KEY_DIM_FIELD_NUMBER: _ClassVar[int]
    VALUE_DIM_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_HOPS_FIELD_NUMBER: _ClassVar[int]
    MAX_HOPS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SCORING_FIELD_NUMBER: _ClassVar[int]
    HEADS_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_MODES_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    TEMPORAL_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    input_kind: InputKind
    key_dim: int
    value_dim: int
    default_hops: int
    max_hops: int
    metric: _bank_pb2.Metric
    scoring: str
    heads: int
    attention_modes: _containers.RepeatedScalarFieldContainer[_query_pb2.AttentionMode]
    vocab_size: int
    answer_vocabulary: _containers.RepeatedScalarFieldContainer[str]
    temporal_buckets: int
    is_default: bool
    card: ModelCard
    version: int
    fingerprint: str
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., input_kind: _Optional[_Union[InputKind, str]] = ..., key_dim: _Optional[int] = ..., value_dim: _Optional[int] = ..., default_hops: _Optional[int] = ..., max_hops: _Optional[int] = ..., metric: _Optional[_Union[_bank_pb2.Metric, str]] = ..., scoring: _Optional[str] = ..., heads: _Optional[int] = ..., attention_modes: _Optional[_Iterable[_Union[_query_pb2.AttentionMode, str]]] = ..., vocab_size: _Optional[int] = ..., answer_vocabulary: _Optional[_Iterable[str]] = ..., temporal_buckets: _Optional[int] = ..., is_default: _Optional[bool] = ..., card: _Optional[_Union[ModelCard, _Mapping]] = ..., version: _Optional[int] = ..., fingerprint: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ...) -> None: ...

class DataFile(_message.Message):
    __slots__ = ("path", "sha256", "size_bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    size_bytes: int
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class EvalResult(_message.Message):
    __slots__ = ("split", "mean_error_pct", "failed_tasks", "tasks", "questions", "data_fingerprint", "measured_at")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    MEAN_ERROR_PCT_FIELD_NUMBER: _ClassVar[int]
    FAILED_TASKS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    DATA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    MEASURED_AT_FIELD_NUMBER: _ClassVar[int]
    split: str
    mean_error_pct: float
    failed_tasks: int
    tasks: int
    questions: int
    data_fingerprint: str
    measured_at: str
    def __init__(self, split: _Optional[str] = ..., mean_error_pct: _Optional[float] = ..., failed_tasks: _Optional[int] = ..., tasks: _Optional[int] = ..., questions: _Optional[int] = ..., data_fingerprint: _Optional[str] = ..., measured_at: _Optional[str] = ...) -> None: ...

class ModelCard(_message.Message):
    __slots__ = ("command", "settings", "data_files", "data_fingerprint", "data_summary", "results", "train_seconds", "trained_at", "memnet_version")
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class DataSummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    DATA_FILES_FIELD_NUMBER: _ClassVar[int]
    DATA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    DATA_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRAINED_AT_FIELD_NUMBER: _ClassVar[int]
    MEMNET_VERSION_FIELD_NUMBER: _ClassVar[int]
    command: str
    settings: _containers.ScalarMap[str, str]
    data_files: _containers.RepeatedCompositeFieldContainer[DataFile]
    data_fingerprint: str
    data_summary: _containers.ScalarMap[str, str]
    results: _containers.RepeatedCompositeFieldContainer[EvalResult]
    train_seconds: float
    trained_at: str
    memnet_version: str
    def __init__(self, command: _Optional[str] = ..., settings: _Optional[_Mapping[str, str]] = ..., data_files: _Optional[_Iterable[_Union[DataFile, _Mapping]]] = ..., data_fingerprint: _Optional[str] = ..., data_summary: _Optional[_Mapping[str, str]] = ..., results: _Optional[_Iterable[_Union[EvalResult, _Mapping]]] = ..., train_seconds: _Optional[float] = ..., trained_at: _Optional[str] = ..., memnet_version: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class LoadModelResponse(_message.Message):
    __slots__ = ("changed", "models")
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    changed: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, changed: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class UnloadModelRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
