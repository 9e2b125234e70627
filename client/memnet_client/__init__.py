"""memnet_client: the Python SDK of the memnet gRPC service.

Needs grpcio, protobuf, pydantic and numpy only (tqdm for optional progress bars);
never imports torch or faiss.

    from memnet_client import MemnetClient, SearchParams

    with MemnetClient("127.0.0.1:50051") as client:
        client.create_bank("story")
        client.write("story", ["Mary moved to the bathroom.", "John went to the hallway."])
        result = client.query("story", "Where is Mary?", params=SearchParams(k=8)).results[0]
        print(result.answer, [(m.text, m.weight) for m in result.hops[0].memories])

See ``docs/sdk.md`` for the whole surface, defaults, retries and errors.
"""

from __future__ import annotations

from memnet_client import errors, models, options
from memnet_client._call import DEFAULT_TIMEOUT_S, DEFAULT_WRITE_TIMEOUT_S, RetryPolicy
from memnet_client._channel import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_TARGET, TlsConfig
from memnet_client._rpcs import Stubs
from memnet_client.aio import AsyncMemnetClient
from memnet_client.client import MemnetClient
from memnet_client.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    MemnetError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unauthenticated,
    Unavailable,
    ValidationError,
)
from memnet_client.models import (
    AnswerCandidate,
    AttendedMemory,
    Bank,
    BankSpec,
    Hop,
    IndexSpec,
    Memory,
    MemoryPage,
    ModelInfo,
    ModelVersion,
    QueryArrays,
    QueryResponse,
    QueryResult,
    ReindexStatus,
    StreamWriteResult,
    WriteResult,
)
from memnet_client.options import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_MAX_CHUNK_MEMORIES,
    SearchParams,
    WriteOptions,
)

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_MAX_CHUNK_MEMORIES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_WRITE_TIMEOUT_S",
    "AlreadyExists",
    "AnswerCandidate",
    "AsyncMemnetClient",
    "AttendedMemory",
    "Bank",
    "BankSpec",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Hop",
    "IndexSpec",
    "InternalError",
    "InvalidArgument",
    "MemnetClient",
    "MemnetError",
    "Memory",
    "MemoryPage",
    "ModelInfo",
    "ModelVersion",
    "NotFound",
    "PermissionDenied",
    "QueryArrays",
    "QueryResponse",
    "QueryResult",
    "ReindexStatus",
    "ResourceExhausted",
    "RetryPolicy",
    "SearchParams",
    "ServiceError",
    "StreamWriteResult",
    "Stubs",
    "TlsConfig",
    "Unauthenticated",
    "Unavailable",
    "ValidationError",
    "WriteOptions",
    "WriteResult",
    "errors",
    "models",
    "options",
]
