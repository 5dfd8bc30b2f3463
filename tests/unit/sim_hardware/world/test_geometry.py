"""Geometry truth: interpolation against direct skyfield, light time, frame rotation."""

from __future__ import annotations

import numpy as np
import pytest
from skyfield.api import EarthSatellite

from sim_hardware.world import World, WorldConfig
from sim_hardware.world.geometry import C_M_S
from sim_hardware.world.polframe import frame_rotation_deg
from sim_hardware.world.sky import load_sky, posix_to_time
from sim_hardware.world.troposphere import marini_murray_m


def test_interpolation_error(example: WorldConfig, t_pass: float) -> None:
    """Hermite/Catmull-Rom on the 1 s grid against skyfield evaluated at off-grid times."""
    world = World(example, seed=0)
    sky = load_sky()
    cfg = example.satellite
    sat = EarthSatellite(cfg.tle_line1, cfg.tle_line2, cfg.name, sky.ts)
    geo = world._station("delingha").geo
    for dt in (-100.37, -3.5, 0.123, 17.77, 80.5):
        t = t_pass + dt
        tt = posix_to_time(sky.ts, t)
        alt, az, dist = (sat - geo._topos).at(tt).altaz()
        los = world.geometric_line_of_sight("delingha", t)
        assert los.el_deg == pytest.approx(alt.degrees, abs=1e-6)
        assert los.az_deg == pytest.approx(az.degrees, abs=1e-6)
        assert world.truth("delingha", t)["range_m"] == pytest.approx(dist.m, abs=0.01)
        # θ straight from the vectors at t, versus the interpolated value.
        ttv = posix_to_time(sky.ts, np.array([t]))
        rel = (sat - geo._topos).at(ttv)
        neu = rel.frame_xyz(geo._topos).m
        sat_at = sat.at(ttv)
        direct = geo._theta(ttv, neu, sat_at.position.m, sat_at.velocity.m_per_s)[0]
        assert geo.theta_deg(t) == pytest.approx(direct, abs=1e-3)


def test_light_time_per_station(example: WorldConfig, t_pass: float) -> None:
    world = World(example, seed=0)
    a, b = (world.truth(s, t_pass) for s in world.station_names)
    for name, tr in zip(world.station_names, (a, b), strict=True):
        st = next(s for s in example.stations if s.name == name)
        pressure, temperature = st.weather()
        tropo_s = (
            float(
                marini_murray_m(
                    np.array([tr["el_deg"]]),
                    pressure_hpa=pressure,
                    temperature_c=temperature,
                    latitude_deg=st.latitude_deg,
                    altitude_m=st.altitude_m,
                )[0]
            )
            / C_M_S
        )
        assert 3e-9 < tropo_s < 40e-9  # a high site's troposphere: metres of path
        # Emission-time light time ≈ range/c + troposphere; the station moves <= 0.5 m
        # during the flight.
        assert tr["tof_s"] - tropo_s == pytest.approx(tr["range_m"] / C_M_S, abs=5e-9)
    assert b["tof_s"] - a["tof_s"] > 1e-3  # Lijiang is much farther at this instant
    # The light time changes through the pass (range rate of km/s).
    later = world.truth("delingha", t_pass + 30.0)["tof_s"]
    assert abs(later - a["tof_s"]) > 1e-5


def test_visibility_follows_elevation(example: WorldConfig, t_pass: float) -> None:
    world = World(example, seed=0)
    assert world.is_visible("delingha", t_pass)
    assert not world.is_visible("delingha", t_pass - 3600.0)
    assert world.line_of_sight("delingha", t_pass - 3600.0).el_deg < 0


def test_frame_rotation_hand_example() -> None:
    """Satellite due north at 45 deg moving east: its velocity axis looks horizontal (θ=0);
    a source axis turned by +30 deg in the body appears at +30 (a rotation, not a mirror)."""
    rel = np.array([[0.0], [1.0], [1.0]]) * 7e5  # east, north, up (m)
    sat_pos = rel + np.array([[0.0], [0.0], [6.4e6]])
    vel = np.array([[7.5e3], [0.0], [0.0]])
    up = np.array([[0.0], [0.0], [1.0]])
    for law in ("target_pointing", "nadir"):
        zero = frame_rotation_deg(
            rel, sat_pos, vel, up, attitude_law=law, polarization_axis_deg=0.0
        )
        assert zero[0] == pytest.approx(0.0, abs=1e-9)
    thirty = frame_rotation_deg(
        rel, sat_pos, vel, up, attitude_law="target_pointing", polarization_axis_deg=30.0
    )
    assert thirty[0] == pytest.approx(30.0, abs=1e-9)
    with pytest.raises(ValueError, match="attitude law"):
        frame_rotation_deg(rel, sat_pos, vel, up, attitude_law="spin", polarization_axis_deg=0)


def test_frame_rotation_changes_through_pass(example: WorldConfig, t_pass: float) -> None:
    world = World(example, seed=0)
    thetas = [world.truth("delingha", t_pass - 60 + 20 * i)["theta_deg"] for i in range(7)]
    assert max(thetas) - min(thetas) > 20.0  # the compensation has real work to do
