"""The coordinator's configuration: stations, broker, satellite, mode and window rules.

A network config (``configs/network/<name>.toml``) names the campaign and the stations that
take part; every station keeps its own config file (site, mount, optics), which the
coordinator reads only for the site (to predict the common windows) and the name::

    [campaign]
    id = "dl2017"                 # topic level and directory name: [a-z0-9_-]
    mode = "bell"                 # "bell" (CHSH) or "key" (BBM92)
    min_common_elevation_deg = 15 # both stations at least this high (geometric)
    min_window_s = 60             # shorter common windows are not booked
    nights_only = true            # Sun below -12 deg at every station
    horizon_days = 1.0            # how far ahead windows are predicted
    directory = "campaigns/dl2017"  # relative to the working directory

    [coordinator]
    name = "coordinator"          # its MQTT node: qgs/v1/<name>/...
    broker = "mqtt://127.0.0.1:1883"   # or "embedded"
    username = "coordinator"      # optional; the password only from a file
    password_file = "/etc/qgs/coordinator.pw"
    ca_file = "/etc/qgs/ca.crt"
    book_retries = 3              # per station and command
    ack_timeout_s = 15            # wall seconds for each command's final ack

    [satellite]
    tle = "../satellites/micius.tle"   # relative to this file
    norad_id = 41731
    max_age_days = 14

    [[stations]]
    config = "../stations/delingha.toml"
    bell_offset_deg = 0.0         # Bell mode: this station's extra plate angle
    [[stations]]
    config = "../stations/lijiang.toml"
    bell_offset_deg = 11.25

Errors are :class:`~drivers.errors.ConfigError` naming the file and key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from drivers.config import Table, load_toml
from drivers.errors import ConfigError
from station.config import StationConfig, load_station_config

MODES = ("bell", "key")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")


@dataclass(frozen=True)
class NetworkStation:
    """One station of the campaign: its own config and its Bell-mode plate offset (deg)."""

    config: StationConfig
    bell_offset_deg: float

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class CoordinatorSettings:
    name: str
    broker: str
    username: str | None
    password_file: Path | None
    ca_file: Path | None
    book_retries: int
    ack_timeout_s: float
    #: wall seconds the analysis of one pass may take before it is reported failed
    analysis_timeout_s: float


@dataclass(frozen=True)
class NetworkConfig:
    source: str
    campaign: str
    mode: str
    min_common_elevation_deg: float
    min_window_s: float
    nights_only: bool
    horizon_days: float
    directory: Path
    coordinator: CoordinatorSettings
    tle_path: Path
    norad_id: int | None
    max_age_days: float
    stations: tuple[NetworkStation, ...]

    def station(self, name: str) -> NetworkStation:
        for s in self.stations:
            if s.name == name:
                return s
        raise KeyError(name)


def _identifier(t: Table, name: str, default: str | None = None) -> str:
    value = t.string(name, default)
    if not _ID.match(value):
        raise t.error(
            name, f"expected 1-48 of [a-z0-9_-] starting with a letter or digit, got {value!r}"
        )
    return value


def _path(t: Table, name: str, base: Path, *, required: bool = True) -> Path | None:
    if not required and name not in t:
        t.raw(name, None)
        return None
    path = Path(t.string(name))
    return path if path.is_absolute() else (base / path).resolve()


def load_network_config(path: str | Path) -> NetworkConfig:
    """Read and validate a network TOML file (and the station files it names)."""
    root = load_toml(path)
    base = Path(path).resolve().parent
    c = root.table("campaign")
    campaign = _identifier(c, "id")
    mode = c.choice("mode", MODES, "bell")
    min_el = c.number("min_common_elevation_deg", 15.0, min=0.0, max=89.0)
    min_window = c.number("min_window_s", 60.0, min=1.0, max=3600.0)
    nights_only = c.boolean("nights_only", True)
    horizon = c.number("horizon_days", 1.0, min=0.01, max=14.0)
    directory = Path(c.string("directory", f"campaigns/{campaign}"))
    c.finish()

    k = root.table("coordinator", required=False)
    password_file = _path(k, "password_file", base, required=False)
    ca_file = _path(k, "ca_file", base, required=False)
    coordinator = CoordinatorSettings(
        name=_identifier(k, "name", "coordinator"),
        broker=k.string("broker", "mqtt://127.0.0.1:1883"),
        username=k.string("username") if "username" in k else None,
        password_file=password_file,
        ca_file=ca_file,
        book_retries=k.integer("book_retries", 3, min=1, max=20),
        ack_timeout_s=k.number("ack_timeout_s", 15.0, min=0.5, max=600.0),
        analysis_timeout_s=k.number("analysis_timeout_s", 600.0, min=10.0, max=86400.0),
    )
    k.finish()

    s = root.table("satellite")
    tle = _path(s, "tle", base)
    assert tle is not None
    norad = s.integer("norad_id", 0, min=0, max=999_999_999) or None
    max_age = s.number("max_age_days", 14.0, min=0.1, max=100000.0)
    s.finish()

    stations: list[NetworkStation] = []
    for i, t in enumerate(root.tables("stations")):
        station_file = _path(t, "config", base)
        assert station_file is not None
        cfg = load_station_config(station_file)
        default_offset = 0.0 if i == 0 else 11.25
        stations.append(
            NetworkStation(cfg, t.number("bell_offset_deg", default_offset, min=-90.0, max=90.0))
        )
        t.finish()
    names = [st.name for st in stations]
    if len(stations) < 2:
        raise ConfigError("a campaign needs at least two [[stations]]", source=str(path))
    if len(set(names)) != len(names):
        raise ConfigError(f"a station is listed twice: {names}", source=str(path), key="stations")
    if coordinator.name in names:
        raise ConfigError(
            f"the coordinator's name {coordinator.name!r} is also a station's",
            source=str(path),
            key="coordinator.name",
        )
    root.finish()
    return NetworkConfig(
        source=str(path),
        campaign=campaign,
        directory=directory,
        coordinator=coordinator,
        tle_path=tle,
        norad_id=norad,
        max_age_days=max_age,
        stations=tuple(stations),
        mode=mode,
        min_common_elevation_deg=min_el,
        min_window_s=min_window,
        nights_only=nights_only,
        horizon_days=horizon,
    )
