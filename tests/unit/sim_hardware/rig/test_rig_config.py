"""The shipped rig config against the station configs and the shipped TLE file.

The world is the truth the stations are measured against, so its sites, weather, optical
trains and orbit must be the ones the station daemons use; its mount firmware limits must
cover what the stations may command; and its suggested start must leave time to slew.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.config import Table, load_toml
from sim_hardware.world import World, load_world_config

ROOT = Path(__file__).resolve().parents[4]
RIG = ROOT / "configs" / "rig" / "delingha_lijiang.toml"
TLE = ROOT / "configs" / "satellites" / "micius-2021.tle"
STATIONS = ("delingha", "lijiang")


def _station(name: str) -> Table:
    return load_toml(ROOT / "configs" / "stations" / f"{name}.toml")


def _pair(value: float | list[float]) -> tuple[float, float]:
    return (value, value) if isinstance(value, float | int) else (value[0], value[1])


@pytest.mark.parametrize("name", STATIONS)
def test_world_station_is_the_station_config(name: str) -> None:
    world = {s.name: s for s in load_world_config(load_toml(RIG)).stations}[name]
    station = _station(name)
    site, pol = station.table("site"), station.table("polarization")
    assert world.latitude_deg == site.number("latitude_deg")
    assert world.longitude_deg == site.number("longitude_deg")
    assert world.altitude_m == site.number("altitude_m")
    assert world.pressure_hpa == site.number("pressure_hpa")
    assert world.temperature_c == site.number("temperature_c")
    assert world.min_elevation_deg == site.number("min_elevation_deg")
    assert world.optical_train == pol.string("optical_train")
    assert world.hwp_zero_deg == pol.number("hwp_offset_deg")
    sat = load_world_config(load_toml(RIG)).satellite
    assert sat.attitude_law == pol.string("attitude_law")


@pytest.mark.parametrize("name", STATIONS)
def test_mount_firmware_limits_cover_the_station(name: str) -> None:
    rig = load_toml(RIG).table("devices").table(name).table("mount")
    mount = _station(name).table("mount")
    assert rig.number("az_min_deg") <= mount.number("az_min_deg")
    assert rig.number("az_max_deg") >= mount.number("az_max_deg")
    assert rig.number("el_min_deg") <= mount.number("el_min_deg")
    assert rig.number("el_max_deg") >= mount.number("el_max_deg")
    speed = _pair(mount.raw("max_speed_deg_s"))
    accel = _pair(mount.raw("max_accel_deg_s2"))
    assert rig.number("az_speed_deg_s") >= speed[0]
    assert rig.number("el_speed_deg_s") >= speed[1]
    assert rig.number("az_accel_deg_s2") >= accel[0]
    assert rig.number("el_accel_deg_s2") >= accel[1]
    assert rig.number("park_az_deg") == mount.number("park_az_deg")
    assert rig.number("park_el_deg") == mount.number("park_el_deg")


def test_tle_file_is_the_worlds_orbit() -> None:
    sat = load_world_config(load_toml(RIG)).satellite
    lines = TLE.read_text().splitlines()
    assert len(lines) == 3
    assert lines[0].strip() == sat.name
    assert lines[1:] == [sat.tle_line1, sat.tle_line2]
    assert lines[1][2:7] == "41731"
    assert lines[1][18:32].startswith("21117.")  # epoch 2021-04-27 (day 117)


@pytest.mark.parametrize("name", STATIONS)
def test_tagger_has_every_world_channel(name: str) -> None:
    world = {s.name: s for s in load_world_config(load_toml(RIG)).stations}[name]
    tagger = load_toml(RIG).table("devices").table(name).table("timetagger")
    ch = world.channels
    assert (ch.h, ch.v, ch.d, ch.a, world.pps_channel) == (1, 2, 3, 4, 8)
    assert tagger.integer("channels") >= 8


def test_start_is_a_couple_of_minutes_before_aos_of_the_common_pass() -> None:
    cfg = load_world_config(load_toml(RIG))
    assert cfg.start_time is not None
    world = World(cfg, seed=0)

    def first_visible(name: str) -> float:
        for dt in range(0, 1200):
            if world.is_visible(name, cfg.start_time + dt):
                return cfg.start_time + dt
        raise AssertionError(f"{name} never rises")

    aos = min(first_visible(n) for n in STATIONS)
    assert 60.0 <= aos - cfg.start_time <= 180.0
    assert not any(world.is_visible(n, cfg.start_time) for n in STATIONS)
    # The documented common pass: both above 15 deg from 17:23:15 to 17:26:25 UTC.
    for hh_mm_ss in ("17:23:15", "17:24:50", "17:26:25"):
        t = datetime.fromisoformat(f"2021-04-29T{hh_mm_ss}+00:00").timestamp()
        assert all(world.line_of_sight(n, t).el_deg > 15.0 for n in STATIONS), hh_mm_ss
    assert cfg.tagger_epoch <= cfg.start_time
    assert datetime.fromtimestamp(cfg.start_time, UTC).isoformat() == "2021-04-29T17:18:00+00:00"
