"""World config loading: the example file, and errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from drivers.config import Table
from drivers.errors import ConfigError
from sim_hardware.world import WorldConfig, load_world_config

from .conftest import EXAMPLE


def _load(text: str) -> WorldConfig:
    return load_world_config(Table(tomllib.loads(text), source="rig.toml"))


def _example_text() -> str:
    return Path(EXAMPLE).read_text()


def test_example_loads(example: WorldConfig) -> None:
    assert [s.name for s in example.stations] == ["delingha", "lijiang"]
    assert example.source.state == "psi+"
    assert example.source.pair_rate_hz == pytest.approx(5.9e6)
    assert example.stations[1].aperture_m == pytest.approx(1.8)
    assert example.stations[0].clock.offset_ns == pytest.approx(1200.0)
    assert example.tagger_epoch == pytest.approx(1619715600.0)  # 2021-04-29T17:00:00Z


def test_other_sections_are_left_to_the_rig() -> None:
    cfg = _load(_example_text() + '\n[devices.delingha]\nmount = "rotctld"\n')
    assert len(cfg.stations) == 2


def test_unknown_station_key_is_named() -> None:
    text = _example_text().replace("aperture_m = 1.2", "aperture_m = 1.2\napperture = 3")
    with pytest.raises(ConfigError, match=r"rig.toml:stations\[0\].*apperture"):
        _load(text)


def test_bad_choice_lists_allowed_values() -> None:
    text = _example_text().replace('state = "psi+"', 'state = "bell"')
    with pytest.raises(ConfigError, match=r"source.state.*psi\+.*phi\+"):
        _load(text)


def test_tle_checksum_error_names_line() -> None:
    text = _example_text().replace("0  9998", "0  9997")
    with pytest.raises(ConfigError, match=r"satellite.tle: line 1 checksum"):
        _load(text)


def test_detector_array_needs_four() -> None:
    text = _example_text().replace("efficiency = 0.5", "efficiency = [0.5, 0.4]", 1)
    with pytest.raises(ConfigError, match=r"stations\[0\].detectors.efficiency"):
        _load(text)


def test_three_stations_are_refused() -> None:
    text = _example_text()
    third = text[text.index('[[stations]]\nname = "lijiang"') :].replace("lijiang", "nanshan")
    with pytest.raises(ConfigError, match="one or two"):
        _load(text + "\n" + third)


def test_pps_collision_is_refused() -> None:
    text = _example_text().replace("pps = 8", "pps = 2", 1)
    with pytest.raises(ConfigError, match=r"channels.pps.*collides"):
        _load(text)
