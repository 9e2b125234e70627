"""CreateBank in domain terms: the request, and the bank configuration it makes.

A text model fixes a bank's key and value dimensions and its metric (its attention
scores); a vector model takes the caller's. Every error names the request field.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from memnet.core.enums import InputKind, Metric
from memnet.errors import InvalidArgument
from memnet.serving.repository import ModelVersion
from memnet.store.types import BankConfig, CapacityPolicy, IndexSpec
from memnet_server.convert import validation_error


@dataclass(frozen=True)
class BankRequest:
    """A CreateBank request in domain terms; None/0 fields take model or server defaults."""

    name: str
    model: str | None
    key_dim: int
    value_dim: int
    metric: Metric | None
    index: IndexSpec
    capacity: int | None
    capacity_policy: CapacityPolicy
    description: str


def bank_config(request: BankRequest, version: ModelVersion) -> BankConfig:
    """The configuration of a bank bound to the model ``version``; InvalidArgument
    naming ``spec.<field>`` for dimensions or a metric the model does not allow."""
    info = version.served().info
    key_dim, value_dim = request.key_dim, request.value_dim
    if info.input_kind is InputKind.TEXT:
        for field, given, fixed in (
            ("key_dim", key_dim, info.key_dim),
            ("value_dim", value_dim, info.value_dim),
        ):
            if given and given != fixed:
                raise InvalidArgument(
                    f"spec.{field} must be 0 or {fixed} for model {info.name!r}, got {given}",
                    field=f"spec.{field}",
                )
        key_dim, value_dim = info.key_dim or 0, info.value_dim or 0
        if request.metric not in (None, info.metric):
            raise InvalidArgument(
                f"spec.metric must be {info.metric.value} for model {info.name!r} "
                f"(its attention scores), got {request.metric.value}",
                field="spec.metric",
            )
    elif not key_dim or not value_dim:
        raise InvalidArgument(
            f"spec.key_dim and spec.value_dim are required (1..8192) for model {info.name!r}",
            field="spec.key_dim" if not key_dim else "spec.value_dim",
        )
    try:
        return BankConfig(
            name=request.name,
            key_dim=key_dim,
            value_dim=value_dim,
            metric=request.metric or info.metric,
            index=request.index,
            capacity=request.capacity,
            capacity_policy=request.capacity_policy,
            model=version.name,
            model_version=version.version,
            model_fingerprint=version.fingerprint,
            description=request.description,
        )
    except ValidationError as error:
        raise validation_error(error, prefix="spec") from error
