"""Value types shared by every layer: pointing, limits, trajectories, detection events.

Conventions (DESIGN.md): angles in degrees at every API boundary, azimuth from north through
east, elevation from the horizon. Control-plane times are POSIX seconds (UTC, float64) on the
station's :class:`~drivers.clock.Clock`; detection-event times are int64 picoseconds since the
run start and are never float64.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from drivers.errors import LimitViolation

# --------------------------------------------------------------------------- mounts


@dataclass(frozen=True, slots=True)
class AltAz:
    """A pointing direction: azimuth (deg, N through E) and elevation (deg above horizon).

    Azimuth is *not* wrapped: on a mount with cable wrap, -90 and 270 are different axis
    positions. Use :meth:`az_mod360` for the sky direction.
    """

    az_deg: float
    el_deg: float

    def az_mod360(self) -> float:
        """Azimuth folded into [0, 360)."""
        return self.az_deg % 360.0

    def separation_deg(self, other: AltAz) -> float:
        """Great-circle angle to ``other`` in degrees (haversine; stable at small angles)."""
        el1, el2 = math.radians(self.el_deg), math.radians(other.el_deg)
        daz = math.radians(other.az_deg - self.az_deg)
        h = math.sin((el2 - el1) / 2) ** 2 + math.cos(el1) * math.cos(el2) * math.sin(daz / 2) ** 2
        return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


class MountCapability(enum.Flag):
    """What a mount driver can do natively (INDI-style capability flags)."""

    NONE = 0
    PARK = enum.auto()
    STOP = enum.auto()
    PROGRAM_TRACK = enum.auto()  #: native time-tagged trajectory upload
    READ_LIMITS = enum.auto()  #: limits can be read from the device
    OVER_THE_TOP = enum.auto()  #: elevation may exceed 90 deg (flip through zenith)
    SET_SPEED = enum.auto()  #: slew speed can be set


@dataclass(frozen=True, slots=True)
class AxisLimits:
    """Range and dynamics of one axis: position (deg), speed (deg/s), acceleration (deg/s^2)."""

    min_deg: float
    max_deg: float
    max_speed_deg_s: float
    max_accel_deg_s2: float

    def __post_init__(self) -> None:
        if not self.min_deg < self.max_deg:
            raise ValueError(f"axis range is empty: min {self.min_deg} >= max {self.max_deg}")
        if self.max_speed_deg_s <= 0 or self.max_accel_deg_s2 <= 0:
            raise ValueError("axis speed and acceleration limits must be > 0")

    def contains(self, value_deg: float) -> bool:
        return self.min_deg <= value_deg <= self.max_deg

    def move_time_s(self, distance_deg: float) -> float:
        """Time for a rest-to-rest move of ``distance_deg`` with a trapezoidal profile (s)."""
        d = abs(distance_deg)
        v, a = self.max_speed_deg_s, self.max_accel_deg_s2
        d_ramp = v * v / a  # distance spent accelerating plus decelerating
        if d <= d_ramp:
            return 2.0 * math.sqrt(d / a)
        return 2.0 * v / a + (d - d_ramp) / v


@dataclass(frozen=True, slots=True)
class MountLimits:
    """Azimuth and elevation axis limits of a mount (firmware or configured soft limits)."""

    az: AxisLimits
    el: AxisLimits

    def check(self, target: AltAz, *, device: str | None = None) -> None:
        """Raise :class:`LimitViolation` naming the axis and the numbers if ``target`` is out."""
        axes = (("azimuth", target.az_deg, self.az), ("elevation", target.el_deg, self.el))
        for name, value, axis in axes:
            if not axis.contains(value):
                raise LimitViolation(
                    f"{name} {value:.4f} deg is outside the allowed range "
                    f"[{axis.min_deg:g}, {axis.max_deg:g}] deg",
                    device=device,
                    hint="choose a target inside the limits; nothing was commanded",
                )

    def move_time_s(self, start: AltAz, target: AltAz) -> float:
        """Duration of a slew from ``start`` to ``target``, both axes moving at once (s)."""
        return max(
            self.az.move_time_s(target.az_deg - start.az_deg),
            self.el.move_time_s(target.el_deg - start.el_deg),
        )


class MountState(enum.Enum):
    """Summary motion state reported by a mount."""

    IDLE = "idle"
    SLEWING = "slewing"
    TRACKING = "tracking"
    PARKED = "parked"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class MountStatus:
    """A snapshot of a mount: motion state, where it is and where it is going."""

    state: MountState
    position: AltAz
    target: AltAz | None = None
    fault: str | None = None


@dataclass(frozen=True)
class Trajectory:
    """Time-tagged az/el samples for a mount to follow.

    ``t_s`` are POSIX seconds (UTC) on the station clock, strictly increasing; ``az_deg`` is
    already unwrapped into the mount's cable-wrap sector (may exceed [0, 360)).
    """

    t_s: npt.NDArray[np.float64]
    az_deg: npt.NDArray[np.float64]
    el_deg: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.t_s)
        if not (len(self.az_deg) == n == len(self.el_deg)):
            raise ValueError("trajectory arrays t_s, az_deg, el_deg must have the same length")
        if n == 0:
            raise ValueError("trajectory is empty")
        if n > 1 and not bool(np.all(np.diff(self.t_s) > 0)):
            raise ValueError("trajectory times must be strictly increasing")

    def __len__(self) -> int:
        return len(self.t_s)

    def at(self, t: float) -> AltAz:
        """Linearly interpolated target at time ``t`` (clamped to the ends)."""
        return AltAz(
            float(np.interp(t, self.t_s, self.az_deg)), float(np.interp(t, self.t_s, self.el_deg))
        )


# --------------------------------------------------------------------------- polarization


class Basis(enum.Enum):
    """Measurement basis of a polarization analyzer arm."""

    HV = "HV"  #: rectilinear, 0 deg
    DA = "DA"  #: diagonal, 45 deg


class AnalyzerMode(enum.Enum):
    """Analyzer setting for a campaign.

    KEY: BB84/BBM92 bases 0 deg and 45 deg at both stations (bases match for key).
    BELL: one station's analyzer frame turned by 22.5 deg (its HWP by 11.25 deg) so that the
    settings become a in {0, 45}, b in {22.5, 67.5} and CHSH can be violated (DESIGN.md).
    """

    KEY = "key"
    BELL = "bell"


@dataclass(frozen=True, slots=True)
class ChannelMap:
    """Which time-tagger channel carries which analyzer output (H, V, D, A)."""

    h: int
    v: int
    d: int
    a: int

    def __post_init__(self) -> None:
        chans = (self.h, self.v, self.d, self.a)
        if len(set(chans)) != 4:
            raise ValueError(f"channel map needs four distinct channels, got {chans}")
        if any(not 0 <= c <= 255 for c in chans):
            raise ValueError(f"channels must be in 0..255, got {chans}")

    def basis_of(self, channel: int) -> Basis:
        if channel in (self.h, self.v):
            return Basis.HV
        if channel in (self.d, self.a):
            return Basis.DA
        raise KeyError(f"channel {channel} is not an analyzer output")

    def bit_of(self, channel: int) -> int:
        """Bit value of a detection: 0 for H and D, 1 for V and A."""
        if channel in (self.h, self.d):
            return 0
        if channel in (self.v, self.a):
            return 1
        raise KeyError(f"channel {channel} is not an analyzer output")


# --------------------------------------------------------------------------- time tagging

EVENT_TIME_DTYPE = np.dtype("<i8")  #: picoseconds on the time tagger's own timescale
EVENT_CHANNEL_DTYPE = np.dtype("u1")


@dataclass(frozen=True)
class EventBlock:
    """A block of detection events in structure-of-arrays form.

    ``t_ps`` are int64 picoseconds on the tagger's timescale (never float64), non-decreasing
    within a block; ``channel`` the uint8 input channel of each event; ``seq`` the block
    sequence number, consecutive within a stream so that a gap is detectable.
    """

    seq: int
    t_ps: npt.NDArray[np.int64]
    channel: npt.NDArray[np.uint8]
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.t_ps.dtype != np.int64:
            raise TypeError(f"EventBlock.t_ps must be int64 picoseconds, got {self.t_ps.dtype}")
        if self.channel.dtype != np.uint8:
            raise TypeError(f"EventBlock.channel must be uint8, got {self.channel.dtype}")
        if self.t_ps.shape != self.channel.shape or self.t_ps.ndim != 1:
            raise ValueError("EventBlock.t_ps and .channel must be 1-D arrays of equal length")

    def __len__(self) -> int:
        return int(self.t_ps.shape[0])

    @classmethod
    def empty(cls, seq: int) -> EventBlock:
        return cls(seq, np.empty(0, np.int64), np.empty(0, np.uint8))


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """Input settings of one time-tagger channel."""

    enabled: bool = True
    threshold_v: float = -0.4  #: discriminator level (V); NIM pulses are negative
    delay_ps: int = 0  #: added to every timestamp of this channel (cable/detector skew)
