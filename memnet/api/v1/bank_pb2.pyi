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
    __slots__ = ("spec", "memory_count", "last_seq", "key_space")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    MEMORY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    KEY_SPACE_FIELD_NUMBER: _ClassVar[int]
    spec: BankSpec
    memory_count: int
    last_seq: int
    key_space: str
    def __init__(self, spec: _Optional[_Union[BankSpec, _Mapping]] = ..., memory_count: _Optional[int] = ..., last_seq: _Optional[int] = ..., key_space: _Optional[str] = ...) -> None: ...

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
