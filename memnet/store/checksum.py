"""CRC32C (Castagnoli, hardware-accelerated by the ``crc32c`` package) of buffers and files.

Log frames and snapshot files carry CRC32C checksums: it detects every burst error up
to 32 bits and every odd number of flipped bits, and runs at several GB/s here.
"""

from __future__ import annotations

from pathlib import Path

import crc32c as _crc32c

CHUNK_BYTES = 8 << 20


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC32C of ``data``, continuing from ``value`` (the CRC of what came before)."""
    return int(_crc32c.crc32c(data, value=value))


def file_crc32c(path: Path) -> tuple[int, int]:
    """(CRC32C, size in bytes) of the file at ``path``, read in chunks."""
    crc = size = 0
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            crc = crc32c(view[:n], crc)
            size += n
    return crc, size
