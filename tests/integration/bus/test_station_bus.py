"""StationBus through a real Mosquitto: status/Will, graded acks, validation, idempotency."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from drivers.clock import SystemClock
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack, Command
from station.bus.requester import Requester
from station.bus.schema import Arg, CommandSpec
from station.bus.station_bus import CommandContext, StationBus
from tests.conftest import Broker, stop_process

CLOCK = SystemClock()


class Plant:
    """What the commands act on, so tests can see that a refused command changed nothing."""

    def __init__(self) -> None:
        self.state = "ENABLED"
        self.az = 0.0
        self.calls = 0


def make_bus(broker: BrokerConfig, plant: Plant) -> StationBus:
    bus = StationBus("delingha", broker, CLOCK, state=lambda: plant.state)

    async def slew(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
        plant.calls += 1
        await ctx.in_progress(2.0)
        await CLOCK.sleep(0.05)
        plant.az = cmd.args["az_deg"]
        return {"az_deg": plant.az}

    async def hang(cmd: Command, ctx: CommandContext) -> None:
        await ctx.in_progress(0.2)
        await CLOCK.sleep(30.0)

    async def ping(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
        plant.calls += 1
        return {"pong": True}

    bus.register(
        CommandSpec(
            "slew",
            (Arg("az_deg", "number", min=-270, max=270), Arg("el_deg", "number", min=0, max=90)),
            frozenset({"ENABLED"}),
        ),
        slew,
    )
    bus.register(CommandSpec("hang"), hang)
    bus.register(CommandSpec("ping"), ping)
    return bus


@pytest.fixture
async def station(broker_config: BrokerConfig) -> AsyncIterator[tuple[StationBus, Plant]]:
    plant = Plant()
    bus = make_bus(broker_config, plant)
    await bus.start()
    await bus.wait_connected(10)
    try:
        yield bus, plant
    finally:
        await bus.stop()


async def retained(config: BrokerConfig, topic: str) -> dict[str, Any]:
    async with config.client("probe-retained") as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(5):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                body = json.loads(message.payload)
                assert isinstance(body, dict)
                return body
    raise AssertionError("no retained message")


async def test_command_gets_ack_inprogress_complete(
    station: tuple[StationBus, Plant], broker_config: BrokerConfig
) -> None:
    _bus, plant = station
    async with Requester(broker_config, CLOCK) as ops:
        replies = await ops.send("delingha", "slew", {"az_deg": 120.0, "el_deg": 30.0})
    assert [r.ack for r in replies] == [Ack.ACK, Ack.INPROGRESS, Ack.COMPLETE]
    assert replies[1].timeout_s == 2.0
    assert replies[-1].result == {"az_deg": 120.0}
    assert plant.az == 120.0


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"az_deg": 300.0, "el_deg": 30.0}, "'az_deg' must be <= 270"),
        ({"az_deg": "north", "el_deg": 30.0}, "'az_deg' must be a number"),
        ({"az_deg": 10.0}, "'el_deg' is required"),
        ({"az_deg": 10.0, "el_deg": 30.0, "speed": 2}, "unknown argument(s) ['speed']"),
    ],
)
async def test_bad_arguments_fail_with_reason_and_change_nothing(
    station: tuple[StationBus, Plant],
    broker_config: BrokerConfig,
    args: dict[str, Any],
    reason: str,
) -> None:
    _bus, plant = station
    async with Requester(broker_config, CLOCK) as ops:
        replies = await ops.send("delingha", "slew", args)
    assert [r.ack for r in replies] == [Ack.FAILED]
    assert replies[0].reason is not None
    assert reason in replies[0].reason
    assert (plant.az, plant.calls) == (0.0, 0)


async def test_state_unknown_expired_and_timeout(
    station: tuple[StationBus, Plant], broker_config: BrokerConfig
) -> None:
    _bus, plant = station
    async with Requester(broker_config, CLOCK) as ops:
        plant.state = "STANDBY"
        replies = await ops.send("delingha", "slew", {"az_deg": 1.0, "el_deg": 1.0})
        assert replies[-1].ack is Ack.FAILED
        assert "not valid in state STANDBY" in (replies[-1].reason or "")
        plant.state = "ENABLED"

        replies = await ops.send("delingha", "teleport", {})
        assert replies[-1].ack is Ack.FAILED
        assert "unknown command 'teleport'" in (replies[-1].reason or "")

        replies = await ops.send("delingha", "ping", {}, expires_in_s=-1.0)
        assert replies[-1].ack is Ack.FAILED
        assert "expired" in (replies[-1].reason or "")
        assert plant.calls == 0

        replies = await ops.send("delingha", "hang", {})
        assert [r.ack for r in replies] == [Ack.ACK, Ack.INPROGRESS, Ack.TIMEOUT]


async def test_same_id_runs_once(
    station: tuple[StationBus, Plant], broker_config: BrokerConfig
) -> None:
    _bus, plant = station
    async with Requester(broker_config, CLOCK) as ops:
        first = await ops.send("delingha", "ping", {}, command_id="fixed-id-1")
        again = await ops.send("delingha", "ping", {}, command_id="fixed-id-1")
    assert first[-1].ack is Ack.COMPLETE
    assert [r.ack for r in again] == [Ack.COMPLETE]  # the remembered terminal ack, re-sent
    assert plant.calls == 1


async def test_malformed_payload_is_rejected_with_an_event(
    station: tuple[StationBus, Plant], broker_config: BrokerConfig
) -> None:
    _bus, plant = station
    async with (
        broker_config.client("probe-events") as probe,
        Requester(broker_config, CLOCK) as ops,
    ):
        await probe.subscribe("qgs/v1/delingha/event/#", qos=1)
        await ops.publish_raw("delingha", "ping", b"{not json")
        async with asyncio.timeout(5):
            async for message in probe.messages:
                assert isinstance(message.payload, bytes)
                body = json.loads(message.payload)
                break
    assert body["command"] == "ping"
    assert "not UTF-8 JSON" in body["reason"]
    assert plant.calls == 0


async def test_status_online_then_offline_on_clean_stop(broker_config: BrokerConfig) -> None:
    plant = Plant()
    bus = make_bus(broker_config, plant)
    await bus.start()
    await bus.wait_connected(10)
    status = await retained(broker_config, "qgs/v1/delingha/status")
    assert (status["state"], status["summary"]) == ("online", "ENABLED")
    assert status["session"] == bus.session
    await bus.stop()
    status = await retained(broker_config, "qgs/v1/delingha/status")
    assert (status["state"], status["reason"]) == ("offline", "shutdown")
    # a restarted daemon (a new bus object) comes back with a higher session, so readers
    # that drop an "offline" older than the last "online" take it as online again
    again = make_bus(broker_config, plant)
    await again.start()
    try:
        await again.wait_connected(10)
        status = await retained(broker_config, "qgs/v1/delingha/status")
        assert status["state"] == "online"
        assert status["session"] > bus.session
    finally:
        await again.stop()


CHILD = """
import asyncio, os, sys
from drivers.clock import SystemClock
from station.bus.connection import BrokerConfig
from station.bus.station_bus import StationBus

async def main() -> None:
    bus = StationBus("lijiang", BrokerConfig(port=int(sys.argv[1])), SystemClock(),
                     state=lambda: "STANDBY")
    await bus.start()
    await bus.wait_connected(10)
    await bus.publish_state("mount", {"az_deg": 1.0})
    print("up", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_last_will_marks_a_killed_station_offline(mosquitto: Broker) -> None:
    config = BrokerConfig(port=mosquitto.port)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(mosquitto.port)], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        assert line.strip() == b"up"
        assert (await retained(config, "qgs/v1/lijiang/status"))["state"] == "online"
        assert (await retained(config, "qgs/v1/lijiang/state/mount"))["az_deg"] == 1.0
        proc.kill()
        proc.wait(10)
        # The broker notices the dead socket at once (RST) and publishes the Will.
        async with asyncio.timeout(10):
            while (status := await retained(config, "qgs/v1/lijiang/status"))["state"] != "offline":
                await asyncio.sleep(0.1)
        assert status["reason"] == "lwt"
        # the Will says what is true once the station is gone, not what it was at connect
        assert status["summary"] == "OFFLINE"
    finally:
        stop_process(proc)


async def test_bus_reconnects_after_broker_restart(tmp_path: Any, mosquitto: Broker) -> None:
    config = BrokerConfig(port=mosquitto.port, timeout_s=2.0)
    plant = Plant()
    bus = StationBus("delingha", config, CLOCK, state=lambda: plant.state, backoff_initial_s=0.05)
    bus.register(CommandSpec("ping"), make_bus(config, plant)._commands["ping"].handler)
    await bus.start()
    try:
        await bus.wait_connected(10)
        conf = mosquitto.config
        subprocess.run(["kill", str(mosquitto.pid)], check=True, timeout=10)
        async with asyncio.timeout(10):
            while bus.connected:
                await asyncio.sleep(0.05)
        proc = subprocess.Popen(
            [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await bus.wait_connected(20)
            assert bus.connections >= 2
            async with Requester(config, CLOCK) as ops:
                replies = await ops.send("delingha", "ping", {})
            assert replies[-1].ack is Ack.COMPLETE
        finally:
            stop_process(proc)
    finally:
        await bus.stop()


async def test_unreachable_broker_never_blocks_publishing() -> None:
    from tests.conftest import free_tcp_port

    config = BrokerConfig(port=free_tcp_port(), timeout_s=0.5)
    bus = StationBus("delingha", config, CLOCK, state=lambda: "STANDBY")
    await bus.start()
    try:
        async with asyncio.timeout(5):
            await bus.publish_telemetry("mount", {"az": [1.0]})
            await bus.publish_state("mount", {"az": 1.0})
            await bus.publish_event("alarm", {"x": 1})
        assert not bus.connected
        assert bus.dropped_telemetry == 1
    finally:
        await bus.stop()
