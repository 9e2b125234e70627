"""BankService and ModelService through the raw stubs."""

from __future__ import annotations

import grpc
from server_support import Running, rpc_error

from memnet.api.v1 import bank_pb2, model_pb2


def _create(server: Running, **spec: object) -> bank_pb2.Bank:
    return server.banks.CreateBank(bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(**spec))).bank


def test_create_fills_defaults_and_get_list_delete_round_trip(server: Running) -> None:
    created = _create(
        server,
        name="docs",
        model="vector",
        key_dim=16,
        value_dim=8,
        index=bank_pb2.IndexSpec(kind=bank_pb2.INDEX_KIND_HNSW, ef_search=128),
        capacity=100,
        capacity_policy=bank_pb2.CAPACITY_POLICY_EVICT_OLDEST,
        description="notes",
    )
    spec = created.spec
    assert (spec.name, spec.model, spec.key_dim, spec.value_dim) == ("docs", "vector", 16, 8)
    assert spec.metric == bank_pb2.METRIC_INNER_PRODUCT  # the model's metric
    assert spec.index.kind == bank_pb2.INDEX_KIND_HNSW
    assert (spec.index.ef_search, spec.index.hnsw_m) == (128, 32)  # given, server default
    assert (spec.capacity, spec.capacity_policy) == (100, bank_pb2.CAPACITY_POLICY_EVICT_OLDEST)
    assert "vector" in created.key_space and "dim 16" in created.key_space
    assert created.memory_count == 0

    got = server.banks.GetBank(bank_pb2.GetBankRequest(name="docs")).bank
    assert got == created
    _create(server, name="another", model="vector", key_dim=4, value_dim=4)
    listed = server.banks.ListBanks(bank_pb2.ListBanksRequest()).banks
    assert [bank.spec.name for bank in listed] == ["another", "docs"]

    server.banks.DeleteBank(bank_pb2.DeleteBankRequest(name="docs"))
    error = rpc_error(lambda: server.banks.GetBank(bank_pb2.GetBankRequest(name="docs")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert [b.spec.name for b in server.banks.ListBanks(bank_pb2.ListBanksRequest()).banks] == [
        "another"
    ]


def test_bank_errors_name_the_field(server: Running) -> None:
    _create(server, name="taken", model="vector", key_dim=4, value_dim=4)
    cases = [
        (dict(name="taken", model="vector", key_dim=4, value_dim=4), "ALREADY_EXISTS", "taken"),
        (
            dict(name="bad name!", model="vector", key_dim=4, value_dim=4),
            "INVALID_ARGUMENT",
            "name",
        ),
        (dict(name="nodims", model="vector"), "INVALID_ARGUMENT", "key_dim"),
        (
            dict(name="huge", model="vector", key_dim=9000, value_dim=4),
            "INVALID_ARGUMENT",
            "key_dim",
        ),
        (dict(name="nomodel", model="no-such-model", key_dim=4, value_dim=4), "NOT_FOUND", "model"),
        (
            dict(
                name="fac",
                model="vector",
                key_dim=4,
                value_dim=4,
                index=bank_pb2.IndexSpec(kind=bank_pb2.INDEX_KIND_HNSW, hnsw_m=1000),
            ),
            "INVALID_ARGUMENT",
            "hnsw_m",
        ),
        (
            dict(name="enum", model="vector", key_dim=4, value_dim=4, metric=42),
            "INVALID_ARGUMENT",
            "metric",
        ),
    ]
    for spec, code, word in cases:
        error = rpc_error(lambda spec=spec: _create(server, **spec))  # type: ignore[misc]
        assert error.code().name == code, (spec, error.details())
        assert word in error.details(), (spec, error.details())
    for call in (
        lambda: server.banks.GetBank(bank_pb2.GetBankRequest(name="missing")),
        lambda: server.banks.DeleteBank(bank_pb2.DeleteBankRequest(name="missing")),
    ):
        assert rpc_error(call).code() == grpc.StatusCode.NOT_FOUND
    names = [b.spec.name for b in server.banks.ListBanks(bank_pb2.ListBanksRequest()).banks]
    assert names == ["taken"]  # nothing else was created by the failed calls


def test_models_are_listed_and_described(server: Running) -> None:
    models = server.models.ListModels(model_pb2.ListModelsRequest()).models
    by_name = {model.name: model for model in models}
    assert "vector" in by_name
    assert sum(model.is_default for model in models) == 1
    vector = server.models.GetModel(model_pb2.GetModelRequest(name="vector")).model
    assert vector == by_name["vector"]
    assert vector.input_kind == model_pb2.INPUT_KIND_VECTOR
    assert vector.max_hops >= 1 and vector.attention_modes
    error = rpc_error(lambda: server.models.GetModel(model_pb2.GetModelRequest(name="nope")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = rpc_error(lambda: server.models.GetModel(model_pb2.GetModelRequest(name="")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
