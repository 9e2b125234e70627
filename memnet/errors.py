"""Domain exceptions shared by the library, the server and the CLI.

Every user error is a ``MemnetError`` (a ``ValueError``) that names the field at
fault and, where there is one, the limit it broke. The server maps each class to
one gRPC status code (``memnet_server.errors``); nothing else decides codes.
"""

from __future__ import annotations


class MemnetError(ValueError):
    """Base class of every error caused by a caller's request or by stored state."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidArgument(MemnetError):
    """A request field is malformed or outside its limit (gRPC INVALID_ARGUMENT)."""


class NotFound(MemnetError):
    """A named bank, model or memory does not exist (gRPC NOT_FOUND)."""


class AlreadyExists(MemnetError):
    """A bank or memory id exists and the call asked not to replace it (ALREADY_EXISTS)."""


class ResourceExhausted(MemnetError):
    """A capacity, quota, queue or disk limit was reached (RESOURCE_EXHAUSTED)."""


class FailedPrecondition(MemnetError):
    """The system is not in a state that allows the call (FAILED_PRECONDITION)."""


class KeySpaceChanged(FailedPrecondition):
    """A bank switched to another model version while a query encoded for the old one
    was running; running the query again encodes it for the new one."""


class Unauthenticated(MemnetError):
    """No valid credentials were presented (UNAUTHENTICATED)."""


class PermissionDenied(MemnetError):
    """The credentials do not allow this call on this bank (PERMISSION_DENIED)."""


class DeadlineExceeded(MemnetError):
    """The caller's deadline passed before the work finished (DEADLINE_EXCEEDED)."""


class Unavailable(MemnetError):
    """A service the store depends on (e.g. Milvus) cannot be reached (gRPC UNAVAILABLE).

    The call may be retried; a write that failed this way may or may not have been stored.
    """
