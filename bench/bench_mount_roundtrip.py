"""Mount command round trip (issue 5 figure): position query through each driver.

For each mount driver, against its emulator over the real transport in the same process:

- candidate: ``await mount.position()`` (rotctld ``p`` over loopback TCP; LX200 ``:GA#`` +
  ``:GZ#`` over a pseudo-terminal through pyserial), including locking, input flush, parsing
  and error mapping;
- baseline: the same request bytes over a raw stream of the same kind (asyncio TCP socket with
  TCP_NODELAY; pyserial-asyncio-fast on the same pty), reading the same reply framing.

Lower is better; the ratio is baseline / candidate, so it shows the driver's overhead (1.0 =
none). The emulator serves both in the same event loop, so its cost is common to both.
"""

from __future__ import annotations

import asyncio
import socket

import serial_asyncio_fast

from bench.harness import Result, latency_stats, round_trips
from drivers.clock import SystemClock
from drivers.datatypes import AltAz, AxisLimits, MountLimits
from drivers.interfaces import Mount
from drivers.registry import open_device
from sim_hardware.devices.mount import MountModel
from sim_hardware.servers.lx200 import serve_lx200
from sim_hardware.servers.rotctld import serve_rotctld

LIMITS = MountLimits(
    az=AxisLimits(-270.0, 270.0, max_speed_deg_s=6.0, max_accel_deg_s2=6.0),
    el=AxisLimits(5.0, 90.0, max_speed_deg_s=6.0, max_accel_deg_s2=6.0),
)


async def _driver_samples(url: str, clock: SystemClock) -> list[float]:
    mount = open_device(url, clock)
    assert isinstance(mount, Mount)
    await mount.connect()
    try:
        return await round_trips(mount.position)
    finally:
        await mount.close()


async def _rotctld() -> tuple[list[float], list[float]]:
    clock = SystemClock()
    model = MountModel(clock, LIMITS, park=AltAz(0.0, 10.0), watchdog_s=None, name="bench")
    async with await serve_rotctld(model) as server:
        candidate = await _driver_samples(server.url, clock)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        async def raw() -> None:
            writer.write(b"p\n")
            await asyncio.wait_for(reader.readuntil(b"\n"), 2.0)
            await asyncio.wait_for(reader.readuntil(b"\n"), 2.0)

        try:
            baseline = await round_trips(raw)
        finally:
            writer.close()
    return candidate, baseline


async def _lx200() -> tuple[list[float], list[float]]:
    clock = SystemClock()
    model = MountModel(clock, LIMITS, park=AltAz(0.0, 10.0), watchdog_s=None, name="bench")
    server = await serve_lx200(model)
    try:
        candidate = await _driver_samples(server.url, clock)
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=server.path, baudrate=9600
        )

        async def raw() -> None:
            writer.write(b":GA#")
            await asyncio.wait_for(reader.readuntil(b"#"), 2.0)
            writer.write(b":GZ#")
            await asyncio.wait_for(reader.readuntil(b"#"), 2.0)

        try:
            baseline = await round_trips(raw)
        finally:
            writer.close()
    finally:
        await server.close()
    return candidate, baseline


def _results(
    driver: str, request: str, candidate: list[float], baseline: list[float]
) -> list[Result]:
    cand, base = latency_stats(candidate), latency_stats(baseline)
    out = []
    for stat in ("median_ms", "p99_ms"):
        out.append(
            Result(
                name=f"mount {driver} position round trip ({stat.removesuffix('_ms')})",
                candidate=f"{driver} driver position()",
                candidate_value=cand[stat],
                baseline=f"raw {request}",
                baseline_value=base[stat],
                unit="ms",
                higher_is_better=False,
                extra={"n": cand["n"]},
            )
        )
    return out


def run() -> list[Result]:
    rot_c, rot_b = asyncio.run(_rotctld())
    lx_c, lx_b = asyncio.run(_lx200())
    return [
        *_results("rotctld", "TCP socket 'p'", rot_c, rot_b),
        *_results("lx200", "pty ':GA#'+':GZ#'", lx_c, lx_b),
    ]
