"""Where a client connects: one server, a list of replicas, or a gRPC name URI.

``target`` is turned into the channels the client opens:

* ``"host:port"``: one channel, gRPC's default ``pick_first`` policy (one server).
* ``"dns:///name:port"`` (also ``ipv4:``/``ipv6:`` URIs): one channel with the
  ``round_robin`` policy: gRPC resolves the name to every address it has (a
  headless Kubernetes Service, several A records), connects to each and sends
  each call to the next ready one, skipping replicas that are down.
* several addresses (``"a:p,b:p"`` or a list):

  - IP literals of one family (``"10.0.0.5:50051,10.0.0.6:50051"``,
    ``"[fd00::5]:50051,[fd00::6]:50051"``): one channel over gRPC's
    ``ipv4:a:p,b:p`` / ``ipv6:[a]:p,[b]:p`` target with ``round_robin``, as above;
  - anything else (host names, mixed families): one channel per address, each
    resolving its own name; the client rotates calls over them and fails over
    (``_replicas.Replicas``). A list of names cannot share one channel, since a
    gRPC target holds one name, and a name per channel keeps each replica's own
    DNS and TLS name.

With TLS and no ``server_name`` override, IP lists also get one channel per
address, so that each server's certificate is checked against its own address.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass

from memnet_client.errors import ValidationError

# Schemes of gRPC's name resolvers; a target starting with one is a URI for gRPC.
URI_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")
# URIs that may name several servers: balanced with round_robin.
BALANCED_SCHEMES = ("dns:", "ipv4:", "ipv6:")
ROUND_ROBIN_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


@dataclass(frozen=True)
class ChannelTarget:
    """One channel to open: the target string gRPC gets, and whether it balances calls."""

    target: str
    round_robin: bool


def _ip_version(address: str) -> int | None:
    """4 or 6 when ``address`` is ``a.b.c.d:port`` or ``[v6]:port``, else None (a name)."""
    bracketed = address.startswith("[")
    if bracketed:
        host, separator, port = address[1:].partition("]:")
    else:
        host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit():
        return None
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        return None
    return version if bracketed == (version == 6) else None


def _addresses(target: str | Sequence[str]) -> list[str]:
    items = target.split(",") if isinstance(target, str) else target
    if isinstance(target, bytes) or not isinstance(items, Sequence) or not items:
        raise ValidationError(
            "target must be 'host:port', a gRPC URI such as 'dns:///name:port', or a "
            "list of 'host:port' strings",
            field="target",
        )
    addresses: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise ValidationError(
                f"target[{i}] must be a non-empty 'host:port' string, got {item!r}",
                field="target",
            )
        address = item.strip()
        if address in addresses:
            raise ValidationError(f"target lists {address!r} twice", field="target")
        addresses.append(address)
    return addresses


def plan_channels(
    target: str | Sequence[str], *, ip_lists_share_a_channel: bool
) -> tuple[ChannelTarget, ...]:
    """The channels for ``target`` (see the module docstring); ValidationError if malformed."""
    if isinstance(target, str) and target.strip().startswith(URI_SCHEMES):
        uri = target.strip()
        if uri.startswith("dns:") and "," in uri:
            raise ValidationError(
                f"{uri!r}: a dns: URI names one host; list replicas as 'host:port,host:port'",
                field="target",
            )
        return (ChannelTarget(uri, round_robin=uri.startswith(BALANCED_SCHEMES)),)
    addresses = _addresses(target)
    for address in addresses:
        if address.startswith(URI_SCHEMES) and len(addresses) > 1:
            raise ValidationError(
                f"{address!r} is a gRPC URI: give it alone, not in a list", field="target"
            )
    if len(addresses) == 1:
        return (ChannelTarget(addresses[0], round_robin=addresses[0].startswith(BALANCED_SCHEMES)),)
    versions = {_ip_version(address) for address in addresses}
    if ip_lists_share_a_channel and len(versions) == 1 and None not in versions:
        (version,) = versions
        return (ChannelTarget(f"ipv{version}:" + ",".join(addresses), round_robin=True),)
    return tuple(ChannelTarget(address, round_robin=False) for address in addresses)
