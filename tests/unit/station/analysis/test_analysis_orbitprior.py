"""Orbit prior (differential time of flight) against the world's independent truth."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sgp4.api import WGS72, Satrec

from drivers.config import load_toml
from sim_hardware.world import World, load_world_config
from station.analysis.orbitprior import OrbitPrior, light_time_s, orbit_prior, site_teme_m
from station.analysis.troposphere import dispersion, fcula, zenith_delay_m
from station.tracking.earth import default_eop, polar_motion_matrix
from station.tracking.ephemeris import propagate_teme
from station.tracking.site import Site

ROOT = Path(__file__).resolve().parents[4]
RIG = ROOT / "configs" / "rig" / "delingha_lijiang.toml"
_LINES = (ROOT / "configs" / "satellites" / "micius-2021.tle").read_text().splitlines()
TLE = (_LINES[1], _LINES[2])
START = datetime(2021, 4, 29, 17, 22, 30, tzinfo=UTC).timestamp()
STOP = datetime(2021, 4, 29, 17, 27, 0, tzinfo=UTC).timestamp()
C = 299_792_458.0


def site(name: str, *, vacuum: bool = False) -> Site:
    s = load_toml(ROOT / "configs" / "stations" / f"{name}.toml").table("site")
    return Site(
        name,
        s.number("latitude_deg"),
        s.number("longitude_deg"),
        s.number("altitude_m"),
        pressure_hpa=0.0 if vacuum else s.number("pressure_hpa"),
        temperature_c=s.number("temperature_c"),
    )


def prior(*, vacuum: bool = False) -> OrbitPrior:
    # Both sides apply the IERS pole (the world through skyfield's polar-motion table,
    # sim_hardware/world/sky.py; the station through station/tracking/earth.py).
    return orbit_prior(
        TLE,
        site("delingha", vacuum=vacuum),
        site("lijiang", vacuum=vacuum),
        start_posix=START,
        stop_posix=STOP,
    )


@pytest.fixture(scope="module")
def truth() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World light times τ_A, τ_B (s) for emissions every 7.5 s through the common pass."""
    world = World(load_world_config(load_toml(RIG)), seed=1)
    te = np.arange(START, STOP, 7.5)
    tau_a = np.array([world.truth("delingha", t)["tof_s"] for t in te])
    tau_b = np.array([world.truth("lijiang", t)["tof_s"] for t in te])
    return te, tau_a, tau_b


def test_differential_tof_matches_the_world(truth: tuple[np.ndarray, ...]) -> None:
    """t_B − t_A for the pair seen at A at t_A: station (sgp4 + numpy + Mendes–Pavlis) vs
    world (skyfield + Marini–Murray), within 100 ps through 17:22:30–17:27:00 UTC."""
    te, tau_a, tau_b = truth
    p = prior()
    t_arrive_a = te + tau_a
    err_ps = p.differential_ps(t_arrive_a) - (tau_b - tau_a) * 1e12
    assert float(np.max(np.abs(err_ps))) < 100.0
    # the quantity itself sweeps by milliseconds: the agreement is not a trivial one
    assert float(np.ptp((tau_b - tau_a) * 1e12)) > 1e9
    for name, tau in (("delingha", tau_a), ("lijiang", tau_b)):
        assert float(np.max(np.abs(p.tof_ps(name, te) - tau * 1e12))) < 100.0


def test_troposphere_is_needed_on_both_sides(truth: tuple[np.ndarray, ...]) -> None:
    """A vacuum prior misses the world's differential by ns (elevations differ)."""
    te, tau_a, tau_b = truth
    err_ps = prior(vacuum=True).differential_ps(te + tau_a) - (tau_b - tau_a) * 1e12
    assert float(np.max(np.abs(err_ps))) > 5_000.0
    trop = prior().troposphere_ps("lijiang", te)
    assert float(trop.min()) > 5_000.0
    assert float(trop.max()) < 35_000.0


def test_emission_time_is_the_fixed_point() -> None:
    p = prior()
    t_a = np.linspace(START, STOP, 11)
    te = p.emission_posix(t_a)
    resid = te + p.tof_ps("delingha", te) / 1e12 - t_a
    assert float(np.max(np.abs(resid))) < 1e-9  # ≪ float64 POSIX quantum ~2.4e-7 s


def test_light_time_solves_the_inertial_geometry() -> None:
    """c·τ = |r_site(t_e + τ) − r_sat(t_e)| in TEME (satellite at emission, station at
    reception) to < 1 mm; the station's motion during the flight is metres (ns)."""
    sat = Satrec.twoline2rv(TLE[0], TLE[1], WGS72)
    te = np.linspace(START, STOP, 9)
    eop = default_eop()
    s = site("lijiang")
    tau = light_time_s(sat, s, te, eop)
    r_sat = propagate_teme(sat, te, knot_step_s=0.0)[0] * 1e3
    _, xp, yp = eop.at(float(te[4]))
    pm = polar_motion_matrix(float(xp), float(yp))
    at_rx = np.linalg.norm(site_teme_m(s, te + tau, eop, pm) - r_sat, axis=1)
    at_tx = np.linalg.norm(site_teme_m(s, te, eop, pm) - r_sat, axis=1)
    assert np.all(np.abs(at_rx - C * tau) < 1e-3)
    assert float(np.max(np.abs(at_rx - at_tx))) > 0.3  # Earth rotation during the flight


def test_station_troposphere_known_values() -> None:
    """Mendes–Pavlis: the hydrostatic zenith delay at sea level and 45° is ~2.4 m at the SLR
    green (532 nm) and less in the near infrared (normal dispersion); FCULa is 1 at the
    zenith and ~1/sin E well above the horizon."""
    f_532, _ = dispersion(0.532)
    f_810, _ = dispersion(0.810)
    assert f_810 < f_532  # normal dispersion: less delay in the near infrared
    zd = zenith_delay_m(1013.25, 45.0, 0.0, wavelength_um=0.532)
    assert 2.38 < zd < 2.45
    m = fcula(np.array([90.0, 60.0, 30.0]), 37.4, 3153.0, 5.0)
    assert m[0] == pytest.approx(1.0, abs=1e-9)
    assert m[1:] == pytest.approx(1.0 / np.sin(np.radians([60.0, 30.0])), rel=5e-3)


def test_out_of_span_and_unknown_station_raise() -> None:
    p = prior()
    with pytest.raises(ValueError, match="span"):
        p.tof_ps("delingha", np.array([STOP + 3600.0]))
    with pytest.raises(KeyError, match="nanshan"):
        p.tof_ps("nanshan", np.array([START]))
    with pytest.raises(ValueError, match="differ"):
        orbit_prior(TLE, site("lijiang"), site("lijiang"), start_posix=START, stop_posix=STOP)
