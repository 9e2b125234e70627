"""ModelService: list, describe, load and unload the served model versions."""

from __future__ import annotations

import grpc
from google.protobuf import timestamp_pb2

from memnet.api.v1 import model_pb2, model_pb2_grpc
from memnet.errors import InvalidArgument
from memnet.serving.repository import ModelRef, ModelVersion, VersionState
from memnet_server.convert import model_to_proto
from memnet_server.engine import Engine

_STATE_TO_PROTO = {
    VersionState.READY: model_pb2.MODEL_VERSION_STATE_READY,
    VersionState.FAILED: model_pb2.MODEL_VERSION_STATE_FAILED,
}


def version_to_proto(entry: ModelVersion) -> model_pb2.ModelVersion:
    loaded_at = timestamp_pb2.Timestamp()
    loaded_at.FromNanoseconds(int(entry.loaded_at_s * 1e9))
    return model_pb2.ModelVersion(
        version=entry.version,
        fingerprint=entry.fingerprint,
        state=_STATE_TO_PROTO[entry.state],
        error=entry.error,
        source=entry.source,
        loaded_at=loaded_at,
    )


class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _model(self, entry: ModelVersion) -> model_pb2.Model:
        engine = self._engine
        message = model_to_proto(entry.served().info, is_default=entry.name == engine.default_model)
        message.version = entry.version
        message.fingerprint = entry.fingerprint
        message.versions.extend(version_to_proto(v) for v in engine.models.versions(entry.name))
        return message

    def _all(self) -> list[model_pb2.Model]:
        return [self._model(entry) for entry in self._engine.models.latest()]

    def ListModels(  # noqa: N802
        self, request: model_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> model_pb2.ListModelsResponse:
        return model_pb2.ListModelsResponse(models=self._all())

    def GetModel(  # noqa: N802
        self, request: model_pb2.GetModelRequest, context: grpc.ServicerContext
    ) -> model_pb2.GetModelResponse:
        if not request.name:
            raise InvalidArgument("name (NAME or NAME@VERSION) is required", field="name")
        entry = self._engine.model(str(ModelRef.parse(request.name, field="name")))
        return model_pb2.GetModelResponse(model=self._model(entry))

    def LoadModel(  # noqa: N802
        self, request: model_pb2.LoadModelRequest, context: grpc.ServicerContext
    ) -> model_pb2.LoadModelResponse:
        changed = self._engine.load_models(request.name or None)
        return model_pb2.LoadModelResponse(
            changed=[version_to_proto(v) for v in changed], models=self._all()
        )

    def UnloadModel(  # noqa: N802
        self, request: model_pb2.UnloadModelRequest, context: grpc.ServicerContext
    ) -> model_pb2.UnloadModelResponse:
        if not request.name or not request.version:
            raise InvalidArgument("name and version (>= 1) are required", field="version")
        self._engine.unload_model(request.name, request.version)
        return model_pb2.UnloadModelResponse()
