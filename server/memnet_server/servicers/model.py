"""ModelService: list and describe the served models."""

from __future__ import annotations

import grpc

from memnet.api.v1 import model_pb2, model_pb2_grpc
from memnet.errors import InvalidArgument
from memnet_server.convert import model_to_proto
from memnet_server.engine import Engine


class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def ListModels(  # noqa: N802
        self, request: model_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> model_pb2.ListModelsResponse:
        default = self._engine.default_model
        infos = sorted((m.info for m in self._engine.models.models()), key=lambda i: i.name)
        return model_pb2.ListModelsResponse(
            models=[model_to_proto(info, is_default=info.name == default) for info in infos]
        )

    def GetModel(  # noqa: N802
        self, request: model_pb2.GetModelRequest, context: grpc.ServicerContext
    ) -> model_pb2.GetModelResponse:
        if not request.name:
            raise InvalidArgument("name (the model name) is required", field="name")
        info = self._engine.model(request.name).info
        return model_pb2.GetModelResponse(
            model=model_to_proto(info, is_default=info.name == self._engine.default_model)
        )
