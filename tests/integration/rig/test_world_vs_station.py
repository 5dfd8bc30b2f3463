"""Two independent implementations of one sky: the station's pointing vs the rig's truth.

The station daemon predicts the pass from ``configs/satellites/micius-2021.tle`` with its own
sgp4 + numpy frames + Sæmundsson refraction (station/tracking); the rig's world flies the same
elements with skyfield + its own refraction. A station that points where its tracking says
must land within a small fraction of the receiver field of view of the world's line of sight,
and both must agree on when the common pass rises and sets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivers.config import load_toml
from drivers.datatypes import AltAz
from sim_hardware.world import World, load_world_config
from station.tracking.elements import load_elements
from station.tracking.ephemeris import look_angles
from station.tracking.passes import find_passes
from station.tracking.site import Site

ROOT = Path(__file__).resolve().parents[3]
RIG = ROOT / "configs" / "rig" / "delingha_lijiang.toml"
TLE = ROOT / "configs" / "satellites" / "micius-2021.tle"
STATIONS = ("delingha", "lijiang")


def site(name: str) -> Site:
    s = load_toml(ROOT / "configs" / "stations" / f"{name}.toml").table("site")
    return Site(
        name,
        s.number("latitude_deg"),
        s.number("longitude_deg"),
        s.number("altitude_m"),
        pressure_hpa=s.number("pressure_hpa"),
        temperature_c=s.number("temperature_c"),
        min_elevation_deg=s.number("min_elevation_deg"),
    )


@pytest.fixture(scope="module")
def world() -> World:
    return World(load_world_config(load_toml(RIG)), seed=0)


@pytest.mark.parametrize("name", STATIONS)
def test_station_pointing_lands_on_the_worlds_line_of_sight(world: World, name: str) -> None:
    sat = load_elements(TLE)[0]
    assert world.config.start_time is not None
    ts = world.config.start_time + np.arange(100.0, 700.0, 5.0)
    seen = look_angles(sat.satrec, site(name), ts)
    fov = next(s for s in world.config.stations if s.name == name).fov_half_angle_deg
    worst, worst_geometric_low = 0.0, 0.0
    for t, az, el in zip(ts, seen.az_deg, seen.el_deg, strict=True):
        truth = world.line_of_sight(name, float(t))
        if truth.el_deg < 10.0:
            continue
        pointing = AltAz(float(az), float(el))
        worst = max(worst, pointing.separation_deg(truth))
        if truth.el_deg < 20.0:
            geometric = world.geometric_line_of_sight(name, float(t))
            worst_geometric_low = max(worst_geometric_low, pointing.separation_deg(geometric))
    # Light time and aberration (station side only) leave ~0.003 deg: coupling loss < 0.2 %.
    assert worst < 0.005
    assert worst < 0.05 * fov
    # A world without refraction would be off by 0.03-0.06 deg below 20 deg elevation.
    assert worst_geometric_low > 0.03


def test_station_and_world_agree_on_the_common_pass(world: World) -> None:
    sat = load_elements(TLE)[0]
    assert world.config.start_time is not None
    t0 = world.config.start_time
    grid = t0 + np.arange(0.0, 900.0, 0.5)
    for name in STATIONS:
        first = find_passes(sat.satrec, site(name), t0, 0.02)[0]
        visible = [float(t) for t in grid if world.is_visible(name, float(t))]
        assert first.aos_s == pytest.approx(visible[0], abs=1.0), name
        assert first.los_s == pytest.approx(visible[-1], abs=1.0), name
        peak = max(world.geometric_line_of_sight(name, t).el_deg for t in visible)
        assert first.max_elevation_deg == pytest.approx(peak, abs=0.05), name
        assert first.night


@pytest.mark.parametrize("name", STATIONS)
def test_station_plate_command_is_the_worlds_compensation(world: World, name: str) -> None:
    """Two derivations of the frame sign and the mirrors (DESIGN.md), compared on the rig.

    The station (station/tracking/polframe.py: θ right-handed about k, the train a reflection)
    commands the plate to x/2; the world (sim_hardware/world/polframe.py, skyfield geometry)
    knows which plate reading makes the source-frame angles constant. They must agree modulo
    the plate's 90 deg symmetry for linear analysis, to a small fraction of a degree.
    """
    from station.tracking.polframe import frame_angle

    sat = load_elements(TLE)[0]
    assert world.config.start_time is not None
    ts = world.config.start_time + np.arange(300.0, 600.0, 5.0)
    st = site(name)
    train = next(s for s in world.config.stations if s.name == name).optical_train
    look = look_angles(sat.satrec, st, ts, apparent=False, refraction=False)
    ours = frame_angle(look, st, optical_train=train).hwp_deg
    worst = 0.0
    for t, plate in zip(ts, ours, strict=True):
        truth = world.truth(name, float(t))
        if truth["el_deg"] < 10.0:
            continue
        diff = (plate - truth["hwp_compensation_deg"] + 45.0) % 90.0 - 45.0
        worst = max(worst, abs(diff))
    assert worst < 0.05  # a 0.05 deg plate error is a 0.1 deg frame error: QBER + 3e-6
