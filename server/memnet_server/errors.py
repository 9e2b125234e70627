"""The one table from domain exceptions to gRPC status codes.

Nothing else in the server decides a status code: servicers raise ``MemnetError``
subclasses (or let the library raise them) and the call wrapper in
``interceptors.py`` turns them into statuses with ``status_for``.
"""

from __future__ import annotations

import logging

import grpc

from memnet import errors

LOG = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.MemnetError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}

INTERNAL_MESSAGE = "internal error; the server log has the details"
# gRPC sends the message in a trailer, percent-encoded (up to 3 bytes per UTF-8 byte), and
# clients refuse trailers past 8-16 KiB: a message past this many characters is cut.
MAX_STATUS_MESSAGE_CHARS = 1024


def status_for(error: BaseException, *, method: str) -> tuple[grpc.StatusCode, str]:
    """The status code and message a failed call answers with.

    Domain errors keep their message (which names the field and the limit); a
    ``MemnetError`` of no listed subclass is INVALID_ARGUMENT. Anything else is a
    bug: logged with its traceback, answered INTERNAL with a generic message.
    """
    if isinstance(error, errors.MemnetError):
        for error_type in type(error).__mro__:
            code = STATUS_BY_ERROR.get(error_type)
            if code is not None:
                return code, _capped(_with_field(error))
        return grpc.StatusCode.INVALID_ARGUMENT, _capped(_with_field(error))
    LOG.error("unexpected error in %s", method, exc_info=error)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


def _with_field(error: errors.MemnetError) -> str:
    message = str(error)
    root = (error.field or "").split(".")[0].split("[")[0]
    if error.field and root not in message:
        return f"{error.field}: {message}"
    return message


def _capped(message: str) -> str:
    if len(message) <= MAX_STATUS_MESSAGE_CHARS:
        return message
    cut = MAX_STATUS_MESSAGE_CHARS
    return f"{message[:cut]}… (message cut at {cut} characters)"
