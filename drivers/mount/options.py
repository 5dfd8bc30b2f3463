"""Tuning of a mount driver and its parsing from device-URL parameters.

Neither rotctld nor LX200 reports axis speeds, and LX200 reports no limits at all, so these
come from the URL (``rotctld://host:4533?speed_deg_s=3&el_min=10``) or the constructor.
Unknown parameters are errors: a misspelt ``el_mn`` must not silently fall back to a default.
The parameters are declared in :mod:`drivers.registry` (``mount_params``) and read with
:func:`drivers.registry.read_params`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from drivers.datatypes import AltAz, AxisLimits, MountLimits
from drivers.errors import DeviceURLError
from drivers.registry import DeviceURL, mount_params, read_params
from drivers.specs import ParamSpec, read_query

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


@dataclass(frozen=True, slots=True)
class MountURLParams:
    """What a mount URL's query configured (``park`` None: not given)."""

    options: MountOptions
    limits: MountLimits
    park: AltAz | None


def parse_mount_params(
    url: DeviceURL,
    *,
    default_limits: MountLimits | None = None,
    extra_allowed: Iterable[str] = (),
) -> MountURLParams:
    """Read the mount parameters of ``url``; raises DeviceURLError naming the key, the value
    and what is expected.

    Without keywords the parameters are those declared in the URL driver's spec (with the
    driver's default limits, :func:`drivers.registry.mount_params`). With ``default_limits``
    or ``extra_allowed`` (a driver not yet declared with typed parameters) they are the
    common mount parameters with those defaults, plus ``extra_allowed`` keys accepted as
    text and left to the driver.
    """
    if default_limits is None and not extra_allowed:
        p = read_params(url)
    else:
        lim = default_limits if default_limits is not None else url_default_limits(url)
        declared = mount_params(
            az=(lim.az.min_deg, lim.az.max_deg),
            el=(lim.el.min_deg, lim.el.max_deg),
            speed_deg_s=lim.az.max_speed_deg_s,
            accel_deg_s2=lim.az.max_accel_deg_s2,
        )
        names = {d.name for d in declared}
        extra = tuple(ParamSpec(k, "str") for k in extra_allowed if k not in names)
        p = read_query(url.raw, url.params, declared + extra)
    try:
        options = MountOptions(
            follow_rate_hz=p.number("follow_rate_hz"),
            tolerance_deg=p.number("tolerance_deg"),
            io_timeout_s=p.number("timeout_s"),
        )
        speed, accel = p.number("speed_deg_s"), p.number("accel_deg_s2")
        limits = MountLimits(
            az=AxisLimits(p.number("az_min"), p.number("az_max"), speed, accel),
            el=AxisLimits(p.number("el_min"), p.number("el_max"), speed, accel),
        )
    except ValueError as exc:  # a cross-parameter rule, e.g. an empty axis range
        raise DeviceURLError(f"{url.raw!r}: {exc}", key="url") from None
    park_az, park_el = p.optional_number("park_az"), p.optional_number("park_el")
    if (park_az is None) != (park_el is None):
        raise DeviceURLError(f"{url.raw!r}: give both park_az and park_el, or neither", key="url")
    park = AltAz(park_az, park_el) if park_az is not None and park_el is not None else None
    return MountURLParams(options, limits, park)


def url_default_limits(url: DeviceURL) -> MountLimits:
    """The default soft limits and dynamics the URL driver's spec declares."""
    spec = url.spec

    def default(name: str) -> float:
        value = spec.param(name).default
        if isinstance(value, bool) or not isinstance(value, float | int):
            raise TypeError(f"{spec.scheme}: {name} has no numeric default")
        return float(value)

    return default_limits(
        default("az_min"),
        default("az_max"),
        default("el_min"),
        default("el_max"),
        speed_deg_s=default("speed_deg_s"),
        accel_deg_s2=default("accel_deg_s2"),
    )


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
