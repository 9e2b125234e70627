"""Server reflection answers under grpc.reflection.v1 (current grpcurl, Postman) and v1alpha.

A raw client per version: its own method path, the wire messages of that version (v1 and
v1alpha share field numbers, so v1alpha's classes encode v1's messages byte for byte).
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2
from server_support import Running

from memnet_server.app import SERVICE_NAMES

VERSIONS = ("grpc.reflection.v1", "grpc.reflection.v1alpha")


def _ask(
    channel: grpc.Channel, version: str, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    call = channel.stream_stream(
        f"/{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (response,) = list(call(iter([request]), timeout=10))
    return response


def _file(response: reflection_pb2.ServerReflectionResponse) -> descriptor_pb2.FileDescriptorProto:
    assert response.WhichOneof("message_response") == "file_descriptor_response", response
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    return files[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_reflection_lists_and_describes_every_service(server: Running, version: str) -> None:
    listed = _ask(server.channel, version, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {service.name for service in listed.list_services_response.service}
    assert {
        *SERVICE_NAMES,
        "grpc.health.v1.Health",
        *(f"{v}.ServerReflection" for v in VERSIONS),
    } <= names
    query = _file(
        _ask(
            server.channel,
            version,
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="memnet.api.v1.QueryService"
            ),
        )
    )
    assert query.package == "memnet.api.v1" and query.name == "memnet/api/v1/query.proto"
    assert "QueryService" in {service.name for service in query.service}


@pytest.mark.parametrize("version", VERSIONS)
def test_each_reflection_version_describes_itself(server: Running, version: str) -> None:
    own = _file(
        _ask(
            server.channel,
            version,
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol=f"{version}.ServerReflection"
            ),
        )
    )
    assert own.package == version
    (method,) = own.service[0].method
    assert method.input_type == f".{version}.ServerReflectionRequest"
    assert method.client_streaming and method.server_streaming
