"""Refraction of the world's line of sight: the formula, its weather, and what it costs."""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib

import numpy as np
import pytest
from skyfield import earthlib

from drivers.config import Table
from drivers.datatypes import AltAz
from drivers.errors import ConfigError
from sim_hardware.world import World, WorldConfig, load_world_config
from sim_hardware.world.refraction import (
    refraction_deg,
    standard_pressure_hpa,
    standard_temperature_c,
)

from .conftest import EXAMPLE, variant


def test_reference_values_and_weather_scaling() -> None:
    # Sæmundsson at 1010 hPa / 10 °C: ~29' at the horizon, ~5.4' at 10 deg, 0 at the zenith.
    assert refraction_deg(0.0, 1010.0, 9.85) * 60 == pytest.approx(28.97, abs=0.05)
    assert refraction_deg(10.0, 1010.0, 9.85) * 60 == pytest.approx(5.41, abs=0.02)
    assert refraction_deg(90.0, 1010.0, 9.85) == 0.0
    values = [refraction_deg(el, 700.0, 5.0) for el in range(0, 91, 5)]
    assert all(a > b for a, b in itertools.pairwise(values))
    # Linear in pressure, inverse in absolute temperature; vacuum refracts nothing.
    half = refraction_deg(20.0, 505.0, 9.85)
    assert half == pytest.approx(refraction_deg(20.0, 1010.0, 9.85) / 2)
    cold, warm = refraction_deg(20.0, 700.0, -20.0), refraction_deg(20.0, 700.0, 30.0)
    assert cold / warm == pytest.approx((273.15 + 30.0) / (273.15 - 20.0))
    assert refraction_deg(20.0, 0.0, 5.0) == 0.0
    # Held below -1 deg (no blow-up at the formula's pole near -5 deg).
    assert refraction_deg(-4.0, 1010.0, 10.0) == refraction_deg(-1.0, 1010.0, 10.0)


def test_standard_atmosphere_defaults() -> None:
    assert standard_pressure_hpa(0.0) == pytest.approx(1013.25)
    assert standard_pressure_hpa(3153.0) == pytest.approx(687.6, abs=0.5)
    assert standard_temperature_c(3153.0) == pytest.approx(-5.49, abs=0.01)


@pytest.mark.parametrize(("pressure", "temperature"), [(1010.0, 10.0), (696.0, 5.0), (560, -15)])
def test_agrees_with_skyfields_bennett_inversion(pressure: float, temperature: float) -> None:
    """An independent implementation (skyfield iterates Bennett's apparent-altitude formula)."""
    for el in np.arange(3.0, 89.0, 1.0):
        ours = refraction_deg(float(el), pressure, temperature)
        theirs = float(earthlib.refract(el, temperature, pressure)) - el
        assert ours == pytest.approx(theirs, abs=0.003), el  # < 0.2 arcmin


def _low_el_time(world: World, station: str, start: float, el_max: float) -> float:
    """First time after ``start`` at which the station sees the satellite at <= el_max."""
    for dt in np.arange(0.0, 900.0, 1.0):
        t = start + float(dt)
        el = world.geometric_line_of_sight(station, t).el_deg
        if world.is_visible(station, t) and el <= el_max:
            return t
    raise AssertionError("no low-elevation instant in the pass")


def test_line_of_sight_is_apparent_with_station_weather(example: WorldConfig) -> None:
    assert example.start_time is not None
    st = example.stations[0]
    cfg = dataclasses.replace(
        example, stations=(dataclasses.replace(st, pressure_hpa=700.0, temperature_c=0.0),)
    )
    world = World(cfg, seed=0)
    t = _low_el_time(world, st.name, example.start_time, 15.0)
    geo = world.geometric_line_of_sight(st.name, t)
    app = world.line_of_sight(st.name, t)
    assert app.az_deg == geo.az_deg
    assert app.el_deg - geo.el_deg == pytest.approx(refraction_deg(geo.el_deg, 700.0, 0.0))
    truth = world.truth(st.name, t)
    assert truth["apparent_el_deg"] == pytest.approx(app.el_deg)
    assert truth["el_deg"] == pytest.approx(geo.el_deg)
    # Default weather: the standard atmosphere at the site altitude.
    default = World(
        dataclasses.replace(
            example,
            stations=(dataclasses.replace(st, pressure_hpa=None, temperature_c=None),),
        ),
        seed=0,
    )
    expected = refraction_deg(
        geo.el_deg, standard_pressure_hpa(st.altitude_m), standard_temperature_c(st.altitude_m)
    )
    assert default.line_of_sight(st.name, t).el_deg - geo.el_deg == pytest.approx(expected)
    vacuum = World(
        dataclasses.replace(example, stations=(dataclasses.replace(st, pressure_hpa=0.0),)),
        seed=0,
    )
    assert vacuum.line_of_sight(st.name, t) == geo


def test_pointing_at_the_geometric_position_loses_signal_at_low_elevation(
    example: WorldConfig,
) -> None:
    """A station that points where the satellite appears keeps the full signal; one that
    ignores refraction keeps only exp(-2 (R/fov)^2) of it (about half near 12 deg)."""
    assert example.start_time is not None
    world = World(variant(example, source={"pair_rate_hz": 5e7}), seed=5)  # signal > background
    name = "delingha"
    t = _low_el_time(world, name, example.start_time, 13.0)
    t0, t1 = t, t + 2.0
    mid = 0.5 * (t0 + t1)
    app, geo = world.line_of_sight(name, mid), world.geometric_line_of_sight(name, mid)
    sep = app.separation_deg(geo)
    assert 0.03 < sep < 0.1
    fov = example.stations[0].fov_half_angle_deg
    exp_app = world.expected_rates(name, mid, pointing=app, hwp_deg=0.0)
    exp_geo = world.expected_rates(name, mid, pointing=geo, hwp_deg=0.0)
    assert exp_app["coupling"] == pytest.approx(1.0)
    assert exp_geo["coupling"] == pytest.approx(math.exp(-2.0 * (sep / fov) ** 2), rel=1e-6)
    assert exp_geo["coupling"] < 0.85

    def signal_counts(pointing: AltAz) -> int:
        _, ch = world.detections(name, t0, t1, pointing=pointing, hwp_deg=0.0)
        return int(np.count_nonzero((ch >= 1) & (ch <= 4)))

    n_app, n_geo = signal_counts(app), signal_counts(geo)
    lost = (exp_app["singles_cps"] - exp_geo["singles_cps"]) * (t1 - t0)
    assert n_app == pytest.approx(exp_app["singles_cps"] * (t1 - t0), rel=0.05)
    # Same keyed random streams: the geometric run's photons are a thinned subset of the
    # apparent run's, so the difference is the lost signal within binomial (+ scintillation,
    # 200 slices of sigma_ln 0.2) error.
    assert n_app - n_geo == pytest.approx(lost, abs=5 * math.sqrt(lost) + 0.05 * lost)
    assert n_app - n_geo > 0.15 * exp_app["signal_cps"] * (t1 - t0)  # > 15 % of the signal


def test_weather_keys_in_the_config() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    data["stations"][1]["pressure_hpa"] = 650.0
    cfg = load_world_config(Table(data, source="rig.toml"))
    assert cfg.stations[1].weather() == (650.0, standard_temperature_c(3233.0))
    assert cfg.stations[0].weather() == (
        standard_pressure_hpa(cfg.stations[0].altitude_m),
        standard_temperature_c(cfg.stations[0].altitude_m),
    )
    data["stations"][1]["temperature_c"] = 99.0
    with pytest.raises(ConfigError) as info:
        load_world_config(Table(data, source="rig.toml"))
    assert info.value.key == "stations[1].temperature_c"
