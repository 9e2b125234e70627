from __future__ import annotations

import numpy as np
import pytest

from memnet.api.tensors import from_tensor, to_tensor
from memnet.api.v1 import tensor_pb2
from memnet.errors import InvalidArgument


def test_round_trip_keeps_shape_and_values_bit_exact() -> None:
    rng = np.random.default_rng(0)
    array = rng.standard_normal((3, 5)).astype(np.float64)
    tensor = to_tensor(array)
    assert list(tensor.shape) == [3, 5]
    assert len(tensor.data) == 3 * 5 * 4
    decoded = from_tensor(tensor, field="keys", ndim=2)
    np.testing.assert_array_equal(decoded, array.astype(np.float32))
    assert decoded.dtype == np.float32


def test_bytes_are_little_endian_float32() -> None:
    tensor = to_tensor(np.array([1.0], dtype=">f4"))
    assert tensor.data == np.array([1.0], dtype="<f4").tobytes() == b"\x00\x00\x80?"


@pytest.mark.parametrize(
    ("tensor", "field_suffix"),
    [
        (tensor_pb2.Tensor(shape=[2, 2], data=b"\0" * 12), ".data"),
        (tensor_pb2.Tensor(shape=[-1, 2], data=b""), ".shape"),
        (tensor_pb2.Tensor(shape=[1, 1, 1, 1, 1], data=b"\0" * 4), ".shape"),
        (tensor_pb2.Tensor(shape=[2], dtype=7, data=b"\0" * 8), ".dtype"),
    ],
)
def test_malformed_tensors_name_the_field(tensor: tensor_pb2.Tensor, field_suffix: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        from_tensor(tensor, field="keys")
    assert raised.value.field == "keys" + field_suffix
    assert "keys" in str(raised.value)


def test_wrong_rank_too_many_elements_and_nan_are_rejected() -> None:
    with pytest.raises(InvalidArgument, match="2 dimension"):
        from_tensor(to_tensor(np.zeros(4)), field="keys", ndim=2)
    with pytest.raises(InvalidArgument, match="limit 3"):
        from_tensor(to_tensor(np.zeros(4)), field="keys", max_elements=3)
    with pytest.raises(InvalidArgument, match="NaN"):
        from_tensor(to_tensor(np.array([1.0, np.nan])), field="keys")
    kept = from_tensor(to_tensor(np.array([np.inf])), field="keys", require_finite=False)
    assert np.isinf(kept[0])
