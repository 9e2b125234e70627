"""numpy ↔ ``memnet.api.v1.Tensor``: raw little-endian float32 bytes plus a shape.

Shared by the server and the SDK; imports numpy and the generated protos only.
"""

from __future__ import annotations

import math

import numpy as np

from memnet.api.v1 import tensor_pb2
from memnet.errors import InvalidArgument

_FLOAT32_LE = np.dtype("<f4")
MAX_TENSOR_DIMS = 4


def to_tensor(array: np.ndarray) -> tensor_pb2.Tensor:
    """Encode any real array as a float32 Tensor (copies only if not already <f4 C-order)."""
    data = np.ascontiguousarray(array, dtype=_FLOAT32_LE)
    return tensor_pb2.Tensor(
        shape=list(data.shape), dtype=tensor_pb2.DATA_TYPE_FLOAT32, data=data.tobytes()
    )


def from_tensor(
    tensor: tensor_pb2.Tensor,
    *,
    field: str,
    ndim: int | None = None,
    max_elements: int | None = None,
    require_finite: bool = True,
) -> np.ndarray:
    """Decode and validate a Tensor into a read-only float32 array of its shape.

    Raises InvalidArgument naming ``field`` for an unknown dtype, negative or too many
    dimensions, a byte length that disagrees with the shape, more than ``max_elements``
    elements, or (with ``require_finite``) NaN/Inf values.
    """
    if tensor.dtype not in (tensor_pb2.DATA_TYPE_UNSPECIFIED, tensor_pb2.DATA_TYPE_FLOAT32):
        raise InvalidArgument(f"{field}.dtype must be DATA_TYPE_FLOAT32", field=f"{field}.dtype")
    shape = tuple(tensor.shape)  # ints
    if ndim is not None and len(shape) != ndim:
        raise InvalidArgument(
            f"{field}.shape must have {ndim} dimension(s), got {list(shape)}",
            field=f"{field}.shape",
        )
    if len(shape) > MAX_TENSOR_DIMS or (shape and min(shape) < 0):
        raise InvalidArgument(
            f"{field}.shape must be at most {MAX_TENSOR_DIMS} non-negative dimensions, "
            f"got {list(shape)}",
            field=f"{field}.shape",
        )
    elements = math.prod(shape)
    if max_elements is not None and elements > max_elements:
        raise InvalidArgument(
            f"{field} has {elements} elements, limit {max_elements}", field=f"{field}.shape"
        )
    expected_bytes = elements * _FLOAT32_LE.itemsize
    data = tensor.data
    if len(data) != expected_bytes:
        raise InvalidArgument(
            f"{field}.data has {len(data)} bytes, shape {list(shape)} needs "
            f"{expected_bytes} (float32)",
            field=f"{field}.data",
        )
    array = np.frombuffer(data, dtype=_FLOAT32_LE).reshape(shape)
    if require_finite and not np.isfinite(array).all():
        raise InvalidArgument(f"{field} contains NaN or Inf", field=field)
    return array.astype(np.float32, copy=False)
