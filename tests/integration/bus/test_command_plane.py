"""Hostile and conflicting commands through a real Mosquitto (issue 10, MQTT command plane).

Forged ``reply_to``, reused ids, retained commands, payloads that break the JSON parser,
concurrent motion commands and expiry on a warped station clock: each is refused with a
reason (``event/command_rejected``, FAILED where a reply topic is usable) and never executed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import pytest

from drivers.clock import Clock, SystemClock, WarpClock
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack, Command
from station.bus.requester import Requester
from station.bus.schema import Arg, CommandSpec
from station.bus.station_bus import CommandContext, StationBus
from station.daemon.api import COMMANDS
from station.daemon.commands import send_command
from tests.conftest import Broker

CLOCK = SystemClock()
STATION = "delingha"
INBOX = "qgs/reply/ops-raw/delingha/echo"


@dataclass
class Plant:
    state: str = "STANDBY"
    calls: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def make_bus(broker: BrokerConfig, plant: Plant, clock: Clock = CLOCK) -> StationBus:
    bus = StationBus(STATION, broker, clock, state=lambda: plant.state)

    async def echo(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
        plant.calls.append(f"echo {cmd.args.get('n')}")
        return {"n": cmd.args.get("n")}

    async def motion(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
        plant.calls.append(cmd.name)
        await ctx.in_progress(10.0)
        if cmd.name == "goto":  # a slow slew, until the test releases it (bounded)
            await asyncio.wait_for(plant.release.wait(), 5.0)
        return {"done": cmd.name}

    bus.register(CommandSpec("echo", (Arg("n", "integer", required=False),)), echo)
    for spec in COMMANDS:  # the daemon's own specs: motion group and preemption as shipped
        if spec.name in ("goto", "park", "safe"):
            bus.register(spec, motion)
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


class Probe:
    """Everything published under qgs/# (plus replies), collected in order."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seen: list[tuple[str, bytes, bool]] = []
        self._task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            self.seen.append((str(message.topic), message.payload, message.retain))

    async def __aenter__(self) -> Probe:
        await self.client.subscribe("qgs/#", qos=1)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.wait({self._task}, timeout=5)

    def live(self, topic: str) -> list[dict[str, Any]]:
        """Non-retained messages on ``topic`` (prefix match), decoded."""
        return [json.loads(p) for t, p, r in self.seen if t.startswith(topic) and not r]

    async def wait(self, topic: str, count: int = 1, timeout_s: float = 4.0) -> list[Any]:
        async with asyncio.timeout(timeout_s):
            while len(self.live(topic)) < count:
                await asyncio.sleep(0.02)
        return self.live(topic)

    async def publish(self, name: str, payload: bytes, **kwargs: Any) -> None:
        await self.client.publish(f"qgs/v1/{STATION}/cmd/{name}", payload, qos=1, **kwargs)


def envelope(reply_to: str = INBOX, command_id: str = "c1", **extra: Any) -> bytes:
    body = {"id": command_id, "ts": time.time(), "reply_to": reply_to, "args": {}, **extra}
    return json.dumps(body).encode()


EVENTS = f"qgs/v1/{STATION}/event/command_rejected"


@pytest.mark.parametrize(
    "reply_to",
    [
        f"qgs/v1/{STATION}/status",
        f"qgs/v1/{STATION}/event/alarm",
        "qgs/reply/ops-raw/lijiang/echo",  # another station's inbox
        "qgs/reply/ops\x00raw/delingha/echo",  # NUL: the broker would drop the station
        "qgs/reply/ops-raw/delingha/ec\x01ho",
        "qgs/reply/ops-raw/delingha/" + "x" * 300,
        "qgs/reply//delingha/echo",
    ],
)
async def test_forged_reply_to_is_rejected_and_gets_no_ack(
    station: tuple[StationBus, Plant], broker_config: BrokerConfig, reply_to: str
) -> None:
    bus, plant = station
    async with broker_config.client("probe") as client, Probe(client) as probe:
        await probe.publish("echo", envelope(reply_to))
        [event] = await probe.wait(EVENTS)
        await asyncio.sleep(0.2)  # an ack, if any, would be out by now
        assert "reply_to" in event["reason"]
        assert probe.live(f"qgs/v1/{STATION}/status") == []
        assert probe.live(f"qgs/v1/{STATION}/event/alarm") == []
        assert probe.live("qgs/reply/") == []
    assert plant.calls == []
    assert (bus.connected, bus.connections) == (True, 1)  # never dropped off the broker


async def test_reused_id_for_a_different_command_fails(
    station: tuple[StationBus, Plant], broker_config: BrokerConfig
) -> None:
    _bus, plant = station
    async with Requester(broker_config, CLOCK) as ops:
        first = await ops.send(STATION, "echo", {"n": 1}, command_id="same-id", timeout_s=4)
        other = await ops.send(STATION, "echo", {"n": 2}, command_id="same-id", timeout_s=4)
        again = await ops.send(STATION, "echo", {"n": 1}, command_id="same-id", timeout_s=4)
    assert first[-1].ack is Ack.COMPLETE
    assert first[-1].result == {"n": 1}
    assert [r.ack for r in other] == [Ack.FAILED]
    assert "id reused for a different command" in (other[0].reason or "")
    assert [(r.ack, r.result) for r in again] == [(Ack.COMPLETE, {"n": 1})]  # idempotent
    assert plant.calls == ["echo 1"]


async def test_overlong_id_is_rejected(
    station: tuple[StationBus, Plant], broker_config: BrokerConfig
) -> None:
    bus, plant = station
    async with broker_config.client("probe") as client, Probe(client) as probe:
        await probe.publish("echo", envelope(command_id="x" * 200))
        [event] = await probe.wait(EVENTS)
        [reply] = await probe.wait("qgs/reply/")
    assert "longer than 128" in event["reason"]
    assert (reply["ack"], reply["id"]) == ("FAILED", "")
    assert plant.calls == []
    assert len(bus._recent) == 0  # nothing of it is remembered


async def test_retained_command_is_never_executed(broker_config: BrokerConfig) -> None:
    plant = Plant()
    async with broker_config.client("probe") as client, Probe(client) as probe:
        await probe.publish("echo", envelope(command_id="retained-1"), retain=True)
        bus = make_bus(broker_config, plant)
        await bus.start()
        try:
            await bus.wait_connected(10)
            [event] = await probe.wait(EVENTS)
            await asyncio.sleep(0.2)
        finally:
            await bus.stop()
        await probe.publish("echo", b"", retain=True)  # clear it
    assert "retained" in event["reason"]
    assert plant.calls == []
    assert probe.live("qgs/reply/") == []


DEEP = "[" * 20_000 + "]" * 20_000
ARG = "argument"  # an argument fault: FAILED like any bad argument (no event)


@pytest.mark.parametrize(
    ("name", "payload", "reason", "kind"),
    [
        ("echo", envelope(ts=10**400), "'ts' must be a finite number", "envelope"),
        ("echo", envelope(expires_at=-(10**400)), "'expires_at' must be a finite", "envelope"),
        ("echo", envelope(args={"n": "N"}).replace(b'"N"', b"9" * 5000), "'n' must be an", ARG),
        ("echo", envelope(args={"n": "D"}).replace(b'"D"', DEEP.encode()), "nested", "no reply_to"),
        ("goto", envelope(args={"az_deg": 10**400, "el_deg": 0}), "'az_deg' must be a", ARG),
        ("echo", envelope(args={"pad": "x" * 100_000}), "exceeds", "no reply_to"),
        ("x" * 65_500, envelope(), "not a lower-case identifier", "envelope"),
    ],
    ids=["huge-ts", "huge-expiry", "5000-digits", "deep", "huge-arg", "oversized", "long-topic"],
)
async def test_hostile_payload_gets_failed_and_an_event(
    station: tuple[StationBus, Plant],
    broker_config: BrokerConfig,
    name: str,
    payload: bytes,
    reason: str,
    kind: str,
) -> None:
    bus, plant = station
    async with broker_config.client("probe") as client, Probe(client) as probe:
        await probe.publish(name, payload)
        if kind != ARG:
            [event] = await probe.wait(EVENTS)
            assert reason in event["reason"]
            assert len(event["command"]) <= 100
        if kind != "no reply_to":
            [reply] = await probe.wait("qgs/reply/")
            assert reply["ack"] == "FAILED"
            assert reason in reply["reason"]
            assert len(reply["reason"]) < 300
    assert plant.calls == []
    async with Requester(broker_config, CLOCK) as ops:  # still serving
        assert (await ops.send(STATION, "echo", {"n": 3}, timeout_s=4))[-1].ack is Ack.COMPLETE
    assert bus.connections == 1


async def test_motion_commands_are_exclusive_and_safe_supersedes(
    station: tuple[StationBus, Plant], broker_config: BrokerConfig
) -> None:
    _bus, plant = station
    async with Requester(broker_config, CLOCK) as ops:
        goto = asyncio.create_task(
            ops.send(STATION, "goto", {"az_deg": 10.0, "el_deg": 20.0}, timeout_s=4)
        )
        async with asyncio.timeout(4):
            while plant.calls != ["goto"]:
                await asyncio.sleep(0.02)
        park = await ops.send(STATION, "park", {}, timeout_s=4)
        second = await ops.send(STATION, "goto", {"az_deg": 1.0, "el_deg": 2.0}, timeout_s=4)
        assert [r.ack for r in park] == [Ack.FAILED]
        assert "another motion command is running ('goto'" in (park[0].reason or "")
        assert [r.ack for r in second] == [Ack.FAILED]
        safe = await ops.send(STATION, "safe", {}, timeout_s=4)
        first = await asyncio.wait_for(goto, 5)
    assert [r.ack for r in first] == [Ack.ACK, Ack.INPROGRESS, Ack.ABORTED]
    assert "superseded by 'safe'" in (first[-1].reason or "")
    assert safe[-1].ack is Ack.COMPLETE
    assert plant.calls == ["goto", "safe"]  # park and the second goto never ran


@pytest.mark.parametrize("offset_s", [-3 * 365 * 86400.0, 86400.0])
async def test_qgs_cmd_stamps_expiry_on_the_station_clock(
    mosquitto: Broker, offset_s: float, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warped station (years behind like the rig, or a day ahead) accepts `qgs cmd`."""
    config = BrokerConfig(host=mosquitto.host, port=mosquitto.port)
    plant = Plant()
    clock = WarpClock(time.time() + offset_s, rate=20.0)
    bus = make_bus(config, plant, clock)
    seen: list[Command] = []

    async def stamp(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
        seen.append(cmd)
        return {}

    bus.register(CommandSpec("stamp"), stamp)
    await bus.start()
    try:
        await bus.wait_connected(10)
        args = argparse.Namespace(
            station=STATION,
            name="stamp",
            args=[],
            broker=f"mqtt://{mosquitto.host}:{mosquitto.port}",
            username=None,
            password=None,
            password_file=None,
            ca_file=None,
            v311=False,
            timeout=4.0,
        )
        code = await asyncio.wait_for(send_command(args), 10)
    finally:
        await bus.stop()
    assert code == 0, capsys.readouterr().out
    [cmd] = seen
    assert cmd.expires_at is not None
    # expires_at is ~30 s (the default) ahead of the station's clock, not of wall time
    assert 0.0 < cmd.expires_at - clock.now() <= 30.0 * 20.0


async def test_v5_response_topic_answers_an_unparsable_payload(mosquitto: Broker) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    config = BrokerConfig(host=mosquitto.host, port=mosquitto.port, protocol="v5")
    plant = Plant()
    bus = make_bus(config, plant)
    await bus.start()
    try:
        await bus.wait_connected(10)
        async with config.client("probe") as client, Probe(client) as probe:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = INBOX
            props.CorrelationData = b"corr-1"
            await probe.publish("echo", b"[" * 70_000, properties=props)
            [reply] = await probe.wait("qgs/reply/")
            forged = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            forged.ResponseTopic = f"qgs/v1/{STATION}/status"
            await probe.publish("echo", b"[" * 70_000, properties=forged)
            await probe.wait(EVENTS, count=2)
            await asyncio.sleep(0.2)
            assert probe.live(f"qgs/v1/{STATION}/status") == []
    finally:
        await bus.stop()
    assert reply["ack"] == "FAILED"
    assert "exceeds" in reply["reason"]
    assert len(probe.live("qgs/reply/")) == 1
    assert plant.calls == []
