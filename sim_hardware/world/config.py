"""World-side configuration of the rig: satellite, entangled-pair source and ground stations.

These dataclasses are the *truth* parameters of the emulated plant (they never reach the
station software). :func:`load_world_config` reads the ``[world]``, ``[satellite]``,
``[source]`` and ``[[stations]]`` tables of a rig config through :class:`drivers.config.Table`,
so every error names the file, the key and the allowed values. It calls ``finish()`` on its
own tables only: the rig adds its own ``[devices...]`` sections to the same file.

Numbers and their provenance are in ``shared/reference/physics.md``; defaults follow its
Delingha 2017 fit (1.2 m, A_z = 1.2 dB, L_fixed = 17.6 dB including a 0.5 detector efficiency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drivers.config import Table
from drivers.datatypes import ChannelMap
from drivers.errors import ConfigError
from sim_hardware.world.refraction import standard_pressure_hpa, standard_temperature_c

ATTITUDE_LAWS = ("target_pointing", "nadir")
OPTICAL_TRAINS = ("none", "nasmyth", "coude")
ANALYZERS = ("passive", "active")
STATES = ("psi+", "phi+")


@dataclass(frozen=True, slots=True)
class SatelliteConfig:
    """Orbit (TLE, propagated by skyfield) and attitude law of the spacecraft."""

    name: str
    tle_line1: str
    tle_line2: str
    attitude_law: str = "target_pointing"
    #: residual pointing jitter of the satellite's transmitter, 1-sigma per axis (µrad)
    pointing_jitter_urad: float = 0.7


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """The on-board entangled-pair source and its transmitters."""

    pair_rate_hz: float = 5.9e6
    wavelength_nm: float = 810.0
    state: str = "psi+"
    #: Werner visibility V: P(x_A, x_B) = (1 + V x_A x_B E(a, b)) / 4
    visibility: float = 0.95
    #: far-field divergence, full angle at 1/e² (µrad); physics.md assumes "10 µrad" is full
    divergence_full_urad: float = 10.0
    #: source H axis in the body x-y plane, from body x toward body y (deg)
    polarization_axis_deg: float = 0.0


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Four single-photon detectors, in channel-map order (H, V, D, A)."""

    efficiency: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.5)
    dark_cps: tuple[float, float, float, float] = (100.0, 100.0, 100.0, 100.0)
    jitter_fwhm_ps: float = 350.0
    dead_time_ns: float = 30.0
    afterpulse_prob: float = 0.0035
    afterpulse_mean_ns: float = 50.0


@dataclass(frozen=True, slots=True)
class ClockConfig:
    """The station tagger's timescale against true time (GPS-disciplined, imperfectly).

    reading(t) = t + offset + frequency * (t - tagger_epoch) + W(t - tagger_epoch), with W a
    random walk of ``random_walk_ps_per_sqrt_s`` ps per sqrt(s).
    """

    offset_ns: float = 0.0
    frequency_ppb: float = 0.0
    random_walk_ps_per_sqrt_s: float = 0.0
    pps_jitter_ps: float = 0.0


@dataclass(frozen=True, slots=True)
class BackgroundConfig:
    """Background counts at the detectors (cps summed over the analyzer's outputs)."""

    night_sky_cps: float = 2000.0
    #: added when the Moon is up, scaled by its illuminated fraction
    moon_cps: float = 3000.0
    #: daylight at the Sun's altitude >= 0 (ramps in from -12 deg); 0 disables daylight
    daylight_cps: float = 0.0


@dataclass(frozen=True, slots=True)
class StationConfig:
    """One ground station as the world sees it (site, telescope, analyzer, detectors, clock)."""

    name: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    aperture_m: float = 1.2
    obscuration_m: float = 0.0
    #: receiver field-of-view half-angle (deg) in the coupling exp(-2 err² / fov²)
    fov_half_angle_deg: float = 0.1
    zenith_loss_db: float = 1.2
    #: fixed optics loss (telescope, relay, filters), detector efficiency NOT included (dB)
    optics_loss_db: float = 14.6
    #: sigma of ln(scintillation factor), unit-mean lognormal, one draw per 10 ms slice
    scintillation_sigma_ln: float = 0.2
    min_elevation_deg: float = 10.0
    #: site weather for the refraction of the line of sight (hPa, °C); None: the standard
    #: atmosphere at ``altitude_m`` (:mod:`sim_hardware.world.refraction`); pressure 0: vacuum
    pressure_hpa: float | None = None
    temperature_c: float | None = None
    analyzer: str = "passive"
    optical_train: str = "none"
    #: HWP reading at which the plate's fast axis really is at 0 (a calibration offset, deg)
    hwp_zero_deg: float = 0.0
    channels: ChannelMap = field(default_factory=lambda: ChannelMap(1, 2, 3, 4))
    pps_channel: int | None = 8
    detectors: DetectorConfig = field(default_factory=DetectorConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)

    def weather(self) -> tuple[float, float]:
        """Pressure (hPa) and temperature (°C) used for refraction (defaults resolved)."""
        p = (
            standard_pressure_hpa(self.altitude_m)
            if self.pressure_hpa is None
            else self.pressure_hpa
        )
        t = (
            standard_temperature_c(self.altitude_m)
            if self.temperature_c is None
            else self.temperature_c
        )
        return p, t


@dataclass(frozen=True, slots=True)
class WorldConfig:
    """Everything the world needs: satellite, source, one or two stations, timescale epoch."""

    satellite: SatelliteConfig
    source: SourceConfig
    stations: tuple[StationConfig, ...]
    #: POSIX second from which the taggers count their int64 picoseconds
    tagger_epoch: float
    #: suggested start of the simulated run (POSIX s), e.g. a little before a common pass
    start_time: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.stations) <= 2:
            raise ConfigError(
                f"the pair source feeds one or two stations, got {len(self.stations)}",
                key="stations",
            )
        names = [s.name for s in self.stations]
        if len(set(names)) != len(names):
            raise ConfigError(f"station names must be unique, got {names}", key="stations")


# --------------------------------------------------------------------------- loading


def load_world_config(table: Table) -> WorldConfig:
    """Read the world's sections of a rig config (errors name file and key)."""
    world = table.table("world")
    tagger_epoch = _utc(world, "tagger_epoch_utc", required=True)
    start = _utc(world, "start_utc", required=False)
    world.finish()
    satellite = _satellite(table.table("satellite"))
    source = _source(table.table("source"))
    station_tables = table.tables("stations")
    if not 1 <= len(station_tables) <= 2:
        raise table.error("stations", "expected one or two [[stations]] tables")
    stations = tuple(_station(t) for t in station_tables)
    try:
        return WorldConfig(satellite, source, stations, float(tagger_epoch or 0.0), start)
    except ConfigError as exc:
        raise table.error("stations", exc.message) from None


def _utc(t: Table, name: str, *, required: bool) -> float | None:
    """An instant given as ISO 8601 UTC text or as POSIX seconds."""
    if name not in t:
        if required:
            raise t.error(name, "required key is missing (ISO UTC text or POSIX seconds)")
        return None
    value = t.raw(name)
    if isinstance(value, bool):
        raise t.error(name, f"expected ISO UTC text or POSIX seconds, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return dt.timestamp()
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            msg = f"expected ISO UTC text like 2021-04-29T17:00:00Z, got {value!r}"
            raise t.error(name, msg) from None
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    raise t.error(name, f"expected ISO UTC text or POSIX seconds, got {value!r}")


def _tle_checksum(line: str) -> int:
    return sum(int(c) if c.isdigit() else (1 if c == "-" else 0) for c in line[:68]) % 10


def _satellite(t: Table) -> SatelliteConfig:
    name = t.string("name", "SATELLITE")
    lines = t.raw("tle")
    if not (isinstance(lines, list) and len(lines) == 2 and all(isinstance(x, str) for x in lines)):
        raise t.error("tle", "expected the two TLE lines as an array of two strings")
    for i, line in enumerate(lines, start=1):
        line = line.rstrip()
        if len(line) != 69 or not line.startswith(f"{i} "):
            raise t.error("tle", f"line {i} must be 69 characters starting with '{i} '")
        if not line[68].isdigit() or _tle_checksum(line) != int(line[68]):
            raise t.error(
                "tle", f"line {i} checksum is {line[68]!r}, computed {_tle_checksum(line)}"
            )
    law = t.choice("attitude_law", ATTITUDE_LAWS, "target_pointing")
    jitter = t.number("pointing_jitter_urad", 0.7, min=0, max=1000)
    t.finish()
    return SatelliteConfig(name, lines[0].rstrip(), lines[1].rstrip(), law, jitter)


def _source(t: Table) -> SourceConfig:
    cfg = SourceConfig(
        pair_rate_hz=t.number("pair_rate_hz", 5.9e6, min=0, max=1e10),
        wavelength_nm=t.number("wavelength_nm", 810.0, min=200, max=3000),
        state=t.choice("state", STATES, "psi+"),
        visibility=t.number("visibility", 0.95, min=0, max=1),
        divergence_full_urad=t.number("divergence_full_urad", 10.0, min=0.01, max=1e5),
        polarization_axis_deg=t.number("polarization_axis_deg", 0.0, min=-360, max=360),
    )
    t.finish()
    return cfg


Quad = tuple[float, float, float, float]


def _per_channel(t: Table, name: str, default: float, lo: float, hi: float) -> Quad:
    """A number for all four detectors or an array of four (H, V, D, A)."""
    value = t.raw(name, default)
    values = value if isinstance(value, list) else [value] * 4
    what = f"a number in [{lo:g}, {hi:g}] or an array of four (H, V, D, A)"
    if len(values) != 4:
        raise t.error(name, f"expected {what}, got {value!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise t.error(name, f"expected {what}, got {value!r}")
    return (float(values[0]), float(values[1]), float(values[2]), float(values[3]))


def _channels(t: Table) -> tuple[ChannelMap, int | None]:
    ch = t.table("channels", required=False)
    try:
        channels = ChannelMap(
            ch.integer("h", 1, min=0, max=255),
            ch.integer("v", 2, min=0, max=255),
            ch.integer("d", 3, min=0, max=255),
            ch.integer("a", 4, min=0, max=255),
        )
    except ValueError as exc:
        raise t.error("channels", str(exc)) from None
    pps = ch.integer("pps", 8, min=-1, max=255)
    if pps in (channels.h, channels.v, channels.d, channels.a):
        raise ch.error("pps", f"PPS channel {pps} collides with an analyzer channel")
    ch.finish()
    return channels, (None if pps < 0 else pps)


def _detectors(t: Table) -> DetectorConfig:
    d = t.table("detectors", required=False)
    detectors = DetectorConfig(
        efficiency=_per_channel(d, "efficiency", 0.5, 0.0, 1.0),
        dark_cps=_per_channel(d, "dark_cps", 100.0, 0.0, 1e8),
        jitter_fwhm_ps=d.number("jitter_fwhm_ps", 350.0, min=0, max=1e6),
        dead_time_ns=d.number("dead_time_ns", 30.0, min=0, max=1e6),
        afterpulse_prob=d.number("afterpulse_prob", 0.0035, min=0, max=0.5),
        afterpulse_mean_ns=d.number("afterpulse_mean_ns", 50.0, min=0.001, max=1e5),
    )
    d.finish()
    return detectors


def _clock(t: Table) -> ClockConfig:
    c = t.table("clock", required=False)
    clock = ClockConfig(
        offset_ns=c.number("offset_ns", 0.0, min=-1e9, max=1e9),
        frequency_ppb=c.number("frequency_ppb", 0.0, min=-1e5, max=1e5),
        random_walk_ps_per_sqrt_s=c.number("random_walk_ps_per_sqrt_s", 0.0, min=0, max=1e6),
        pps_jitter_ps=c.number("pps_jitter_ps", 0.0, min=0, max=1e6),
    )
    c.finish()
    return clock


def _background(t: Table) -> BackgroundConfig:
    b = t.table("background", required=False)
    background = BackgroundConfig(
        night_sky_cps=b.number("night_sky_cps", 2000.0, min=0, max=1e9),
        moon_cps=b.number("moon_cps", 3000.0, min=0, max=1e9),
        daylight_cps=b.number("daylight_cps", 0.0, min=0, max=1e10),
    )
    b.finish()
    return background


def _station(t: Table) -> StationConfig:
    name = t.string("name")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise t.error("name", f"expected a short name of letters, digits, - or _, got {name!r}")
    aperture = t.number("aperture_m", 1.2, min=0.01, max=20)
    obscuration = t.number("obscuration_m", 0.0, min=0, max=20)
    if obscuration >= aperture:
        raise t.error("obscuration_m", f"must be smaller than aperture_m ({aperture:g} m)")
    channels, pps_channel = _channels(t)
    altitude = t.number("altitude_m", 0.0, min=-500, max=9000)
    station = StationConfig(
        name=name,
        latitude_deg=t.number("latitude_deg", min=-90, max=90),
        longitude_deg=t.number("longitude_deg", min=-180, max=360),
        altitude_m=altitude,
        aperture_m=aperture,
        obscuration_m=obscuration,
        fov_half_angle_deg=t.number("fov_half_angle_deg", 0.1, min=1e-5, max=10),
        zenith_loss_db=t.number("zenith_loss_db", 1.2, min=0, max=30),
        optics_loss_db=t.number("optics_loss_db", 14.6, min=0, max=60),
        scintillation_sigma_ln=t.number("scintillation_sigma_ln", 0.2, min=0, max=2),
        min_elevation_deg=t.number("min_elevation_deg", 10.0, min=-5, max=89),
        pressure_hpa=t.number("pressure_hpa", standard_pressure_hpa(altitude), min=0, max=1100),
        temperature_c=t.number("temperature_c", standard_temperature_c(altitude), min=-80, max=60),
        analyzer=t.choice("analyzer", ANALYZERS, "passive"),
        optical_train=t.choice("optical_train", OPTICAL_TRAINS, "none"),
        hwp_zero_deg=t.number("hwp_zero_deg", 0.0, min=-180, max=180),
        channels=channels,
        pps_channel=pps_channel,
        detectors=_detectors(t),
        clock=_clock(t),
        background=_background(t),
    )
    t.finish()
    return station


def jitter_sigma_ps(det: DetectorConfig) -> float:
    """Gaussian sigma of the timing jitter (ps) from its FWHM."""
    return det.jitter_fwhm_ps / (2.0 * math.sqrt(2.0 * math.log(2.0)))
