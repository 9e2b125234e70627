"""A full disk (ENOSPC, EDQUOT) is reported as ``ResourceExhausted(field="disk")``.

Every other ``OSError`` is left as it is: those are faults of the machine, not of a
resource the operator can free.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from memnet.errors import ResourceExhausted

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS


def disk_full_error(err: OSError, what: str) -> ResourceExhausted:
    reason = os.strerror(err.errno) if err.errno is not None else str(err)
    return ResourceExhausted(f"{what}: the disk is full ({reason})", field="disk")


@contextmanager
def disk_full_as_resource_exhausted(what: str) -> Iterator[None]:
    """Re-raise ENOSPC/EDQUOT raised inside the block as ResourceExhausted naming ``what``."""
    try:
        yield
    except OSError as err:
        if is_disk_full(err):
            raise disk_full_error(err, what) from err
        raise
