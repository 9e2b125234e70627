import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_INNER_PRODUCT: _ClassVar[Metric]
    METRIC_L2: _ClassVar[Metric]
    METRIC_COSINE: _ClassVar[Metric]

class IndexKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_KIND_UNSPECIFIED: _ClassVar[IndexKind]
    INDEX_KIND_FLAT: _ClassVar[IndexKind]
    INDEX_KIND_HNSW: _ClassVar[IndexKind]
    INDEX_KIND_IVF: _ClassVar[IndexKind]
    INDEX_KIND_IVF_PQ: _ClassVar[IndexKind]
    INDEX_KIND_FACTORY: _ClassVar[IndexKind]

class CapacityPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAPACITY_POLICY_UNSPECIFIED: _ClassVar[CapacityPolicy]
    CAPACITY_POLICY_REJECT: _ClassVar[CapacityPolicy]
    CAPACITY_POLICY_EVICT_OLDEST: _ClassVar[CapacityPolicy]

class ReindexState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REINDEX_STATE_UNSPECIFIED: _ClassVar[ReindexState]
    REINDEX_STATE_IDLE: _ClassVar[ReindexState]
    REINDEX_STATE_REINDEXING: _ClassVar[ReindexState]
    REINDEX_STATE_FAILED: _ClassVar[ReindexState]
    REINDEX_STATE_DONE: _ClassVar[ReindexState]
METRIC_UNSPECIFIED: Metric
METRIC_INNER_PRODUCT: Metric
METRIC_L2: Metric
METRIC_COSINE: Metric
INDEX_KIND_UNSPECIFIED: IndexKind
INDEX_KIND_FLAT: IndexKind
INDEX_KIND_HNSW: IndexKind
INDEX_KIND_IVF: IndexKind
INDEX_KIND_IVF_PQ: IndexKind
INDEX_KIND_FACTORY: IndexKind
CAPACITY_POLICY_UNSPECIFIED: CapacityPolicy
CAPACITY_POLICY_REJECT: CapacityPolicy
CAPACITY_POLICY_EVICT_OLDEST: CapacityPolicy
REINDEX_STATE_UNSPECIFIED: ReindexState
REINDEX_STATE_IDLE: ReindexState
REINDEX_STATE_REINDEXING: ReindexState
REINDEX_STATE_FAILED: ReindexState
REINDEX_STATE_DONE: ReindexState

class IndexSpec(_message.Message):
    __slots__ = ("kind", "hnsw_m", "ef_construction", "ef_search", "nlist", "nprobe", "pq_m", "pq_nbits", "factory")
    KIND_FIELD_NUMBER: _ClassVar[int]
    HNSW_M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    NLIST_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    PQ_M_FIELD_NUMBER: _ClassVar[int]
    PQ_NBITS_FIELD_NUMBER: _ClassVar[int]
    FACTORY_FIELD_NUMBER: _ClassVar[int]
    kind: IndexKind
    hnsw_m: int
    ef_construction: int
    ef_search: int
    nlist: int
    nprobe: int
    pq_m: int
    pq_nbits: int
    factory: str
    def __init__(self, kind: _Optional[_Union[IndexKind, str]] = ..., hnsw_m: _Optional[int] = ..., ef_construction: _Optional[int] = ..., ef_search: _Optional[int] = ..., nlist: _Optional[int] = ..., nprobe: _Optional[int] = ..., pq_m: _Optional[int] = ..., pq_nbits: _Optional[int] = ..., factory: _Optional[str] = ...) -> None: ...

class BankSpec(_message.Message):
    __slots__ = ("name", "model", "key_dim", "value_dim", "metric", "index", "capacity", "capacity_policy", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    KEY_DIM_FIELD_NUMBER: _ClassVar[int]
    VALUE_DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_POLICY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    key_dim: int
    value_dim: int
    metric: Metric
    index: IndexSpec
    capacity: int
    capacity_policy: CapacityPolicy
    description: str
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ..., key_dim: _Optional[int] = ..., value_dim: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., index: _Optional[_Union[IndexSpec, _Mapping]] = ..., capacity: _Optional[int] = ..., capacity_policy: _Optional[_Union[CapacityPolicy, str]] = ..., description: _Optional[str] = ...) -> None: ...

class Bank(_message.Message):
    __slots__ = ("spec", "memory_count", "last_seq", "key_space", "model_version", "model_fingerprint", "reindex")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    MEMORY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    KEY_SPACE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    REINDEX_FIELD_NUMBER: _ClassVar[int]
    spec: BankSpec
    memory_count: int
    last_seq: int
    key_space: str
    model_version: int
    model_fingerprint: str
    reindex: ReindexStatus
    def __init__(self, spec: _Optional[_Union[BankSpec, _Mapping]] = ..., memory_count: _Optional[int] = ..., last_seq: _Optional[int] = ..., key_space: _Optional[str] = ..., model_version: _Optional[int] = ..., model_fingerprint: _Optional[str] = ..., reindex: _Optional[_Union[ReindexStatus, _Mapping]] = ...) -> None: ...

class ReindexStatus(_message.Message):
    __slots__ = ("state", "done", "total", "rate_per_s", "from_model", "to_model", "error", "started_at")
    STATE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_S_FIELD_NUMBER: _ClassVar[int]
    FROM_MODEL_FIELD_NUMBER: _ClassVar[int]
    TO_MODEL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    state: ReindexState
    done: int
    total: int
    rate_per_s: float
    from_model: str
    to_model: str
    error: str
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[ReindexState, str]] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., rate_per_s: _Optional[float] = ..., from_model: _Optional[str] = ..., to_model: _Optional[str] = ..., error: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReindexBankRequest(_message.Message):
    __slots__ = ("bank", "model", "version")
    BANK_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    bank: str
    model: str
    version: int
    def __init__(self, bank: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ReindexBankResponse(_message.Message):
    __slots__ = ("bank",)
    BANK_FIELD_NUMBER: _ClassVar[int]
    bank: Bank
    def __init__(self, bank: _Optional[_Union[Bank, _Mapping]] = ...) -> None: ...

class CancelReindexRequest(_message.Message):
    __slots__ = ("bank",)
    BANK_FIELD_NUMBER: _ClassVar[int]
    bank: str
    def __init__(self, bank: _Optional[str] = ...) -> None: ...

class CreateBankRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: BankSpec
    def __init__(self, spec: _Optional[_Union[BankSpec, _Mapping]] = ...) -> None: ...

class CreateBankResponse(_message.Message):
    __slots__ = ("bank",)
    BANK_FIELD_NUMBER: _ClassVar[int]
    bank: Bank
    def __init__(self, bank: _Optional[_Union[Bank, _Mapping]] = ...) -> None: ...

class GetBankRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetBankResponse(_message.Message):
    __slots__ = ("bank",)
    BANK_FIELD_NUMBER: _ClassVar[int]
    bank: Bank
    def __init__(self, bank: _Optional[_Union[Bank, _Mapping]] = ...) -> None: ...

class ListBanksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBanksResponse(_message.Message):
    __slots__ = ("banks",)
    BANKS_FIELD_NUMBER: _ClassVar[int]
    banks: _containers.RepeatedCompositeFieldContainer[Bank]
    def __init__(self, banks: _Optional[_Iterable[_Union[Bank, _Mapping]]] = ...) -> None: ...

class DeleteBankRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteBankResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CancelReindexResponse(_message.Message):
    __slots__ = ("bank",)
    BANK_FIELD_NUMBER: _ClassVar[int]
    bank: Bank
    def __init__(self, bank: _Optional[_Union[Bank, _Mapping]] = ...) -> None: ...
