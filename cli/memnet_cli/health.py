"""``memnet health``: ask a server's grpc.health.v1 service whether it is SERVING.

Exit status 0 when SERVING, 1 otherwise; the container HEALTHCHECK uses it, so it
needs nothing but grpcio and the health stubs already in the image.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import grpc


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "health", help="check a server's gRPC health status (exit 0 when SERVING)"
    )
    parser.add_argument(
        "--target",
        default=f"127.0.0.1:{os.environ.get('MEMNET_PORT', '50051')}",
        help="host:port of the server (default: 127.0.0.1 and $MEMNET_PORT, else 50051)",
    )
    parser.add_argument(
        "--service", default="", help="service name to check; empty = the whole server"
    )
    parser.add_argument("--timeout-s", type=float, default=3.0, help="deadline in seconds")
    parser.add_argument("--tls-ca", default=None, help="PEM CA bundle; TLS when given")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from memnet_client import TlsConfig

    if args.tls_ca:
        credentials = TlsConfig.from_files(args.tls_ca).credentials()
        channel = grpc.secure_channel(args.target, credentials)
    else:
        channel = grpc.insecure_channel(args.target)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout_s
            )
        except grpc.RpcError as error:
            print(f"{args.target}: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(f"{args.target}: {status}")
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1
