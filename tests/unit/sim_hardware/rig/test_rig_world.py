"""The rig's coupling of the world to the emulated devices, its config checks and its clock."""

from __future__ import annotations

import argparse
import asyncio
import copy
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.clock import WarpClock, WarpSpec
from drivers.config import Table
from drivers.datatypes import AltAz, AxisLimits, MountLimits
from drivers.errors import ConfigError
from sim_hardware.__main__ import make_clock, parse_instant
from sim_hardware.devices.mount import MountModel
from sim_hardware.rig import Rig, WorldSource
from sim_hardware.world import World, load_world_config

ROOT = Path(__file__).resolve().parents[4]
RIG = ROOT / "configs" / "rig" / "delingha_lijiang.toml"
DATA: dict[str, Any] = tomllib.loads(RIG.read_text())
START = datetime(2021, 4, 29, 17, 18, tzinfo=UTC).timestamp()


def table(data: dict[str, Any] | None = None) -> Table:
    return Table(copy.deepcopy(DATA if data is None else data), source="rig.toml")


class SteppedClock:
    rate = 1.0

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.t, tz=UTC)

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    async def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t)

    def to_wall(self, seconds: float) -> float:
        return seconds


def test_world_source_uses_the_pointing_of_the_slice_not_of_now() -> None:
    """A slice generated late (back-pressure) still sees where the mount pointed then."""
    world = World(load_world_config(table()), seed=1)
    t0 = START + 390.0  # Delingha el ~45
    t1 = t0 + 0.5
    target = world.line_of_sight("delingha", 0.5 * (t0 + t1))
    clock = SteppedClock(t0 - 60.0)
    limits = MountLimits(AxisLimits(-270, 270, 5.0, 2.0), AxisLimits(5, 90, 5.0, 2.0))
    mount = MountModel(clock, limits, park=AltAz(target.az_deg, target.el_deg), settle_s=0.0)
    source = WorldSource(world, "delingha", mount, None)
    clock.t = t1 + 1.0
    mount.command(AltAz(target.az_deg + 20.0, target.el_deg))  # slews away after the slice
    clock.t = t1 + 10.0
    assert mount.position().separation_deg(target) > 10.0
    late_t, late_ch = source.events(t0, t1)
    direct_t, direct_ch = world.detections("delingha", t0, t1, pointing=target, hwp_deg=0.0)
    assert np.array_equal(late_t, direct_t)
    assert np.array_equal(late_ch, direct_ch)
    away_t, _ = world.detections("delingha", t0, t1, pointing=mount.position(), hwp_deg=0.0)
    exp = world.expected_rates("delingha", 0.5 * (t0 + t1), pointing=target, hwp_deg=0.0)
    assert len(late_t) - len(away_t) > 0.5 * exp["signal_cps"] * (t1 - t0)


def _error(data: dict[str, Any], clock: WarpClock | None = None) -> ConfigError:
    """The ConfigError of starting a rig on ``data`` (everything started is stopped)."""

    async def start() -> None:
        rig = Rig(table(data), clock or WarpClock(START, rate=1.0))
        try:
            await rig.start()
        finally:
            await rig.close()

    with pytest.raises(ConfigError) as info:
        asyncio.run(start())
    return info.value


def test_tagger_needs_every_world_channel() -> None:
    data = copy.deepcopy(DATA)
    data["devices"]["delingha"]["timetagger"]["channels"] = 4
    err = _error(data)
    assert err.key == "devices.delingha.timetagger.channels"
    assert "pps" in err.message
    assert ">= 8" in err.message


def test_poisson_rates_only_without_a_world() -> None:
    data = copy.deepcopy(DATA)
    data["devices"]["lijiang"]["timetagger"]["poisson_rates"] = [1.0] * 8
    assert _error(data).key == "devices.lijiang.timetagger.poisson_rates"


def test_device_stations_must_be_the_worlds() -> None:
    data = copy.deepcopy(DATA)
    data["devices"]["nanshan"] = data["devices"].pop("lijiang")
    err = _error(data)
    assert err.key == "devices"
    assert "nanshan" in err.message
    assert "lijiang" in err.message


def test_clock_far_from_the_tagger_epoch_is_refused() -> None:
    err = _error(copy.deepcopy(DATA), WarpClock(1_750_000_000.0, rate=1.0))
    assert err.key == "world.tagger_epoch_utc"
    assert "--start" in err.message


def _args(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"clock": None, "start": None, "rate": None, **kw})


def test_clock_defaults_to_the_worlds_start_and_rig_rate() -> None:
    before = time.time()
    clock = make_clock(_args(), table())
    assert clock.epoch == START
    assert clock.rate == DATA["rig"]["rate"]
    assert before <= clock.anchor <= time.time()
    fast = make_clock(_args(start="2021-04-29T17:22:00Z", rate=20.0), table())
    assert fast.epoch == START + 240.0
    assert fast.rate == 20.0
    assert parse_instant("1619716680") == START
    assert parse_instant("2021-04-29T19:18:00+02:00") == START
    with pytest.raises(ConfigError, match="--start"):
        parse_instant("tomorrow")


def test_clock_spec_is_exclusive_with_start_and_rate() -> None:
    spec = WarpSpec(START, 1_800_000_000.0, 10.0)
    assert make_clock(_args(clock=spec.to_string()), table()).spec == spec
    with pytest.raises(ConfigError, match="--clock"):
        make_clock(_args(clock=spec.to_string(), rate=20.0), table())
