"""Station config loader: shipped configs load; errors name file, key and allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.errors import ConfigError
from station.config import load_station_config

from .conftest import CONFIGS

STATIONS = CONFIGS / "stations"


@pytest.mark.parametrize("name", ["delingha", "lijiang", "nanshan"])
def test_shipped_station_configs_load(name: str) -> None:
    cfg = load_station_config(STATIONS / f"{name}.toml")
    assert cfg.name == name
    assert cfg.tle.path is not None
    assert cfg.tle.path.exists()
    assert cfg.mount.limits.az.max_deg - cfg.mount.limits.az.min_deg >= 360.0
    assert cfg.safety.sun_radius_deg == 30.0
    assert cfg.tracking.rate_hz == 10.0


def test_physics_md_coordinates() -> None:
    d = load_station_config(STATIONS / "delingha.toml").site
    n = load_station_config(STATIONS / "nanshan.toml").site
    assert (d.latitude_deg, d.longitude_deg, d.altitude_m) == pytest.approx(
        (37 + 22 / 60 + 44.43 / 3600, 97 + 43 / 60 + 37.01 / 3600, 3153.0), abs=1e-5
    )
    assert (n.latitude_deg, n.longitude_deg, n.altitude_m) == pytest.approx(
        (43 + 28 / 60 + 31.66 / 3600, 87 + 10 / 60 + 36.07 / 3600, 2028.0), abs=1e-5
    )


def _write(tmp_path: Path, replace: tuple[str, str] | None = None, extra: str = "") -> Path:
    text = (STATIONS / "delingha.toml").read_text()
    text = text.replace(
        'path = "../satellites/micius.tle"', f'path = "{CONFIGS / "satellites" / "micius.tle"}"'
    )
    if replace:
        assert replace[0] in text
        text = text.replace(*replace)
    p = tmp_path / "station.toml"
    p.write_text(text + extra)
    return p


@pytest.mark.parametrize(
    ("replace", "key", "message"),
    [
        (
            ("latitude_deg = 37.379008", "latitude_deg = 123.0"),
            "site.latitude_deg",
            "expected a number in [-90, 90], got 123.0",
        ),
        (
            ('keyhole_strategy = "skip"', 'keyhole_strategy = "dodge"'),
            "mount.keyhole_strategy",
            "expected one of ['flip', 'skip']",
        ),
        (
            ('keyhole_strategy = "skip"', 'keyhole_strategy = "flip"'),
            "mount.keyhole_strategy",
            "'flip' needs over_the_top = true",
        ),
        (("az_max_deg = 270.0", "az_max_deg = 60.0"), "mount.az_max_deg", "must span >= 360"),
        (
            ('optical_train = "coude"', 'optical_train = "mirror"'),
            "polarization.optical_train",
            "expected one of ['none', 'nasmyth', 'coude']",
        ),
        (
            ("horizon_mask = [[0, 5]", "horizon_mask = [[0, 95]"),
            "site.horizon_mask[0]",
            "expected [azimuth in [0, 360], elevation in [0, 90]]",
        ),
        (
            ("max_speed_deg_s = 5.0", "max_speed_deg_s = [5.0]"),
            "mount.max_speed_deg_s",
            "[az, el] pair",
        ),
        (
            ("sun_radius_deg = 30.0", "sun_radius_deg = true"),
            "safety.sun_radius_deg",
            "expected a number",
        ),
        # NaN passes every range check (both comparisons are false): a NaN Sun radius once
        # switched the Sun exclusion off. TOML spells nan and inf literally.
        (
            ("sun_radius_deg = 30.0", "sun_radius_deg = nan"),
            "safety.sun_radius_deg",
            "expected a finite number",
        ),
        (
            ("max_speed_deg_s = 5.0", "max_speed_deg_s = inf"),
            "mount.max_speed_deg_s",
            "expected a finite number",
        ),
        (
            ("max_speed_deg_s = 5.0", "max_speed_deg_s = [5.0, nan]"),
            "mount.max_speed_deg_s",
            "finite numbers",
        ),
        (
            ("min_elevation_deg = 10.0", "min_elevation_deg = 10.0\nmin_elevaton_deg = 12.0"),
            "site",
            "unknown key(s) ['min_elevaton_deg']",
        ),
    ],
)
def test_errors_name_file_key_and_allowed_values(
    tmp_path: Path, replace: tuple[str, str], key: str, message: str
) -> None:
    p = _write(tmp_path, replace)
    with pytest.raises(ConfigError) as info:
        load_station_config(p)
    assert str(info.value).startswith(f"{p}:{key}: ")
    assert message in str(info.value)


def test_unknown_section_and_missing_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['mqttt'\]"):
        load_station_config(_write(tmp_path, extra="\n[mqttt]\nhost = 'x'\n"))
    with pytest.raises(ConfigError, match=r"site.altitude_m: required key is missing"):
        load_station_config(_write(tmp_path, ("altitude_m = 3153.0", "")))
