"""The embedded broker: mosquitto or amqtt as a child process that carries commands."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

import pytest

from drivers.clock import SystemClock
from station.bus.embedded import EmbeddedBroker
from station.bus.envelope import Ack, Command
from station.bus.requester import Requester
from station.bus.schema import CommandSpec
from station.bus.station_bus import CommandContext, StationBus

CLOCK = SystemClock()


async def ping(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
    return {"pong": 1}


@pytest.mark.parametrize("prefer", ["mosquitto", "amqtt"])
async def test_embedded_broker_carries_commands_and_stops(prefer: str) -> None:
    embedded = EmbeddedBroker(prefer=prefer)  # type: ignore[arg-type]
    async with embedded as config:
        assert embedded.kind == prefer
        assert config.protocol == ("v5" if prefer == "mosquitto" else "v311")
        pid = embedded.pid
        assert pid is not None
        bus = StationBus("nanshan", config, CLOCK, state=lambda: "STANDBY")
        bus.register(CommandSpec("ping"), ping)
        async with bus:
            await bus.wait_connected(10)
            async with Requester(config, CLOCK) as ops:
                replies = await ops.send("nanshan", "ping")
        assert [r.ack for r in replies] == [Ack.ACK, Ack.COMPLETE]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_dead_broker_is_restarted() -> None:
    embedded = EmbeddedBroker(prefer="mosquitto")
    async with embedded as config:
        first = embedded.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        bus = StationBus("nanshan", config, CLOCK, state=lambda: "STANDBY", backoff_initial_s=0.05)
        async with bus:
            await bus.wait_connected(20)
        assert embedded.restarts == 1
        assert embedded.pid != first
