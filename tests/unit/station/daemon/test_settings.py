"""Daemon config sections: defaults, validation errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.config import Table
from drivers.datatypes import AnalyzerMode, ChannelMap
from drivers.errors import ConfigError
from station.config import load_station_config
from station.daemon.settings import parse_daemon_settings

CONFIGS = Path(__file__).resolve().parents[4] / "configs" / "stations"


def test_defaults_when_sections_are_absent() -> None:
    s = parse_daemon_settings(Table({}, source="t.toml"))
    assert s.mqtt.broker == "embedded"
    assert s.analyzer.channels == ChannelMap(1, 2, 3, 4)
    assert s.watchdog.mount == "safe"
    assert s.watchdog.hwp == "degrade"
    assert s.timetagger.pps_channel == 8


def test_sections_are_parsed_and_paths_resolved(tmp_path: Path) -> None:
    root = Table(
        {
            "mqtt": {"broker": "mqtt://127.0.0.1:1884", "password_file": "pw"},
            "recording": {"data_dir": "bundles"},
            "analyzer": {"channels": {"h": 5, "v": 6, "d": 7, "a": 8}, "mode": "bell"},
            "timetagger": {"channels": [5, 6, 7, 8], "pps_channel": 0},
        },
        source="t.toml",
    )
    s = parse_daemon_settings(root, base_dir=tmp_path)
    assert s.mqtt.password_file == tmp_path / "pw"
    assert s.recording.data_dir == tmp_path / "bundles"
    assert s.analyzer.mode is AnalyzerMode.BELL
    assert s.timetagger.pps_channel is None


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"watchdog": {"mount": "ignore"}}, "watchdog.mount"),
        ({"analyzer": {"channels": {"h": 1, "v": 1, "d": 3, "a": 4}}}, "analyzer.channels"),
        ({"timetagger": {"channels": [1, 2, 3]}}, "timetagger.channels"),
        ({"mqtt": {"allowed_clients": "*"}}, "mqtt.allowed_clients"),
        ({"schedule": {"horizon_days": 0}}, "schedule.horizon_days"),
        ({"recording": {"typo": 1}}, "recording"),
    ],
)
def test_bad_values_name_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_daemon_settings(Table(data, source="t.toml"))
    assert err.value.key == key
    assert "t.toml" in str(err.value)


@pytest.mark.parametrize("site", ["delingha", "lijiang", "nanshan"])
def test_shipped_station_configs_load(site: str) -> None:
    cfg = load_station_config(CONFIGS / f"{site}.toml")
    assert cfg.name == site
    assert cfg.tracking.rate_hz >= 10.0
