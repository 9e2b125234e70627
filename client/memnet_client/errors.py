"""Typed exceptions of the SDK, one per gRPC status code.

Every exception the SDK raises is a ``memnet.errors.MemnetError`` (a ``ValueError``),
so callers catch one hierarchy whether an error was found by the SDK before sending
or by the server:

* ``ValidationError`` (an ``InvalidArgument``): the SDK rejected an argument before
  any RPC was made; ``.field`` names the argument.
* ``ServiceError`` and its subclasses: the server (or the transport) answered with a
  status code. They are raised ``from`` the original ``grpc.RpcError`` and carry
  ``.code`` (``grpc.StatusCode``), ``.details`` (the server's message) and ``.field``
  (the request field at fault, when the server named one).

Each status that the service's contract uses maps to a subclass of the matching
domain class in ``memnet.errors``, so ``except memnet.errors.NotFound`` catches
``memnet_client.errors.NotFound`` too.
"""

# The class names mirror gRPC status codes and memnet.errors, not the "Error" suffix rule.

from __future__ import annotations

import re

import grpc

from memnet import errors as domain
from memnet.errors import MemnetError

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InternalError",
    "InvalidArgument",
    "MemnetError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "ServiceError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "ValidationError",
    "from_rpc_error",
]

# Trailing-metadata key under which a server may name the request field at fault.
FIELD_METADATA_KEY = "memnet-field"
# Otherwise the field is read from the message, where the server puts it first:
# "bank: ..." or "batch.keys.shape must have 2 dimension(s), got [3]".
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)(:?) ")


class ValidationError(domain.InvalidArgument):
    """The SDK rejected an argument before sending anything; ``.field`` names it."""


class ServiceError(MemnetError):
    """A call failed with a gRPC status; raised ``from`` the ``grpc.RpcError``.

    Attributes:
        code: the ``grpc.StatusCode`` of the failed call.
        details: the status message sent by the server (or the transport).
        field: the request field at fault, when the server named one, else None.
    """

    def __init__(self, details: str, *, code: grpc.StatusCode, field: str | None = None) -> None:
        super().__init__(f"{code.name}: {details}", field=field)
        self.code = code
        self.details = details


class InvalidArgument(ServiceError, domain.InvalidArgument):
    """INVALID_ARGUMENT (and OUT_OF_RANGE): a request field is malformed or over a limit."""


class NotFound(ServiceError, domain.NotFound):
    """NOT_FOUND: the bank, model or memory does not exist."""


class AlreadyExists(ServiceError, domain.AlreadyExists):
    """ALREADY_EXISTS: the bank name is taken, or an id exists under mode="insert"."""


class ResourceExhausted(ServiceError, domain.ResourceExhausted):
    """RESOURCE_EXHAUSTED: a capacity, quota, message-size or disk limit was reached."""


class FailedPrecondition(ServiceError, domain.FailedPrecondition):
    """FAILED_PRECONDITION (and ABORTED): the state of the bank or server forbids the call."""


class Unauthenticated(ServiceError, domain.Unauthenticated):
    """UNAUTHENTICATED: no API key, or an unknown one."""


class PermissionDenied(ServiceError, domain.PermissionDenied):
    """PERMISSION_DENIED: the API key may not make this call on this bank."""


class DeadlineExceeded(ServiceError, domain.DeadlineExceeded):
    """DEADLINE_EXCEEDED: the call's ``timeout_s`` passed before it finished.

    For a write the outcome is unknown: the server may have committed it.
    """


class Unavailable(ServiceError):
    """UNAVAILABLE: the server cannot be reached (down, restarting, network).

    Idempotent calls are retried with backoff before this is raised.
    """


class Cancelled(ServiceError):
    """CANCELLED: the call was cancelled (by the caller, or the server shut down)."""


class Unimplemented(ServiceError):
    """UNIMPLEMENTED: the server does not offer this RPC (an older server version)."""


class InternalError(ServiceError):
    """INTERNAL, UNKNOWN or DATA_LOSS: a server bug or a broken response; report it."""


_BY_CODE: dict[grpc.StatusCode, type[ServiceError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}


def error_class(code: grpc.StatusCode) -> type[ServiceError]:
    """The exception class the SDK raises for a status code."""
    return _BY_CODE.get(code, InternalError)


def from_rpc_error(
    code: grpc.StatusCode,
    details: str | None,
    trailing_metadata: tuple[tuple[str, str | bytes], ...] | None = None,
) -> ServiceError:
    """Build the typed exception for a failed call (the caller raises it ``from`` the RpcError)."""
    message = details or code.name
    field: str | None = None
    for key, value in trailing_metadata or ():
        if key == FIELD_METADATA_KEY:
            field = value.decode() if isinstance(value, bytes) else value
    if field is None:
        match = _FIELD_PREFIX.match(message)
        if match and (match.group(2) or "." in match.group(1) or "[" in match.group(1)):
            field = match.group(1)
    return error_class(code)(message, code=code, field=field)
