"""Rotator command round trip (issue 5 figure): angle query through each rotator driver.

For each rotator driver, against its emulator on a pseudo-terminal in the same process:

- candidate: ``await rotator.angle()`` (Elliptec ``0gp`` -> ``0PO<hex>`` through the serial
  transport; SMC100 ``1TP`` -> ``1TP<value>`` through pyvisa-py's ASRL resource), including
  locking, framing, parsing and error mapping;
- baseline: the same request bytes over a raw channel of the same kind on the same pty
  (pyserial-asyncio-fast for the ELL14; a plain pyvisa-py ASRL ``query`` in a worker thread
  for the SMC100), reading the same reply framing.

Lower is better; the ratio is baseline / candidate, so it shows the driver's overhead (1.0 =
none). The emulator serves both in the same event loop, so its cost is common to both.
"""

from __future__ import annotations

import asyncio

import pyvisa
import serial_asyncio_fast
from pyvisa.resources import MessageBasedResource

from bench.harness import Result, latency_stats, round_trips
from drivers.clock import SystemClock
from drivers.interfaces import Rotator
from drivers.registry import open_device
from sim_hardware.devices.rotator import RotatorModel
from sim_hardware.servers.elliptec import ElliptecBus, ElliptecDevice
from sim_hardware.servers.pty import PtyServer
from sim_hardware.servers.smc100 import SMC100Controller, SMC100Line


async def _driver_samples(url: str, clock: SystemClock) -> list[float]:
    rotator = open_device(url, clock)
    assert isinstance(rotator, Rotator)
    await rotator.connect()
    try:
        return await round_trips(rotator.angle)
    finally:
        await rotator.close()


async def _elliptec() -> tuple[list[float], list[float]]:
    clock = SystemClock()
    bus = ElliptecBus(clock, {0: ElliptecDevice(RotatorModel(clock, seed=1, name="bench"))})
    async with PtyServer(bus, name="bench-ell14", clock=clock) as server:
        candidate = await _driver_samples(f"elliptec+serial://{server.path}?address=0", clock)
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=server.path, baudrate=9600
        )

        async def raw() -> None:
            writer.write(b"0gp")
            await asyncio.wait_for(reader.readuntil(b"\n"), 2.0)

        try:
            baseline = await round_trips(raw)
        finally:
            writer.close()
    return candidate, baseline


async def _smc100() -> tuple[list[float], list[float]]:
    clock = SystemClock()
    model = RotatorModel(clock, seed=2, max_speed_deg_s=200.0, name="bench")
    line = SMC100Line(clock, {1: SMC100Controller(model, min_deg=-1.0, max_deg=361.0)})
    async with PtyServer(line, name="bench-smc100", clock=clock) as server:
        resource = f"ASRL{server.path}::INSTR"
        candidate = await _driver_samples(f"smc100+visa://{resource}", clock)
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(
            resource, read_termination="\r\n", write_termination="\r\n", timeout=2000
        )
        assert isinstance(inst, MessageBasedResource)

        async def raw() -> None:
            await asyncio.to_thread(inst.query, "1TP")

        try:
            baseline = await round_trips(raw)
        finally:
            inst.close()
            rm.close()
    return candidate, baseline


def _results(
    driver: str, request: str, candidate: list[float], baseline: list[float]
) -> list[Result]:
    cand, base = latency_stats(candidate), latency_stats(baseline)
    return [
        Result(
            name=f"rotator {driver} angle round trip ({stat.removesuffix('_ms')})",
            candidate=f"{driver} driver angle()",
            candidate_value=cand[stat],
            baseline=f"raw {request}",
            baseline_value=base[stat],
            unit="ms",
            higher_is_better=False,
            extra={"n": cand["n"], "candidate": cand, "baseline": base},
        )
        for stat in ("median_ms", "p99_ms")
    ]


def run() -> list[Result]:
    ell_c, ell_b = asyncio.run(_elliptec())
    smc_c, smc_b = asyncio.run(_smc100())
    return [
        *_results("elliptec", "pty '0gp' (pyserial-asyncio-fast)", ell_c, ell_b),
        *_results("smc100", "pyvisa-py ASRL query '1TP'", smc_c, smc_b),
    ]
