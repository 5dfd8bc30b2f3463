"""Tuning of a mount driver and its parsing from device-URL parameters.

Neither rotctld nor LX200 reports axis speeds, and LX200 reports no limits at all, so these
come from the URL (``rotctld://host:4533?speed_deg_s=3&el_min=10``) or the constructor.
Unknown parameters are errors: a misspelt ``el_mn`` must not silently fall back to a default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from drivers.datatypes import AltAz, AxisLimits, MountLimits
from drivers.errors import DeviceURLError
from drivers.registry import DeviceURL

DEFAULT_SPEED_DEG_S = 2.0  #: assumed axis speed when none is configured (slow = safe bounds)
DEFAULT_ACCEL_DEG_S2 = 2.0  #: assumed axis acceleration when none is configured


@dataclass(frozen=True, slots=True)
class MountOptions:
    """How a driver paces and bounds its work.

    Attributes:
        follow_rate_hz: set-position commands per clock second while following a trajectory.
        tolerance_deg: a move is complete when both axes are this close to the target.
        io_timeout_s: bound on one request/reply exchange (wall seconds).
        poll_interval_s: clock seconds between position polls while waiting for a move.
        move_margin: factor applied to the computed travel time of a move.
        move_overhead_s: clock seconds added to every move bound (latency, settling).
    """

    follow_rate_hz: float = 10.0
    tolerance_deg: float = 0.02
    io_timeout_s: float = 2.0
    poll_interval_s: float = 0.1
    move_margin: float = 1.5
    move_overhead_s: float = 3.0

    def __post_init__(self) -> None:
        positive = {
            "follow_rate_hz": self.follow_rate_hz,
            "tolerance_deg": self.tolerance_deg,
            "io_timeout_s": self.io_timeout_s,
            "poll_interval_s": self.poll_interval_s,
        }
        for name, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if not self.move_margin >= 1.0 or not self.move_overhead_s >= 0.0:
            raise ValueError("move_margin must be >= 1 and move_overhead_s >= 0")


#: URL parameters every mount driver understands
COMMON_PARAMS = frozenset(
    {
        "follow_rate_hz",
        "tolerance_deg",
        "timeout_s",
        "az_min",
        "az_max",
        "el_min",
        "el_max",
        "speed_deg_s",
        "accel_deg_s2",
        "park_az",
        "park_el",
    }
)


@dataclass(frozen=True, slots=True)
class MountURLParams:
    """What a mount URL's query configured (``park`` None: not given)."""

    options: MountOptions
    limits: MountLimits
    park: AltAz | None


def _number(url: DeviceURL, key: str, default: float) -> float:
    text = url.params.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise DeviceURLError(
            f"{url.raw!r}: parameter {key}={text!r} is not a number", key="url"
        ) from None
    if not math.isfinite(value):
        raise DeviceURLError(f"{url.raw!r}: parameter {key}={text!r} must be finite", key="url")
    return value


def parse_mount_params(
    url: DeviceURL,
    *,
    default_limits: MountLimits,
    extra_allowed: Iterable[str] = (),
) -> MountURLParams:
    """Read the common mount parameters from ``url``; raises DeviceURLError naming the fault."""
    allowed = COMMON_PARAMS | set(extra_allowed)
    unknown = sorted(set(url.params) - allowed)
    if unknown:
        raise DeviceURLError(
            f"{url.raw!r}: unknown parameter(s) {unknown}; allowed: {sorted(allowed)}", key="url"
        )
    defaults = MountOptions()
    try:
        options = MountOptions(
            follow_rate_hz=_number(url, "follow_rate_hz", defaults.follow_rate_hz),
            tolerance_deg=_number(url, "tolerance_deg", defaults.tolerance_deg),
            io_timeout_s=_number(url, "timeout_s", defaults.io_timeout_s),
        )
        speed = _number(url, "speed_deg_s", default_limits.az.max_speed_deg_s)
        accel = _number(url, "accel_deg_s2", default_limits.az.max_accel_deg_s2)
        limits = MountLimits(
            az=AxisLimits(
                _number(url, "az_min", default_limits.az.min_deg),
                _number(url, "az_max", default_limits.az.max_deg),
                speed,
                accel,
            ),
            el=AxisLimits(
                _number(url, "el_min", default_limits.el.min_deg),
                _number(url, "el_max", default_limits.el.max_deg),
                speed,
                accel,
            ),
        )
    except ValueError as exc:
        raise DeviceURLError(f"{url.raw!r}: {exc}", key="url") from None
    park: AltAz | None = None
    if ("park_az" in url.params) != ("park_el" in url.params):
        raise DeviceURLError(f"{url.raw!r}: give both park_az and park_el, or neither", key="url")
    if "park_az" in url.params:
        park = AltAz(_number(url, "park_az", 0.0), _number(url, "park_el", 0.0))
    return MountURLParams(options, limits, park)


def default_limits(
    az_min: float,
    az_max: float,
    el_min: float,
    el_max: float,
    *,
    speed_deg_s: float = DEFAULT_SPEED_DEG_S,
    accel_deg_s2: float = DEFAULT_ACCEL_DEG_S2,
) -> MountLimits:
    """Limits with the same (assumed) dynamics on both axes."""
    return MountLimits(
        az=AxisLimits(az_min, az_max, speed_deg_s, accel_deg_s2),
        el=AxisLimits(el_min, el_max, speed_deg_s, accel_deg_s2),
    )


def transport_query(params: Mapping[str, str], keys: Iterable[str]) -> str:
    """``?k=v&...`` of the transport-level ``keys`` present in ``params`` (or empty)."""
    pairs = [f"{k}={params[k]}" for k in keys if k in params]
    return "?" + "&".join(pairs) if pairs else ""
