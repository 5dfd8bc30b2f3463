"""Network configs: the shipped ones load; every malformed one is a ConfigError naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.errors import ConfigError
from station.network.config import load_network_config

ROOT = Path(__file__).resolve().parents[4]
SHIPPED = sorted((ROOT / "configs/network").glob("*.toml"))
STATIONS = ROOT / "configs/stations"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_configs_load(path: Path) -> None:
    cfg = load_network_config(path)
    assert len(cfg.stations) >= 2
    assert cfg.tle_path.exists()
    assert cfg.mode in ("bell", "key")
    if cfg.mode == "bell":  # exactly one relative turn of 11.25 deg: the CHSH angles
        offsets = sorted(s.bell_offset_deg for s in cfg.stations)
        assert offsets[-1] - offsets[0] == pytest.approx(11.25)


def _write(tmp: Path, text: str) -> Path:
    path = tmp / "net.toml"
    path.write_text(text)
    return path


GOOD = f"""
[campaign]
id = "t1"
[satellite]
tle = "{ROOT}/configs/satellites/micius.tle"
[[stations]]
config = "{STATIONS}/delingha.toml"
[[stations]]
config = "{STATIONS}/lijiang.toml"
"""


def test_defaults(tmp_path: Path) -> None:
    cfg = load_network_config(_write(tmp_path, GOOD))
    assert cfg.mode == "bell"
    assert cfg.nights_only
    assert cfg.directory == Path("campaigns/t1")
    assert cfg.coordinator.name == "coordinator"
    # the first station measures in the source frame, the others turn by 11.25 deg
    assert [s.bell_offset_deg for s in cfg.stations] == [0.0, 11.25]


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        (('id = "t1"', 'id = "T 1"'), "campaign.id", "[a-z0-9_-]"),
        (('id = "t1"', 'id = "t1"\nmode = "teleport"'), "campaign.mode", "one of"),
        (('id = "t1"', 'id = "t1"\nmin_common_elevation_deg = nan'), "min_common", "finite"),
        (('id = "t1"', 'id = "t1"\nbogus = 1'), "campaign", "unknown key"),
        (
            ("[satellite]", '[coordinator]\nname = "delingha"\n[satellite]'),
            "coordinator.name",
            "station",
        ),
        (("lijiang.toml", "delingha.toml"), "stations", "twice"),
        (("lijiang.toml", "nowhere.toml"), None, "not found"),
    ],
)
def test_errors_name_the_key(
    tmp_path: Path, edit: tuple[str, str], key: str | None, words: str
) -> None:
    path = _write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError) as err:
        load_network_config(path)
    text = str(err.value)
    assert words in text, text
    if key is not None:
        assert key in text, text


def test_one_station_is_not_a_campaign(tmp_path: Path) -> None:
    text = GOOD[: GOOD.rindex("[[stations]]")]
    with pytest.raises(ConfigError, match="at least two"):
        load_network_config(_write(tmp_path, text))
