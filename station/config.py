"""Station configuration: one typed, validated dataclass per TOML section.

``load_station_config(path)`` reads ``configs/stations/<site>.toml``. Every error names the
file, the dotted key and the allowed values (via :class:`drivers.config.Table`); unknown
keys are errors. Sections (see configs/stations/delingha.toml for a commented example)::

    [station]       name
    [site]          latitude_deg, longitude_deg, altitude_m, pressure_hpa, temperature_c,
                    min_elevation_deg, horizon_mask = [[az, el], ...]
    [mount]         az_min_deg, az_max_deg, el_min_deg, el_max_deg, max_speed_deg_s,
                    max_accel_deg_s2 (numbers, or [az, el] pairs), over_the_top,
                    keyhole_strategy ("flip" | "skip"), park_az_deg, park_el_deg
    [safety]        sun_radius_deg, sun_slew_margin_deg, moon_radius_deg
    [polarization]  attitude_law, optical_train, hwp_offset_deg, source_state
    [devices]       mount, hwp, timetagger (device URLs, optional)
    [tle]           path (file or catalog directory), norad_id, max_age_days
    [tracking]      rate_hz, tolerance_deg, servo, lead_s
    [mqtt] [recording] [schedule] [analyzer] [timetagger] [watchdog]
                    the operator daemon's sections (station/daemon/settings.py)

Later features add their own section: write a ``_parse_<section>`` and a dataclass, add the
field to :class:`StationConfig` and the name to ``_SECTIONS``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from drivers.config import Table, load_toml
from drivers.config_schema import read_section, reference_table, setting
from drivers.datatypes import AxisLimits, MountLimits
from station.daemon.settings import DECLARED_SECTIONS as DAEMON_DECLARED
from station.daemon.settings import SECTIONS as DAEMON_SECTIONS
from station.daemon.settings import DaemonSettings, parse_daemon_settings
from station.tracking.site import HorizonMask, Site


class AttitudeLaw(enum.StrEnum):
    """How the satellite's polarization frame turns (station/tracking/polframe.py)."""

    TARGET_POINTING = "target_pointing"
    NADIR = "nadir"


class OpticalTrain(enum.StrEnum):
    """The telescope's mirror train between the sky and the analyzer."""

    NONE = "none"
    NASMYTH = "nasmyth"
    COUDE = "coude"


class SourceState(enum.StrEnum):
    """The entangled source's Bell state (physics.md)."""

    PSI_PLUS = "psi+"
    PHI_PLUS = "phi+"


class KeyholeStrategy(enum.StrEnum):
    """What to do with a pass through the zenith keyhole (station/tracking/mountplan.py)."""

    FLIP = "flip"
    SKIP = "skip"


class Servo(enum.StrEnum):
    """How the mount takes targets (:class:`TrackingConfig`)."""

    GOTO = "goto"
    PROGRAM = "program"


ATTITUDE_LAWS = tuple(m.value for m in AttitudeLaw)
OPTICAL_TRAINS = tuple(m.value for m in OpticalTrain)
SOURCE_STATES = tuple(m.value for m in SourceState)
KEYHOLE_STRATEGIES = tuple(m.value for m in KeyholeStrategy)
SERVOS = tuple(m.value for m in Servo)


@dataclass(frozen=True)
class MountConfig:
    """Axis ranges (deg; azimuth is the cable-wrap sector), dynamics and keyhole policy."""

    limits: MountLimits
    over_the_top: bool
    keyhole_strategy: KeyholeStrategy
    park_az_deg: float
    park_el_deg: float


@dataclass(frozen=True)
class SafetyConfig:
    """Exclusion radii (deg) around the Sun and Moon; slew paths add ``sun_slew_margin_deg``."""

    sun_radius_deg: float = setting(
        30.0, min=0.0, max=90.0, unit="deg", doc="no pointing closer to the Sun"
    )
    sun_slew_margin_deg: float = setting(
        5.0, min=0.0, max=45.0, unit="deg", doc="added to the Sun radius for slew paths"
    )
    moon_radius_deg: float = setting(
        10.0, min=0.0, max=90.0, unit="deg", doc="no pointing closer to the Moon"
    )


@dataclass(frozen=True)
class PolarizationConfig:
    """Satellite attitude law, telescope optical train and the HWP calibration offset (deg)."""

    attitude_law: AttitudeLaw = setting(
        AttitudeLaw.TARGET_POINTING, doc="the satellite's attitude law (frame rotation)"
    )
    optical_train: OpticalTrain = setting(
        OpticalTrain.NONE, doc="mirrors between sky and analyzer (their rotation is compensated)"
    )
    hwp_offset_deg: float = setting(
        0.0, min=-180.0, max=180.0, unit="deg", doc="the waveplate's calibration offset"
    )
    #: the satellite source's Bell state ("psi+" for Micius, physics.md): sets which outcomes
    #: a basis should correlate; recorded in each bundle for the analysis
    source_state: SourceState = setting(
        SourceState.PSI_PLUS, doc="the source's Bell state (which outcomes correlate)"
    )


@dataclass(frozen=True)
class DevicesConfig:
    """Device URLs (see drivers.registry); None when not configured."""

    mount: str | None = None
    hwp: str | None = None
    timetagger: str | None = None


@dataclass(frozen=True)
class TleConfig:
    """Where the orbit elements come from and how old they may be."""

    path: Path | None = None
    norad_id: int = setting(41731, min=1, max=999999999, doc="the satellite's catalog number")
    max_age_days: float = setting(
        14.0, min=0.0, max=3650.0, unit="days", doc="older elements are refused"
    )


@dataclass(frozen=True)
class TrackingConfig:
    """Trajectory sample and command rate (Hz), the beam's pointing tolerance (deg), and how
    the mount's servo takes targets: ``"goto"`` (each command is a move to rest, as rotctld
    ``P``: the station commands the braking distance plus ``lead_s`` ahead, see
    station/tracking/feedforward.py) or ``"program"`` (time-tagged targets, no lead)."""

    rate_hz: float = setting(
        10.0, min=0.1, max=100.0, unit="Hz", doc="trajectory samples and mount commands"
    )
    tolerance_deg: float = setting(
        0.05, min=1e-4, max=10.0, unit="deg", doc="the beam's pointing tolerance"
    )
    servo: Servo = setting(Servo.GOTO, doc="moves to rest (goto) or time-tagged targets")
    lead_s: float | None = setting(
        None, min=0.0, max=5.0, unit="s", doc="command lead (goto; default 3/4 of a period)"
    )  #: None: 3/4 of a command period

    @property
    def effective_lead_s(self) -> float:
        if self.servo == "program":
            return 0.0
        return 0.75 / self.rate_hz if self.lead_s is None else self.lead_s


@dataclass(frozen=True)
class StationConfig:
    """A whole station config file, validated."""

    name: str
    site: Site
    mount: MountConfig
    safety: SafetyConfig
    polarization: PolarizationConfig
    devices: DevicesConfig
    tle: TleConfig
    tracking: TrackingConfig
    source: str = field(default="<memory>")
    daemon: DaemonSettings = field(default_factory=DaemonSettings)


_SECTIONS = (
    "station",
    "site",
    "mount",
    "safety",
    "polarization",
    "devices",
    "tle",
    "tracking",
    *DAEMON_SECTIONS,
)


def load_station_config(path: str | Path) -> StationConfig:
    """Read and validate a station TOML file; raises ConfigError naming file and key."""
    root = load_toml(path)
    return parse_station_config(root, base_dir=Path(path).resolve().parent)


def parse_station_config(root: Table, *, base_dir: Path | None = None) -> StationConfig:
    """Validate an already-loaded table (``base_dir`` resolves relative [tle] paths)."""
    station = root.table("station")
    name = station.string("name")
    if not name.strip():
        raise station.error("name", "expected a non-empty station name")
    station.finish()
    site = _parse_site(root.table("site"), name)
    mount = _parse_mount(root.table("mount"))
    safety = _parse_safety(root.table("safety", required=False))
    pol = _parse_polarization(root.table("polarization", required=False))
    devices = _parse_devices(root.table("devices", required=False))
    tle = _parse_tle(root.table("tle", required=False), base_dir)
    tracking_t = root.table("tracking", required=False)
    tracking = read_section(tracking_t, TrackingConfig)
    tracking_t.finish()
    daemon = parse_daemon_settings(root, base_dir=base_dir)
    root.finish()
    return StationConfig(
        name, site, mount, safety, pol, devices, tle, tracking, root.source, daemon
    )


def _parse_site(t: Table, name: str) -> Site:
    mask_raw = t.raw("horizon_mask", [])
    points: list[tuple[float, float]] = []
    if not isinstance(mask_raw, list):
        raise t.error("horizon_mask", "expected an array of [azimuth_deg, elevation_deg] pairs")
    for i, pt in enumerate(mask_raw):
        ok = (
            isinstance(pt, list)
            and len(pt) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pt)
        )
        if not ok or not (0.0 <= pt[0] <= 360.0 and 0.0 <= pt[1] <= 90.0):
            raise t.error(
                f"horizon_mask[{i}]",
                f"expected [azimuth in [0, 360], elevation in [0, 90]], got {pt!r}",
            )
        points.append((float(pt[0]), float(pt[1])))
    site = Site(
        name=name,
        latitude_deg=t.number("latitude_deg", min=-90.0, max=90.0),
        longitude_deg=t.number("longitude_deg", min=-180.0, max=360.0),
        altitude_m=t.number("altitude_m", min=-500.0, max=9000.0),
        pressure_hpa=t.number("pressure_hpa", 1013.25, min=0.0, max=1100.0),
        temperature_c=t.number("temperature_c", 10.0, min=-60.0, max=60.0),
        min_elevation_deg=t.number("min_elevation_deg", 10.0, min=0.0, max=89.0),
        horizon_mask=HorizonMask(tuple(points)),
    )
    t.finish()
    return site


def _pair(t: Table, name: str, lo: float, hi: float) -> tuple[float, float]:
    """A number shared by both axes, or an [az, el] pair."""
    raw = t.raw(name)
    if isinstance(raw, list):
        vals = t.numbers(name)
        if len(vals) != 2 or not all(lo <= v <= hi for v in vals):
            raise t.error(name, f"expected a number or an [az, el] pair in [{lo:g}, {hi:g}]")
        return vals[0], vals[1]
    v = t.number(name, min=lo, max=hi)
    return v, v


def _parse_mount(t: Table) -> MountConfig:
    az_min = t.number("az_min_deg", min=-720.0, max=720.0)
    az_max = t.number("az_max_deg", min=-720.0, max=720.0)
    if az_max - az_min < 360.0:
        raise t.error("az_max_deg", f"azimuth range [{az_min:g}, {az_max:g}] must span >= 360 deg")
    el_min = t.number("el_min_deg", 0.0, min=-10.0, max=90.0)
    el_max = t.number("el_max_deg", 90.0, min=0.0, max=180.0)
    if el_max <= el_min:
        raise t.error("el_max_deg", f"expected el_max_deg > el_min_deg ({el_min:g})")
    speed = _pair(t, "max_speed_deg_s", 1e-3, 100.0)
    accel = _pair(t, "max_accel_deg_s2", 1e-3, 100.0)
    over = t.boolean("over_the_top", False)
    if over and el_max <= 90.0:
        raise t.error("el_max_deg", "over_the_top = true needs el_max_deg > 90")
    limits = MountLimits(
        AxisLimits(az_min, az_max, speed[0], accel[0]),
        AxisLimits(el_min, el_max, speed[1], accel[1]),
    )
    cfg = MountConfig(
        limits=limits,
        over_the_top=over,
        keyhole_strategy=KeyholeStrategy(
            t.choice("keyhole_strategy", KEYHOLE_STRATEGIES, KeyholeStrategy.SKIP.value)
        ),
        park_az_deg=t.number("park_az_deg", 0.0, min=az_min, max=az_max),
        park_el_deg=t.number("park_el_deg", 90.0, min=el_min, max=el_max),
    )
    if cfg.keyhole_strategy == "flip" and not over:
        raise t.error("keyhole_strategy", "'flip' needs over_the_top = true; use 'skip'")
    t.finish()
    return cfg


def _parse_safety(t: Table) -> SafetyConfig:
    cfg = read_section(t, SafetyConfig)
    t.finish()
    return cfg


def _parse_polarization(t: Table) -> PolarizationConfig:
    cfg = read_section(t, PolarizationConfig)
    t.finish()
    return cfg


def _parse_devices(t: Table) -> DevicesConfig:
    def url(name: str) -> str | None:
        return t.string(name) if name in t else None

    cfg = DevicesConfig(mount=url("mount"), hwp=url("hwp"), timetagger=url("timetagger"))
    t.finish()
    return cfg


def _parse_tle(t: Table, base_dir: Path | None) -> TleConfig:
    path: Path | None = None
    if "path" in t:
        path = Path(t.string("path"))
        if not path.is_absolute() and base_dir is not None:  # relative to the config file
            path = (base_dir / path).resolve()
    cfg = read_section(t, TleConfig, path=path)
    t.finish()
    return cfg


#: the station sections whose options are declared (the generated reference, docs/operations.md)
DECLARED_SECTIONS: list[tuple[str, type]] = [
    ("safety", SafetyConfig),
    ("polarization", PolarizationConfig),
    ("tle", TleConfig),
    ("tracking", TrackingConfig),
]


def config_reference() -> str:
    """The markdown reference table of every declared option (station and daemon sections)."""
    return reference_table([*DECLARED_SECTIONS, *DAEMON_DECLARED])
