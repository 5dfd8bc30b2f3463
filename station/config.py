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

from dataclasses import dataclass, field
from pathlib import Path

from drivers.config import Table, load_toml
from drivers.datatypes import AxisLimits, MountLimits
from station.daemon.settings import SECTIONS as DAEMON_SECTIONS
from station.daemon.settings import DaemonSettings, parse_daemon_settings
from station.tracking.site import HorizonMask, Site

ATTITUDE_LAWS = ("target_pointing", "nadir")
OPTICAL_TRAINS = ("none", "nasmyth", "coude")
SOURCE_STATES = ("psi+", "phi+")
KEYHOLE_STRATEGIES = ("flip", "skip")
SERVOS = ("goto", "program")


@dataclass(frozen=True)
class MountConfig:
    """Axis ranges (deg; azimuth is the cable-wrap sector), dynamics and keyhole policy."""

    limits: MountLimits
    over_the_top: bool
    keyhole_strategy: str
    park_az_deg: float
    park_el_deg: float


@dataclass(frozen=True)
class SafetyConfig:
    """Exclusion radii (deg) around the Sun and Moon; slew paths add ``sun_slew_margin_deg``."""

    sun_radius_deg: float = 30.0
    sun_slew_margin_deg: float = 5.0
    moon_radius_deg: float = 10.0


@dataclass(frozen=True)
class PolarizationConfig:
    """Satellite attitude law, telescope optical train and the HWP calibration offset (deg)."""

    attitude_law: str = "target_pointing"
    optical_train: str = "none"
    hwp_offset_deg: float = 0.0
    #: the satellite source's Bell state ("psi+" for Micius, physics.md): sets which outcomes
    #: a basis should correlate; recorded in each bundle for the analysis
    source_state: str = "psi+"


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
    norad_id: int = 41731
    max_age_days: float = 14.0


@dataclass(frozen=True)
class TrackingConfig:
    """Trajectory sample and command rate (Hz), the beam's pointing tolerance (deg), and how
    the mount's servo takes targets: ``"goto"`` (each command is a move to rest, as rotctld
    ``P``: the station commands the braking distance plus ``lead_s`` ahead, see
    station/tracking/feedforward.py) or ``"program"`` (time-tagged targets, no lead)."""

    rate_hz: float = 10.0
    tolerance_deg: float = 0.05
    servo: str = "goto"
    lead_s: float | None = None  #: None: 3/4 of a command period

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
    tracking = TrackingConfig(
        rate_hz=tracking_t.number("rate_hz", 10.0, min=0.1, max=100.0),
        tolerance_deg=tracking_t.number("tolerance_deg", 0.05, min=1e-4, max=10.0),
        servo=tracking_t.choice("servo", SERVOS, "goto"),
        lead_s=tracking_t.number("lead_s", min=0.0, max=5.0) if "lead_s" in tracking_t else None,
    )
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
        keyhole_strategy=t.choice("keyhole_strategy", KEYHOLE_STRATEGIES, "skip"),
        park_az_deg=t.number("park_az_deg", 0.0, min=az_min, max=az_max),
        park_el_deg=t.number("park_el_deg", 90.0, min=el_min, max=el_max),
    )
    if cfg.keyhole_strategy == "flip" and not over:
        raise t.error("keyhole_strategy", "'flip' needs over_the_top = true; use 'skip'")
    t.finish()
    return cfg


def _parse_safety(t: Table) -> SafetyConfig:
    cfg = SafetyConfig(
        sun_radius_deg=t.number("sun_radius_deg", 30.0, min=0.0, max=90.0),
        sun_slew_margin_deg=t.number("sun_slew_margin_deg", 5.0, min=0.0, max=45.0),
        moon_radius_deg=t.number("moon_radius_deg", 10.0, min=0.0, max=90.0),
    )
    t.finish()
    return cfg


def _parse_polarization(t: Table) -> PolarizationConfig:
    cfg = PolarizationConfig(
        attitude_law=t.choice("attitude_law", ATTITUDE_LAWS, "target_pointing"),
        optical_train=t.choice("optical_train", OPTICAL_TRAINS, "none"),
        hwp_offset_deg=t.number("hwp_offset_deg", 0.0, min=-180.0, max=180.0),
        source_state=t.choice("source_state", SOURCE_STATES, "psi+"),
    )
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
    cfg = TleConfig(
        path=path,
        norad_id=t.integer("norad_id", 41731, min=1, max=999999999),
        max_age_days=t.number("max_age_days", 14.0, min=0.0, max=3650.0),
    )
    t.finish()
    return cfg
