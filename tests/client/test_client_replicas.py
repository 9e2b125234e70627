"""Several replicas: targets, client-side round-robin, failover of idempotent calls only.

Two real servers run in-process on 127.0.0.1 (port 0), each over its own data
directory, so each holds its own banks: which server answered a call shows in
which server's store changed.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from client_support import RunningServer, serve

import memnet_client._replicas
from memnet.api.v1 import bank_pb2, bank_pb2_grpc
from memnet_cli import main
from memnet_client import AsyncMemnetClient, MemnetClient, RetryPolicy, TlsConfig, errors
from memnet_client._channel import channel_options
from memnet_client._targets import ROUND_ROBIN_SERVICE_CONFIG, ChannelTarget, plan_channels

QUICK = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05)
DIM = 2


class Replica:
    """A real server that a test can stop while the other keeps running."""

    def __init__(self, data_dir: Path) -> None:
        self._stack = ExitStack()
        self.running: RunningServer = self._stack.enter_context(serve(data_dir))
        self.port = int(self.running.target.rsplit(":", 1)[1])

    def stop(self) -> None:
        self._stack.close()

    def banks(self) -> set[str]:
        with MemnetClient(self.running.target, retry=QUICK) as direct:
            return {bank.name for bank in direct.list_banks()}


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    first, second = Replica(tmp_path / "a"), Replica(tmp_path / "b")
    yield first, second
    first.stop()
    second.stop()


# How a test names both replicas: IP literals share one round_robin channel; host
# names get one channel each, rotated by the SDK.
TARGET_FORMS: dict[str, Callable[[int, int], str]] = {
    "ip list, one round_robin channel": lambda a, b: f"127.0.0.1:{a},127.0.0.1:{b}",
    "host names, one channel each": lambda a, b: f"localhost:{a},localhost:{b}",
}


def _vector_bank_on_both(name: str, first: Replica, second: Replica) -> None:
    for replica in (first, second):
        with MemnetClient(replica.running.target) as direct:
            direct.create_bank(name, model="vector", key_dim=DIM, value_dim=DIM)


@pytest.mark.parametrize("form", sorted(TARGET_FORMS))
def test_calls_spread_over_replicas_and_idempotent_calls_survive_one_stopping(
    replicas: tuple[Replica, Replica], form: str
) -> None:
    first, second = replicas
    target = TARGET_FORMS[form](first.port, second.port)
    with MemnetClient(target, retry=QUICK, timeout_s=5) as client:
        expected_channels = 1 if form.startswith("ip") else 2
        assert len(client.channels) == expected_channels
        for _ in range(4):  # connect to both (round_robin queues calls until one is ready)
            client.list_models()
        names = {f"spread-{i}" for i in range(10)}
        for name in sorted(names):
            client.create_bank(name, model="vector", key_dim=DIM, value_dim=DIM)
        on_first, on_second = first.banks(), second.banks()
        assert on_first and on_second, (on_first, on_second)  # both replicas took calls
        assert on_first | on_second == names and not on_first & on_second

        _vector_bank_on_both("shared", first, second)
        second.stop()
        for _ in range(8):  # idempotent: retried on the replica still up
            assert client.count("shared") == 0
            assert "vector" in {m.name for m in client.list_models()}
        rows = np.ones((3, DIM))
        for i in range(4):  # upserts of client-chosen ids are idempotent too
            result = client.write(
                "shared", keys=rows, values=rows, ids=[f"m{i}-{j}" for j in range(3)]
            )
            assert len(result.ids) == 3
    with MemnetClient(first.running.target) as direct:
        assert direct.count("shared") == 12


def test_a_non_idempotent_write_is_not_retried_on_another_replica(
    replicas: tuple[Replica, Replica],
) -> None:
    first, second = replicas
    _vector_bank_on_both("shared", first, second)
    rows = np.ones((2, DIM))
    target = TARGET_FORMS["host names, one channel each"](first.port, second.port)
    with MemnetClient(target, retry=QUICK, timeout_s=5) as client:
        assert len(client.list_banks()) == 1  # the channels are connected
        assert len(client.list_banks()) == 1
        second.stop()
        outcomes: list[str] = []
        for _ in range(2):  # the rotation sends one of two calls to the stopped replica
            try:
                client.write("shared", keys=rows, values=rows)  # server-generated ids
                outcomes.append("written")
            except errors.Unavailable:
                outcomes.append("unavailable")
        assert sorted(outcomes) == ["unavailable", "written"]
        # Idempotent calls now pass over the stopped replica; the failed write was not
        # replayed on the first one: it holds one write of 2 memories.
        assert client.count("shared") == 2
        # The stopped replica is passed over for a while: non-idempotent calls reach
        # the one still up.
        for _ in range(3):
            client.write("shared", keys=rows, values=rows)
        assert client.count("shared") == 8


def test_the_async_client_balances_and_fails_over_too(
    replicas: tuple[Replica, Replica],
) -> None:
    first, second = replicas
    _vector_bank_on_both("shared", first, second)

    async def scenario() -> None:
        target = [f"localhost:{first.port}", f"127.0.0.1:{second.port}"]  # a list works too
        async with AsyncMemnetClient(target, retry=QUICK, timeout_s=5) as client:
            assert len(client.channels) == 2
            for i in range(4):
                await client.create_bank(f"async-{i}", model="vector", key_dim=DIM, value_dim=DIM)
            second.stop()
            for _ in range(6):
                assert await client.count("shared") == 0

    asyncio.run(scenario())
    assert len(first.banks() - {"shared"}) == 2  # the rotation alternated


def test_the_cli_takes_a_list_of_targets_from_the_flag_or_the_environment(
    replicas: tuple[Replica, Replica],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = replicas
    forms = {
        "flag, IP list": ["--target", f"127.0.0.1:{first.port},127.0.0.1:{second.port}"],
        "flag, host names": ["--target", f"localhost:{first.port},localhost:{second.port}"],
    }
    for i, (form, flag) in enumerate(sorted(forms.items())):
        create = ["banks", "create", f"cli-{i}", "--model", "vector", "--key-dim", "2"]
        assert main([*create, "--value-dim", "2", *flag]) == 0, form
    on_first, on_second = first.banks(), second.banks()
    assert on_first | on_second == {"cli-0", "cli-1"} and not on_first & on_second
    capsys.readouterr()
    monkeypatch.setenv("MEMNET_TARGET", f"dns:///localhost:{first.port}")
    assert main(["banks", "list"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]}
    assert listed == on_first
    monkeypatch.setenv("MEMNET_TARGET", f"localhost:{first.port},localhost:{second.port}")
    assert main(["banks", "list"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]}
    assert listed in (on_first, on_second)  # one replica answered: they do not share banks


def test_plain_and_uri_targets_keep_one_channel() -> None:
    def plan(target: str | list[str], *, share: bool = True) -> tuple[ChannelTarget, ...]:
        return plan_channels(target, ip_lists_share_a_channel=share)

    assert plan("127.0.0.1:50051") == (ChannelTarget("127.0.0.1:50051", round_robin=False),)
    assert plan(["memnet:50051"]) == (ChannelTarget("memnet:50051", round_robin=False),)
    dns = "dns:///memnet.default.svc.cluster.local:50051"
    assert plan(dns) == (ChannelTarget(dns, round_robin=True),)
    assert plan("unix:/tmp/memnet.sock") == (ChannelTarget("unix:/tmp/memnet.sock", False),)
    assert plan("10.0.0.5:1, 10.0.0.6:2") == (
        ChannelTarget("ipv4:10.0.0.5:1,10.0.0.6:2", round_robin=True),
    )
    assert plan(["[fd00::5]:1", "[fd00::6]:1"]) == (
        ChannelTarget("ipv6:[fd00::5]:1,[fd00::6]:1", round_robin=True),
    )
    names = plan("a.example:1,b.example:1")
    assert names == (ChannelTarget("a.example:1", False), ChannelTarget("b.example:1", False))
    assert len(plan("10.0.0.5:1,[fd00::6]:1")) == 2  # mixed families
    assert len(plan("10.0.0.5:1,10.0.0.6:2", share=False)) == 2  # TLS: one name per channel
    assert len(plan("10.0.0.5,10.0.0.6")) == 2  # no ports: left to gRPC, one by one


@pytest.mark.parametrize(
    "target",
    ["", "a:1,,b:1", "a:1,a:1", ["a:1", 5], "dns:///a:1,b:1", ["dns:///a:1", "b:1"], b"a:1", 7],
)
def test_malformed_targets_are_refused_before_any_channel_opens(target: object) -> None:
    with pytest.raises(errors.ValidationError) as refused:
        MemnetClient(target)  # type: ignore[arg-type]
    assert refused.value.field == "target"


def test_round_robin_is_set_through_the_service_config() -> None:
    options = dict(
        channel_options(max_message_bytes=2**20, keepalive_s=60, tls=None, round_robin=True)
    )
    assert json.loads(str(options["grpc.service_config"])) == {
        "loadBalancingConfig": [{"round_robin": {}}]
    }
    assert json.loads(ROUND_ROBIN_SERVICE_CONFIG) == json.loads(str(options["grpc.service_config"]))
    plain = dict(channel_options(max_message_bytes=2**20, keepalive_s=60, tls=None))
    assert "grpc.service_config" not in plain
    with MemnetClient("127.0.0.1:1,127.0.0.1:2", tls=TlsConfig(server_name="memnet.test")) as c:
        assert len(c.channels) == 1  # one name checked for every replica
    with MemnetClient("127.0.0.1:1,127.0.0.1:2", tls=True) as c:
        assert len(c.channels) == 2  # each replica's certificate checked for its address


class StatusService(bank_pb2_grpc.BankServiceServicer):
    """A replica that answers every call with ``status`` (None = OK); counts calls per RPC."""

    def __init__(self, status: grpc.StatusCode | None) -> None:
        self.status = status
        self.calls: Counter[str] = Counter()

    def _enter(self, rpc: str, context: grpc.ServicerContext) -> None:
        self.calls[rpc] += 1
        if self.status is not None:
            context.abort(self.status, "replica draining")

    def ListBanks(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter("ListBanks", context)
        return bank_pb2.ListBanksResponse()

    def CreateBank(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._enter("CreateBank", context)
        return bank_pb2.CreateBankResponse(bank=bank_pb2.Bank(spec=request.spec))


@pytest.fixture
def draining_and_healthy() -> Iterator[tuple[StatusService, int, StatusService, int]]:
    """Two fake replicas up on 127.0.0.1: one answers UNAVAILABLE to everything."""
    services = (StatusService(grpc.StatusCode.UNAVAILABLE), StatusService(None))
    servers, ports = [], []
    for service in services:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        bank_pb2_grpc.add_BankServiceServicer_to_server(service, server)
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        server.start()
        servers.append(server)
    yield services[0], ports[0], services[1], ports[1]
    for server in servers:
        server.stop(0)


@pytest.mark.parametrize("form", sorted(TARGET_FORMS))
def test_only_idempotent_calls_move_to_another_replica_after_unavailable(
    draining_and_healthy: tuple[StatusService, int, StatusService, int],
    form: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draining, draining_port, healthy, healthy_port = draining_and_healthy
    # No cooldown: the rotation keeps sending calls to the draining replica.
    monkeypatch.setattr(memnet_client._replicas, "COOLDOWN_S", 0.0)
    target = TARGET_FORMS[form](draining_port, healthy_port)
    with MemnetClient(target, retry=QUICK, timeout_s=5) as client:
        refused = 0
        for i in range(6):
            try:
                client.create_bank(f"b{i}", model="vector", key_dim=DIM, value_dim=DIM)
            except errors.Unavailable:
                refused += 1
        # Each create went to exactly one replica: those sent to the draining one failed.
        assert draining.calls["CreateBank"] == refused >= 1
        assert healthy.calls["CreateBank"] == 6 - refused >= 1
        for _ in range(6):
            assert client.list_banks() == []  # idempotent: retried on the healthy replica
    assert healthy.calls["ListBanks"] == 6 and draining.calls["ListBanks"] >= 1
