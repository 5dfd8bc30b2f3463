"""Command -> ACK latency through Mosquitto on loopback (issue 6 figure).

Candidate: a `Requester` command to a `StationBus` (envelope validation, schema check,
graded ACK on the reply topic), send to ACK arrival. Baseline: a bare aiomqtt QoS 1
publish -> subscriber receive round trip of a payload of the same size on the same broker
in the same run. Both use TCP_NODELAY on the clients and the broker (reference/mqtt.md
§2.5). Lower is better; the ratio is baseline / candidate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from bench.harness import Result, latency_stats
from drivers.clock import SystemClock
from station.bus.embedded import EmbeddedBroker
from station.bus.envelope import Ack, Command
from station.bus.requester import Requester
from station.bus.schema import Arg, CommandSpec
from station.bus.station_bus import CommandContext, StationBus

N = 400
WARMUP = 20


async def _ping(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
    return {}


async def _measure() -> tuple[list[float], list[float]]:
    clock = SystemClock()
    async with EmbeddedBroker(prefer="mosquitto") as config:
        bus = StationBus("bench", config, clock, state=lambda: "ENABLED")
        bus.register(CommandSpec("ping", (Arg("n", "integer"),)), _ping)
        async with bus:
            await bus.wait_connected(10)
            candidate: list[float] = []
            async with Requester(config, clock) as ops:
                for i in range(N + WARMUP):
                    t0 = time.monotonic()
                    replies = await ops.send("bench", "ping", {"n": i})
                    assert replies[0].ack is Ack.ACK, replies
                    if i >= WARMUP:
                        candidate.append(replies[0].received_monotonic - t0)
            baseline: list[float] = []
            payload = b'{"id":"0123456789abcdef","ts":1.0,"reply_to":"x/y/z","args":{"n":1}}'
            async with config.client("bench-raw") as client:
                await client.subscribe("bench/raw", qos=1)
                for i in range(N + WARMUP):
                    t0 = time.monotonic()
                    await client.publish("bench/raw", payload, qos=1)
                    async with asyncio.timeout(5):
                        async for _ in client.messages:
                            break
                    if i >= WARMUP:
                        baseline.append(time.monotonic() - t0)
    return candidate, baseline


def run() -> list[Result]:
    candidate, baseline = asyncio.run(_measure())
    c, b = latency_stats(candidate), latency_stats(baseline)
    return [
        Result(
            "bus: command -> ACK latency, p99 (mosquitto, loopback)",
            "Requester -> StationBus ACK",
            c["p99_ms"],
            "raw aiomqtt QoS1 publish -> receive",
            b["p99_ms"],
            "ms",
            higher_is_better=False,
            extra={"candidate": c, "baseline": b},
        ),
        Result(
            "bus: command -> ACK latency, median",
            "Requester -> StationBus ACK",
            c["median_ms"],
            "raw aiomqtt QoS1 publish -> receive",
            b["median_ms"],
            "ms",
            higher_is_better=False,
        ),
    ]
