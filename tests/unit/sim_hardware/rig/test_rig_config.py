"""The shipped rig configs against the station configs and the shipped TLE files.

The world is the truth the stations are measured against, so its sites, weather, optical
trains and orbit must be the ones the station daemons use; its mount firmware limits must
cover what the stations may command; and its suggested start must leave time to slew.

Three worlds are shipped: today's Delingha-Lijiang rig (2021 elements), and the rehearsal
worlds of the 2017 Delingha-Lijiang entanglement distribution and of the 2020
Delingha-Nanshan key experiment (both on the 2017-epoch elements, see their headers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.config import Table, load_toml
from sim_hardware.world import World, load_world_config

ROOT = Path(__file__).resolve().parents[4]
SATELLITES = ROOT / "configs" / "satellites"


@dataclass(frozen=True)
class Rig:
    """One shipped rig config and what its header promises."""

    file: str
    tle: str  #: the configs/satellites file holding the world's elements
    epoch_prefix: str  #: TLE epoch field (year + day of year) the world must use
    stations: tuple[str, str]
    start_utc: str  #: the documented [world] start_utc
    #: (UTC date, times) at which both stations see the satellite above 15 deg
    common_above_15: tuple[str, tuple[str, ...]]


RIGS = (
    Rig(
        "delingha_lijiang.toml",
        "micius-2021.tle",
        "21117.",
        ("delingha", "lijiang"),
        "2021-04-29T17:18:00+00:00",
        ("2021-04-29", ("17:23:15", "17:24:50", "17:26:25")),
    ),
    Rig(
        "delingha_lijiang_2017.toml",
        "micius.tle",
        "17168.5",
        ("delingha", "lijiang"),
        "2017-06-17T16:46:30+00:00",
        ("2017-06-17", ("16:52:05", "16:52:30", "16:52:55")),
    ),
    Rig(
        "delingha_nanshan_2020.toml",
        "micius.tle",
        "17168.5",
        ("delingha", "nanshan"),
        "2017-06-17T18:23:00+00:00",
        ("2017-06-17", ("18:26:45", "18:27:45", "18:28:50")),
    ),
)
IDS = [r.file for r in RIGS]


def _rig(rig: Rig) -> Table:
    return load_toml(ROOT / "configs" / "rig" / rig.file)


def _station(name: str) -> Table:
    return load_toml(ROOT / "configs" / "stations" / f"{name}.toml")


def _pair(value: float | list[float]) -> tuple[float, float]:
    return (value, value) if isinstance(value, float | int) else (value[0], value[1])


def _rig_station_params() -> list[object]:
    return [
        pytest.param(rig, name, id=f"{rig.file}-{name}") for rig in RIGS for name in rig.stations
    ]


@pytest.mark.parametrize(("rig", "name"), _rig_station_params())
def test_world_station_is_the_station_config(rig: Rig, name: str) -> None:
    world = {s.name: s for s in load_world_config(_rig(rig)).stations}[name]
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


@pytest.mark.parametrize(("rig", "name"), _rig_station_params())
def test_world_attitude_law_is_the_station_config(rig: Rig, name: str) -> None:
    """One satellite serves both stations: both station configs must name its attitude law."""
    sat = load_world_config(_rig(rig)).satellite
    assert sat.attitude_law == _station(name).table("polarization").string("attitude_law")


@pytest.mark.parametrize(("rig", "name"), _rig_station_params())
def test_mount_firmware_limits_cover_the_station(rig: Rig, name: str) -> None:
    mount_rig = _rig(rig).table("devices").table(name).table("mount")
    mount = _station(name).table("mount")
    assert mount_rig.number("az_min_deg") <= mount.number("az_min_deg")
    assert mount_rig.number("az_max_deg") >= mount.number("az_max_deg")
    assert mount_rig.number("el_min_deg") <= mount.number("el_min_deg")
    assert mount_rig.number("el_max_deg") >= mount.number("el_max_deg")
    speed = _pair(mount.raw("max_speed_deg_s"))
    accel = _pair(mount.raw("max_accel_deg_s2"))
    assert mount_rig.number("az_speed_deg_s") >= speed[0]
    assert mount_rig.number("el_speed_deg_s") >= speed[1]
    assert mount_rig.number("az_accel_deg_s2") >= accel[0]
    assert mount_rig.number("el_accel_deg_s2") >= accel[1]
    assert mount_rig.number("park_az_deg") == mount.number("park_az_deg")
    assert mount_rig.number("park_el_deg") == mount.number("park_el_deg")


@pytest.mark.parametrize("rig", RIGS, ids=IDS)
def test_tle_file_is_the_worlds_orbit(rig: Rig) -> None:
    sat = load_world_config(_rig(rig)).satellite
    lines = (SATELLITES / rig.tle).read_text().splitlines()
    assert len(lines) == 3
    assert lines[0].strip() == sat.name
    assert lines[1:] == [sat.tle_line1, sat.tle_line2]
    assert lines[1][2:7] == "41731"
    assert lines[1][18:32].startswith(rig.epoch_prefix)


@pytest.mark.parametrize(("rig", "name"), _rig_station_params())
def test_tagger_has_every_world_channel(rig: Rig, name: str) -> None:
    world = {s.name: s for s in load_world_config(_rig(rig)).stations}[name]
    tagger = _rig(rig).table("devices").table(name).table("timetagger")
    ch = world.channels
    assert (ch.h, ch.v, ch.d, ch.a, world.pps_channel) == (1, 2, 3, 4, 8)
    assert tagger.integer("channels") >= 8


@pytest.mark.parametrize("rig", RIGS, ids=IDS)
def test_start_is_a_couple_of_minutes_before_aos_of_the_common_pass(rig: Rig) -> None:
    cfg = load_world_config(_rig(rig))
    assert cfg.start_time is not None
    start = cfg.start_time
    world = World(cfg, seed=0)

    def first_visible(name: str) -> float:
        for dt in range(0, 1200):
            if world.is_visible(name, start + dt):
                return start + dt
        raise AssertionError(f"{name} never rises")

    aos = min(first_visible(n) for n in rig.stations)
    assert 60.0 <= aos - start <= 180.0
    assert not any(world.is_visible(n, start) for n in rig.stations)
    day, times = rig.common_above_15
    for hh_mm_ss in times:
        t = datetime.fromisoformat(f"{day}T{hh_mm_ss}+00:00").timestamp()
        assert all(world.line_of_sight(n, t).el_deg > 15.0 for n in rig.stations), hh_mm_ss
    assert cfg.tagger_epoch <= cfg.start_time
    assert datetime.fromtimestamp(cfg.start_time, UTC).isoformat() == rig.start_utc


@pytest.mark.parametrize("rig", RIGS[1:], ids=IDS[1:])
def test_rehearsal_start_is_at_night_at_both_stations(rig: Rig) -> None:
    """The rehearsal worlds start before a night window: Sun below -12 deg at both sites."""
    cfg = load_world_config(_rig(rig))
    assert cfg.start_time is not None
    world = World(cfg, seed=0)
    for name in rig.stations:
        for dt in (0.0, 300.0, 600.0):
            assert world.truth(name, cfg.start_time + dt)["sun_alt_deg"] < -12.0, (name, dt)


def test_rehearsal_receivers_follow_physics_md() -> None:
    """2017: L_fixed 17.6 dB incl. 3 dB detector; 2020: 1.5 dB better per link with filters."""
    w2017 = load_world_config(_rig(RIGS[1]))
    w2020 = load_world_config(_rig(RIGS[2]))
    for st in w2017.stations:
        assert st.optics_loss_db == pytest.approx(14.6)
        assert st.detectors.efficiency == (0.5, 0.5, 0.5, 0.5)
    for st in w2020.stations:
        assert st.optics_loss_db == pytest.approx(14.6 - 1.5)
        assert st.aperture_m == pytest.approx(1.2)
    assert w2017.source.pair_rate_hz == w2020.source.pair_rate_hz == pytest.approx(5.9e6)
    assert w2017.source.visibility == pytest.approx((4 * 0.907 - 1) / 3, abs=5e-4)
