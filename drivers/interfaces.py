"""Typed device interfaces: what the station controller needs from each kind of hardware.

Each interface is a :class:`typing.Protocol`; real drivers and any other backend satisfy it
structurally. Every backend must pass the interface's conformance suite in
:mod:`drivers.testing`. Rules every implementation follows (DESIGN.md):

- angles in degrees, azimuth from north through east, elevation from the horizon;
- every awaited I/O is bounded by a timeout; a move's bound is computed from distance and
  velocity (``timeout=None`` means "compute it"), never a fixed constant;
- cancelling a move stops the hardware (in ``finally``);
- failures raise the :mod:`drivers.errors` hierarchy, never a bare exception or a hang.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol, runtime_checkable

from drivers.datatypes import (
    AltAz,
    AnalyzerMode,
    ChannelConfig,
    ChannelMap,
    EventBlock,
    MountCapability,
    MountLimits,
    MountStatus,
    Trajectory,
)


@runtime_checkable
class Device(Protocol):
    """Anything with a connection lifecycle."""

    @property
    def url(self) -> str:
        """The device URL this backend was opened with (for messages and provenance)."""
        ...

    async def connect(self) -> None:
        """Open the transport and verify the device answers (bounded)."""
        ...

    async def close(self) -> None:
        """Release the transport; safe to call twice or when never connected."""
        ...


@runtime_checkable
class Mount(Device, Protocol):
    """An az/el telescope mount."""

    @property
    def capabilities(self) -> MountCapability: ...

    @property
    def limits(self) -> MountLimits:
        """Axis ranges and dynamics (read from the device where the protocol allows)."""
        ...

    async def position(self) -> AltAz:
        """Current (encoder) pointing."""
        ...

    async def slew_to(self, target: AltAz, *, timeout: float | None = None) -> None:
        """Move to ``target`` and return once there.

        Raises :class:`~drivers.errors.LimitViolation` before moving if ``target`` is out of
        limits. ``timeout`` (clock seconds) defaults to one computed from the move's length.
        Cancellation stops the axes.
        """
        ...

    async def follow(self, trajectory: Trajectory) -> None:
        """Track a time-tagged trajectory until its last sample, then return.

        Native program track where the device has it, otherwise streamed position
        commands at the driver's configured rate. Cancellation stops the axes.
        """
        ...

    async def stop(self) -> None:
        """Stop both axes now."""
        ...

    async def park(self) -> None:
        """Move to the park (stow) position and return once parked."""
        ...

    async def status(self) -> MountStatus: ...


@runtime_checkable
class Rotator(Device, Protocol):
    """A motorized rotation stage holding a waveplate."""

    async def angle(self) -> float:
        """Current angle in degrees, in [0, 360)."""
        ...

    async def move_to(self, angle_deg: float, *, timeout: float | None = None) -> None:
        """Move to ``angle_deg`` (any real; taken modulo 360) and return once there."""
        ...

    async def home(self) -> None:
        """Find the home reference and return once homed (angle 0)."""
        ...

    async def stop(self) -> None: ...


@runtime_checkable
class PolarizationAnalyzer(Protocol):
    """Waveplate compensation plus the detector channel map of one station's analyzer."""

    @property
    def channel_map(self) -> ChannelMap: ...

    @property
    def mode(self) -> AnalyzerMode: ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def set_mode(self, mode: AnalyzerMode) -> None:
        """Select key (BB84 bases) or Bell (frame turned by 22.5 deg) settings."""
        ...

    async def compensate(self, frame_rotation_deg: float) -> float:
        """Turn the HWP to undo a polarization frame rotation theta (deg).

        The plate goes to theta/2 + calibration offset (+ 11.25 deg in Bell mode).
        Returns the commanded plate angle in degrees.
        """
        ...

    async def hwp_angle(self) -> float:
        """Measured angle of the compensation half-wave plate (deg)."""
        ...


@runtime_checkable
class TimeTagger(Device, Protocol):
    """A multi-channel time tagger streaming detection events."""

    async def configure(self, channels: Mapping[int, ChannelConfig]) -> None: ...

    async def start(self) -> None:
        """Start acquisition; the run's t=0 is now."""
        ...

    async def stop(self) -> None: ...

    def stream(self) -> AsyncIterator[EventBlock]:
        """Event blocks in order, with consecutive ``seq``; ends after :meth:`stop`."""
        ...

    async def count_rates(self) -> dict[int, float]:
        """Counts per second per enabled channel."""
        ...
