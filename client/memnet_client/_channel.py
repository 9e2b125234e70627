"""Channel construction: message limits, keepalive, load balancing, TLS and the API-key metadata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio

from memnet import __version__
from memnet_client._targets import ROUND_ROBIN_SERVICE_CONFIG
from memnet_client.errors import ValidationError

DEFAULT_TARGET = "127.0.0.1:50051"
# gRPC's own default is 4 MiB each way, too small for large vector batches and
# for query responses with include_vectors.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Servers reject pings more often than every 5 min by default (GOAWAY
# "too_many_pings"), so the client pings no more often than that.
DEFAULT_KEEPALIVE_S = 300.0
KEEPALIVE_TIMEOUT_S = 20.0

ChannelOptions = list[tuple[str, int | str]]


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings of a channel, as PEM bytes.

    Attributes:
        root_certificates: CA bundle that signs the server certificate; None = the
            system's roots.
        private_key: client key, for servers that require client certificates (mTLS).
        certificate_chain: client certificate chain, with ``private_key``.
        server_name: override of the name checked against the server certificate
            (e.g. when connecting to an IP address); None = the target's host.
    """

    root_certificates: bytes | None = None
    private_key: bytes | None = None
    certificate_chain: bytes | None = None
    server_name: str | None = None

    @classmethod
    def from_files(
        cls,
        ca: str | Path | None = None,
        *,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        server_name: str | None = None,
    ) -> TlsConfig:
        """Read PEM files: ``ca`` (server CA), ``cert`` and ``key`` (client certificate)."""
        if (cert is None) != (key is None):
            raise ValidationError("cert and key must be given together", field="cert")
        return cls(
            root_certificates=Path(ca).read_bytes() if ca is not None else None,
            certificate_chain=Path(cert).read_bytes() if cert is not None else None,
            private_key=Path(key).read_bytes() if key is not None else None,
            server_name=server_name,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


def channel_options(
    *, max_message_bytes: int, keepalive_s: float, tls: TlsConfig | None, round_robin: bool = False
) -> ChannelOptions:
    """gRPC channel arguments shared by the sync and async clients.

    ``round_robin`` sets the ``round_robin`` load-balancing policy (service config):
    the channel connects to every address its target resolves to and sends each
    call to the next ready one.
    """
    options: ChannelOptions = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", int(keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(KEEPALIVE_TIMEOUT_S * 1000)),
        ("grpc.primary_user_agent", f"memnet-client/{__version__}"),
    ]
    if tls is not None and tls.server_name is not None:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    if round_robin:
        options.append(("grpc.service_config", ROUND_ROBIN_SERVICE_CONFIG))
    return options


def auth_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata sent with every call: ``authorization: Bearer <api_key>`` when set."""
    if api_key is None:
        return ()
    return (("authorization", f"Bearer {api_key}"),)


def open_channel(target: str, *, tls: TlsConfig | None, options: ChannelOptions) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, tls.credentials(), options=options)


def open_aio_channel(
    target: str, *, tls: TlsConfig | None, options: ChannelOptions
) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, tls.credentials(), options=options)


def close_channels(channels: Sequence[grpc.Channel]) -> None:
    for channel in channels:
        channel.close()


async def close_aio_channels(channels: Sequence[grpc.aio.Channel]) -> None:
    for channel in channels:
        await channel.close(grace=None)
