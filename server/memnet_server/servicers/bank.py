"""BankService: create, describe, list and delete banks."""

from __future__ import annotations

import grpc

from memnet.api.v1 import bank_pb2, bank_pb2_grpc
from memnet.errors import InvalidArgument
from memnet.serving.repository import ModelRef
from memnet.store.interface import MemoryBank
from memnet_server.auth import visible
from memnet_server.bank_requests import BankRequest
from memnet_server.convert import (
    CAPACITY_POLICY_FROM_PROTO,
    CAPACITY_POLICY_TO_PROTO,
    METRIC_FROM_PROTO,
    METRIC_TO_PROTO,
    as_spec_error,
    enum_value,
    index_spec_from_proto,
    index_spec_to_proto,
)
from memnet_server.engine import Engine
from memnet_server.reindex import JobState, ReindexStatus


def bank_to_proto(engine: Engine, bank: MemoryBank) -> bank_pb2.Bank:
    config = bank.config
    spec = bank_pb2.BankSpec(
        name=config.name,
        model=config.model or engine.default_model,
        key_dim=config.key_dim,
        value_dim=config.value_dim,
        metric=METRIC_TO_PROTO[config.metric],
        index=index_spec_to_proto(config.index),
        capacity=config.capacity or 0,
        capacity_policy=CAPACITY_POLICY_TO_PROTO[config.capacity_policy],
        description=config.description,
    )
    return bank_pb2.Bank(
        spec=spec,
        memory_count=bank.count(),
        last_seq=bank.last_seq,
        key_space=engine.key_space(bank),
        model_version=config.model_version or 0,
        model_fingerprint=config.model_fingerprint or "",
        reindex=reindex_to_proto(engine.reindexer.status(bank.name)),
    )


_REINDEX_STATE_TO_PROTO = {
    JobState.IDLE: bank_pb2.REINDEX_STATE_IDLE,
    JobState.REINDEXING: bank_pb2.REINDEX_STATE_REINDEXING,
    JobState.FAILED: bank_pb2.REINDEX_STATE_FAILED,
    JobState.DONE: bank_pb2.REINDEX_STATE_DONE,
}


def reindex_to_proto(status: ReindexStatus) -> bank_pb2.ReindexStatus:
    message = bank_pb2.ReindexStatus(
        state=_REINDEX_STATE_TO_PROTO[status.state],
        done=status.done,
        total=status.total,
        rate_per_s=status.rate_per_s,
        from_model=status.from_model,
        to_model=status.to_model,
        error=status.error,
    )
    if status.started_at_s:
        message.started_at.FromNanoseconds(int(status.started_at_s * 1e9))
    return message


class BankServicer(bank_pb2_grpc.BankServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def CreateBank(  # noqa: N802
        self, request: bank_pb2.CreateBankRequest, context: grpc.ServicerContext
    ) -> bank_pb2.CreateBankResponse:
        spec = request.spec
        bank_request = BankRequest(
            name=spec.name,
            model=spec.model or None,
            key_dim=spec.key_dim,
            value_dim=spec.value_dim,
            metric=enum_value(METRIC_FROM_PROTO, spec.metric, field="spec.metric"),
            index=index_spec_from_proto(spec.index),
            capacity=spec.capacity or None,
            capacity_policy=enum_value(
                CAPACITY_POLICY_FROM_PROTO, spec.capacity_policy, field="spec.capacity_policy"
            ),
            description=spec.description,
        )
        try:
            bank = self._engine.create_bank(bank_request)
        except InvalidArgument as error:
            raise as_spec_error(error) from error
        return bank_pb2.CreateBankResponse(bank=bank_to_proto(self._engine, bank))

    def GetBank(  # noqa: N802
        self, request: bank_pb2.GetBankRequest, context: grpc.ServicerContext
    ) -> bank_pb2.GetBankResponse:
        bank = self._engine.bank(request.name)
        return bank_pb2.GetBankResponse(bank=bank_to_proto(self._engine, bank))

    def ListBanks(  # noqa: N802
        self, request: bank_pb2.ListBanksRequest, context: grpc.ServicerContext
    ) -> bank_pb2.ListBanksResponse:
        banks = [bank for bank in self._engine.banks() if visible(bank.name)]
        banks.sort(key=lambda bank: bank.name)
        return bank_pb2.ListBanksResponse(
            banks=[bank_to_proto(self._engine, bank) for bank in banks]
        )

    def DeleteBank(  # noqa: N802
        self, request: bank_pb2.DeleteBankRequest, context: grpc.ServicerContext
    ) -> bank_pb2.DeleteBankResponse:
        self._engine.drop_bank(request.name)
        return bank_pb2.DeleteBankResponse()

    def ReindexBank(  # noqa: N802
        self, request: bank_pb2.ReindexBankRequest, context: grpc.ServicerContext
    ) -> bank_pb2.ReindexBankResponse:
        if not request.model:
            raise InvalidArgument("model (NAME or NAME@VERSION) is required", field="model")
        ref = ModelRef.parse(request.model, field="model")
        if request.version:
            if ref.version is not None and ref.version != request.version:
                raise InvalidArgument(
                    f"model {request.model!r} and version {request.version} disagree",
                    field="version",
                )
            ref = ModelRef(ref.name, request.version)
        self._engine.reindex_bank(request.bank, str(ref))
        bank = self._engine.bank(request.bank)
        return bank_pb2.ReindexBankResponse(bank=bank_to_proto(self._engine, bank))

    def CancelReindex(  # noqa: N802
        self, request: bank_pb2.CancelReindexRequest, context: grpc.ServicerContext
    ) -> bank_pb2.CancelReindexResponse:
        bank = self._engine.bank(request.bank)
        self._engine.reindexer.cancel(bank.name)
        return bank_pb2.CancelReindexResponse(bank=bank_to_proto(self._engine, bank))
