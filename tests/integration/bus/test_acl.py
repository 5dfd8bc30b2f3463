"""The shipped broker config and ACL: monitors and anonymous clients cannot command a station,
a station cannot publish as another, a client id is worthless (it is the user name), and every
user reads only its own reply inbox (issue 10)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import aiomqtt
import pytest

from drivers.clock import SystemClock
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack, Command
from station.bus.requester import CommandTimeout, Requester
from station.bus.schema import CommandSpec
from station.bus.station_bus import CommandContext, StationBus
from tests.conftest import TEST_USERS, Broker

CLOCK = SystemClock()


def login(broker: Broker, user: str | None) -> BrokerConfig:
    password = TEST_USERS.get(user or "")
    return BrokerConfig(port=broker.port, username=user, password=password, timeout_s=3.0)


async def test_roles(mosquitto_secured: Broker) -> None:
    executed: list[str] = []

    async def safe(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
        executed.append(cmd.reply_to.split("/")[2])
        return {}

    bus = StationBus(
        "delingha", login(mosquitto_secured, "delingha"), CLOCK, state=lambda: "ENABLED"
    )
    bus.register(CommandSpec("safe"), safe)
    await bus.start()
    try:
        await bus.wait_connected(10)
        # An operator commands the station and gets its acks, in the inbox of its user name
        # whatever client id it asked for (the broker replaced it).
        async with Requester(login(mosquitto_secured, "operator"), CLOCK, client_id="ops-1") as op:
            replies = await op.send("delingha", "safe", {})
        assert [r.ack for r in replies] == [Ack.ACK, Ack.COMPLETE]
        assert executed == ["operator"]

        # A monitor's command is dropped by the broker: the station never sees it.
        async with Requester(login(mosquitto_secured, "monitor"), CLOCK, client_id="mon-1") as mon:
            with pytest.raises(CommandTimeout):
                await mon.send("delingha", "safe", {}, timeout_s=1.5)
        assert executed == ["operator"]

        # The monitor still reads station topics (retained status).
        async with login(mosquitto_secured, "monitor").client("mon-2") as client:
            await client.subscribe("qgs/v1/delingha/status", qos=1)
            async with asyncio.timeout(5):
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    assert b'"online"' in message.payload
                    break
    finally:
        await bus.stop()


@pytest.mark.parametrize("user", [None, "intruder"])
async def test_anonymous_and_unknown_users_are_refused(
    mosquitto_secured: Broker, user: str | None
) -> None:
    config = BrokerConfig(
        port=mosquitto_secured.port, username=user, password="guess", timeout_s=3.0
    )
    with pytest.raises(aiomqtt.MqttError):
        async with config.client("anon"):
            pass


async def test_coordinator_role(mosquitto_secured: Broker) -> None:
    """The coordinator commands stations and publishes its own node, never a station's."""
    executed: list[str] = []

    async def enable(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
        executed.append(cmd.name)
        return {}

    bus = StationBus(
        "delingha", login(mosquitto_secured, "delingha"), CLOCK, state=lambda: "STANDBY"
    )
    bus.register(CommandSpec("enable"), enable)
    await bus.start()
    coordinator = login(mosquitto_secured, "coordinator")
    try:
        await bus.wait_connected(10)
        async with Requester(coordinator, CLOCK, client_id="qgs-coordinator") as co:
            replies = await co.send("delingha", "enable", {})
        assert replies[-1].ack is Ack.COMPLETE
        assert executed == ["enable"]
        async with coordinator.client("qgs-coordinator-pub") as client:
            # its own node: accepted; a station's status: dropped by the broker (ACL)
            await client.publish("qgs/v1/coordinator/state/plan", b'{"ok": 1}', qos=1, retain=True)
            await client.publish("qgs/v1/delingha/status", b'{"state": "offline"}', qos=1)
        async with login(mosquitto_secured, "monitor").client("mon-3") as client:
            await client.subscribe("qgs/v1/+/status", qos=1)
            await client.subscribe("qgs/v1/coordinator/state/plan", qos=1)
            seen: dict[str, bytes] = {}
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        seen[str(message.topic)] = message.payload
        assert seen["qgs/v1/coordinator/state/plan"] == b'{"ok": 1}'
        assert b'"online"' in seen["qgs/v1/delingha/status"]  # the forged offline never landed
    finally:
        await bus.stop()


async def _retained(broker: Broker, user: str, topic: str, bound_s: float = 1.5) -> list[bytes]:
    """What ``user`` receives on ``topic`` within ``bound_s`` wall seconds of subscribing."""
    got: list[bytes] = []
    async with login(broker, user).client(user) as client:
        await client.subscribe(topic, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(bound_s):
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    got.append(message.payload)
    return got


async def _read_until_dropped(client: aiomqtt.Client, bound_s: float = 5.0) -> None:
    """Read until the broker drops ``client`` (aiomqtt.MqttError); TimeoutError if it lives."""
    async with asyncio.timeout(bound_s):
        async for _ in client.messages:
            pass


async def test_a_station_publishes_only_as_itself(mosquitto_secured: Broker) -> None:
    async with login(mosquitto_secured, "delingha").client("qgs-station-delingha") as client:
        await client.publish("qgs/v1/nanshan/status", b'{"state": "offline"}', qos=1, retain=True)
        await client.publish("qgs/v1/delingha/status", b'{"state": "online"}', qos=1, retain=True)
    assert await _retained(mosquitto_secured, "monitor", "qgs/v1/nanshan/status") == []
    mine = await _retained(mosquitto_secured, "monitor", "qgs/v1/delingha/status")
    assert mine == [b'{"state": "online"}']


async def test_a_client_id_is_the_user_name(mosquitto_secured: Broker) -> None:
    """Claiming the station's client id takes nothing over; one user's second connection
    takes its first one over (so each long-running client needs its own user), and the
    coordinator's per-connection users (BrokerConfig.for_connection) coexist."""
    bus = StationBus(
        "delingha", login(mosquitto_secured, "delingha"), CLOCK, state=lambda: "STANDBY"
    )
    await bus.start()
    try:
        await bus.wait_connected(10)
        for user in ("monitor", "operator"):
            async with login(mosquitto_secured, user).client(bus.client_id):
                await asyncio.sleep(0.3)
        assert bus.connected
        assert bus.connections == 1

        first = login(mosquitto_secured, "monitor").client("mon-a")
        await first.__aenter__()
        try:
            async with login(mosquitto_secured, "monitor").client("mon-b"):
                with pytest.raises(aiomqtt.MqttError):
                    await _read_until_dropped(first)
        finally:
            with contextlib.suppress(aiomqtt.MqttError):
                await first.__aexit__(None, None, None)

        coordinator = login(mosquitto_secured, "coordinator")
        node = coordinator.client("node")
        await node.__aenter__()
        try:
            for role in ("watch", "cmd"):
                async with coordinator.for_connection(role).client(role) as other:
                    await other.subscribe("qgs/v1/delingha/status", qos=1)
            await node.publish("qgs/v1/coordinator/status", b"{}", qos=1, timeout=3)
        finally:
            await node.__aexit__(None, None, None)
        assert bus.connections == 1
    finally:
        await bus.stop()


async def test_replies_reach_only_their_user(mosquitto_secured: Broker) -> None:
    """The requester's inbox is its user name; a monitor claiming that name as client id
    and subscribing to every inbox receives none of the acks. ``use_station_clock`` reads
    the station's status on the requester's own connection (a second one would take it over).
    """
    executed: list[str] = []

    async def safe(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
        executed.append(cmd.reply_to)
        return {}

    bus = StationBus(
        "delingha", login(mosquitto_secured, "delingha"), CLOCK, state=lambda: "ENABLED"
    )
    bus.register(CommandSpec("safe"), safe)
    await bus.start()
    snooped: list[str] = []
    try:
        await bus.wait_connected(10)
        async with login(mosquitto_secured, "monitor").client("operator") as snoop:
            await snoop.subscribe("qgs/reply/operator/#", qos=1)
            await snoop.subscribe("qgs/reply/#", qos=1)
            async with Requester(login(mosquitto_secured, "operator"), CLOCK) as op:
                assert op.inbox == "operator"
                await op.use_station_clock("delingha")
                replies = await op.send("delingha", "safe", {})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    async for message in snoop.messages:
                        snooped.append(str(message.topic))
        assert [r.ack for r in replies] == [Ack.ACK, Ack.COMPLETE]
        assert executed == ["qgs/reply/operator/delingha/safe"]
        assert snooped == []
    finally:
        await bus.stop()
