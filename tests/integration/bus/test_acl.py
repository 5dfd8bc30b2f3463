"""The shipped broker ACL: monitors and anonymous clients cannot command a station."""

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
        "delingha", login(mosquitto_secured, "station"), CLOCK, state=lambda: "ENABLED"
    )
    bus.register(CommandSpec("safe"), safe)
    await bus.start()
    try:
        await bus.wait_connected(10)
        # An operator commands the station and gets its acks.
        async with Requester(login(mosquitto_secured, "operator"), CLOCK, client_id="ops-1") as op:
            replies = await op.send("delingha", "safe", {})
        assert [r.ack for r in replies] == [Ack.ACK, Ack.COMPLETE]
        assert executed == ["ops-1"]

        # A monitor's command is dropped by the broker: the station never sees it.
        async with Requester(login(mosquitto_secured, "monitor"), CLOCK, client_id="mon-1") as mon:
            with pytest.raises(CommandTimeout):
                await mon.send("delingha", "safe", {}, timeout_s=1.5)
        assert executed == ["ops-1"]

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
        "delingha", login(mosquitto_secured, "station"), CLOCK, state=lambda: "STANDBY"
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
