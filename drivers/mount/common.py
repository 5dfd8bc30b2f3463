"""Motion logic shared by mounts that only accept "go to az/el" commands.

rotctld and LX200 have no native program track, so :meth:`StreamedMount.follow` streams the
interpolated target at ``follow_rate_hz`` on the station clock. Safety rules (DESIGN.md and the
ophyd-async movable hooks, anchors.md §1):

- *check_move*: the limits are checked before any byte goes out (LimitViolation, nothing sent);
  a trajectory is checked sample by sample before the first command.
- *calculate_timeout*: a move's bound is the trapezoidal travel time from
  :meth:`MountLimits.move_time_s` times a margin plus an overhead, in clock seconds; asyncio
  waits convert it with :meth:`Clock.to_wall`.
- *stop in finally*: if a slew, follow or park ends by error or cancellation, the axes are
  stopped before the exception propagates.

Slews and parks run through the shared move skeleton (:func:`drivers.motion.guarded_move`);
every request/reply exchange runs through one :class:`~drivers.transport.link.DeviceLink`
(one lock, shielded from cancellation, input flushed after a failed exchange), so a
cancelled caller never leaves half a reply in the input buffer for the next command.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging

import numpy as np

from drivers.clock import Clock
from drivers.datatypes import (
    AltAz,
    AxisLimits,
    MountCapability,
    MountLimits,
    MountState,
    MountStatus,
    Trajectory,
)
from drivers.errors import (
    ConfigError,
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    LimitViolation,
    ProtocolError,
)
from drivers.motion import Motion, guarded_move, stop_quietly
from drivers.mount.options import MountOptions
from drivers.transport.link import DeviceLink, TransportFactory, TransportSource

__all__ = ["StreamedMount", "TransportFactory", "TransportSource"]

log = logging.getLogger(__name__)

#: errors after which the rest of a reply is meaningless: the input is flushed (resync)
RESYNC_ON = (ProtocolError, DeviceTimeout, DeviceFault, LimitViolation)


def axis_error_deg(a: float, b: float, *, wraps: bool) -> float:
    """|a - b| in degrees, folded into [0, 180] when the axis reports modulo 360."""
    d = a - b
    if wraps:
        d = (d + 180.0) % 360.0 - 180.0
    return abs(d)


def intersect_limits(soft: MountLimits, device: MountLimits, *, where: str) -> MountLimits:
    """Soft limits narrowed to what the device allows (dynamics from ``soft``)."""

    def axis(name: str, s: AxisLimits, d: AxisLimits) -> AxisLimits:
        lo, hi = max(s.min_deg, d.min_deg), min(s.max_deg, d.max_deg)
        if not lo < hi:
            raise ConfigError(
                f"configured {name} range [{s.min_deg:g}, {s.max_deg:g}] deg does not overlap "
                f"the device's [{d.min_deg:g}, {d.max_deg:g}] deg",
                source=where,
                key=f"{name[:2]}_min/{name[:2]}_max",
            )
        if (lo, hi) != (s.min_deg, s.max_deg):
            log.info("%s: %s range narrowed to the device's: [%g, %g]", where, name, lo, hi)
        return AxisLimits(lo, hi, s.max_speed_deg_s, s.max_accel_deg_s2)

    return MountLimits(
        az=axis("azimuth", soft.az, device.az), el=axis("elevation", soft.el, device.el)
    )


class StreamedMount(abc.ABC):
    """Base of a Mount whose protocol moves by position commands only.

    Subclasses implement the wire primitives (``_handshake``, ``_read_position``,
    ``_command_position``, ``_stop_axes``, ``_start_park``, ``_park_complete``), each as one
    or more exchanges on ``self._link`` (:meth:`DeviceLink.exchange`).

    Args:
        transport: an open :class:`Transport` (tests inject a scripted one), a transport URL
            for :func:`drivers.transport.open_transport`, or an async factory.
        clock: the station clock; all pacing and move bounds are in its seconds.
        limits: soft limits and assumed dynamics (drivers narrow them to device limits).
        options: pacing and bounds, see :class:`MountOptions`.
        park: the park position if known (used to confirm a park where the protocol cannot).
        url: the device URL for messages (default: the transport URL).
    """

    #: what the protocol can do natively; set by each driver
    CAPABILITIES = MountCapability.STOP
    #: True if the protocol reports azimuth modulo 360 (no cable-wrap information)
    AZ_WRAPS = False

    def __init__(
        self,
        transport: TransportSource,
        clock: Clock,
        *,
        limits: MountLimits,
        options: MountOptions | None = None,
        park: AltAz | None = None,
        url: str | None = None,
    ) -> None:
        self._source = transport  #: what the link opens (a URL, a factory or a transport)
        self._clock = clock
        self._limits = limits
        self._opts = options if options is not None else MountOptions()
        self._park_position = park
        self._link = DeviceLink(
            transport,
            url=url if url is not None or not callable(transport) else "mount",
            timeout=self._opts.io_timeout_s,
            resync_on=RESYNC_ON,
        )
        self._url = self._link.url
        self._state = MountState.IDLE
        self._target: AltAz | None = None
        self._fault: str | None = None

    # ------------------------------------------------------------------ properties

    @property
    def url(self) -> str:
        return self._url

    @property
    def capabilities(self) -> MountCapability:
        return self.CAPABILITIES

    @property
    def limits(self) -> MountLimits:
        return self._limits

    @property
    def options(self) -> MountOptions:
        return self._opts

    @property
    def is_connected(self) -> bool:
        return self._link.is_open

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Open the transport and run the protocol handshake (bounded)."""
        if self.is_connected:
            return
        await self._link.open()
        try:
            await self._handshake()
        except BaseException:
            with contextlib.suppress(DeviceError, OSError):
                await self._link.close()
            raise
        self._fault = None
        log.info("%s: connected", self._url)

    async def close(self) -> None:
        """Close the transport; safe to call twice or before connect."""
        if self._link.is_open:
            await self._link.close()
            log.info("%s: closed", self._url)
        else:
            await self._link.close()

    # ------------------------------------------------------------------ Mount interface

    async def position(self) -> AltAz:
        """Current encoder position (deg)."""
        return await self._read_position()

    def move_timeout_s(self, start: AltAz, target: AltAz) -> float:
        """Bound for a move from ``start`` to ``target`` in clock seconds."""
        travel = self._limits.move_time_s(start, target)
        return travel * self._opts.move_margin + self._opts.move_overhead_s

    async def slew_to(self, target: AltAz, *, timeout: float | None = None) -> None:
        """Go to ``target`` and return once both axes are within tolerance.

        ``timeout`` (clock s) defaults to the travel time from the current position.
        """

        async def bound() -> float:
            start = await self._read_position()
            return timeout if timeout is not None else self.move_timeout_s(start, target)

        async def move(motion: Motion) -> None:
            self._state, self._target = MountState.SLEWING, target
            try:
                motion.started()
                await self._command_position(target, streaming=False)
                await self._wait_reached(target, motion.bound_s, what="slew")
            finally:
                self._state = MountState.IDLE

        await guarded_move(
            "slew",
            move,
            timeout_s=bound,
            stop=self._stop_axes,
            clock=self._clock,
            device=self._url,
            check=lambda: self._limits.check(target, device=self._url),
            # backstop only: _wait_reached reports first (its bound + 2 I/O timeouts)
            grace_wall_s=4 * self._opts.io_timeout_s,
        )

    async def follow(self, trajectory: Trajectory) -> None:
        """Stream interpolated targets at ``follow_rate_hz`` until the last sample is reached."""
        self._check_trajectory(trajectory)
        period = 1.0 / self._opts.follow_rate_hz
        t_end = float(trajectory.t_s[-1])
        final = trajectory.at(t_end)
        done = False
        self._state = MountState.TRACKING
        ticks = 0
        try:
            here = await self._read_position()
            # Whole-follow wall bound: the trajectory's duration plus a move from here to its
            # farthest sample (at worst the mount chases the target the whole time).
            az_range = (float(trajectory.az_deg.min()), float(trajectory.az_deg.max()))
            el_range = (float(trajectory.el_deg.min()), float(trajectory.el_deg.max()))
            worst = max(self.move_timeout_s(here, AltAz(a, e)) for a in az_range for e in el_range)
            span = max(0.0, t_end - self._clock.now()) + worst
            async with asyncio.timeout(self._clock.to_wall(span) + 2 * self._opts.io_timeout_s):
                next_tick = self._clock.now()
                while True:
                    now = self._clock.now()
                    target = trajectory.at(now)
                    self._target = target
                    await self._command_position(target, streaming=True)
                    ticks += 1
                    if now >= t_end:
                        break
                    next_tick = max(next_tick + period, self._clock.now())  # no burst on overrun
                    await self._clock.sleep_until(min(next_tick, t_end))
            await self._wait_reached(final, self.move_timeout_s(final, final), what="follow")
            done = True
        except TimeoutError:
            raise DeviceTimeout(
                f"following a {len(trajectory)}-sample trajectory did not finish in time "
                f"({ticks} commands sent)",
                device=self._url,
                hint="check the link latency against follow_rate_hz",
            ) from None
        finally:
            self._state = MountState.IDLE
            if not done:
                await self._stop_quietly("follow did not complete")
        log.debug("%s: followed %d samples with %d commands", self._url, len(trajectory), ticks)

    async def stop(self) -> None:
        """Stop both axes now and return once they stand still (bounded by the braking time)."""
        await self._stop_axes()
        self._state, self._target = MountState.IDLE, None
        await self._wait_still()

    async def _wait_still(self) -> None:
        """Poll until two positions one interval apart agree (the axes have braked)."""
        axes = (self._limits.az, self._limits.el)
        braking = max(a.max_speed_deg_s / a.max_accel_deg_s2 for a in axes)
        bound = braking * self._opts.move_margin + self._opts.move_overhead_s
        previous = await self._read_position()
        try:
            async with asyncio.timeout(self._clock.to_wall(bound) + 2 * self._opts.io_timeout_s):
                while True:
                    await self._clock.sleep(self._opts.poll_interval_s)
                    here = await self._read_position()
                    if self._near(previous, here):
                        return
                    previous = here
        except TimeoutError:
            raise DeviceTimeout(
                f"axes still moving {bound:.1f} s (clock) after stop; last position {previous}",
                device=self._url,
                hint="the mount may not brake; check it on site",
            ) from None

    async def park(self) -> None:
        """Go to the park position; return once the mount reports (or shows) it is parked."""

        async def bound() -> float:
            here = await self._read_position()
            return self.move_timeout_s(here, self._limits_corner_farthest_from(here))

        async def move(motion: Motion) -> None:
            parked = False
            self._state, self._target = MountState.SLEWING, self._park_position
            try:
                motion.started()
                await self._start_park()
                while not await self._park_complete():
                    await self._clock.sleep(self._opts.poll_interval_s)
                parked = True
            finally:
                self._state = MountState.PARKED if parked else MountState.IDLE

        await guarded_move(
            "park",
            move,
            timeout_s=bound,
            stop=self._stop_axes,
            clock=self._clock,
            device=self._url,
            grace_wall_s=2 * self._opts.io_timeout_s,
            hint="check speed_deg_s and that nothing blocks the axes",
        )

    async def status(self) -> MountStatus:
        position = await self._read_position()
        state = MountState.FAULT if self._fault is not None else self._state
        return MountStatus(state, position, self._target, self._fault)

    # ------------------------------------------------------------------ helpers

    def _check_trajectory(self, trajectory: Trajectory) -> None:
        lim = self._limits
        for name, values, axis in (
            ("azimuth", trajectory.az_deg, lim.az),
            ("elevation", trajectory.el_deg, lim.el),
        ):
            bad = np.flatnonzero((values < axis.min_deg) | (values > axis.max_deg))
            if bad.size:
                i = int(bad[0])
                raise LimitViolation(
                    f"trajectory sample {i} (t={float(trajectory.t_s[i]):.3f}) has {name} "
                    f"{float(values[i]):.4f} deg outside [{axis.min_deg:g}, {axis.max_deg:g}]; "
                    f"{bad.size} samples are out of range",
                    device=self._url,
                    hint="unwrap or clip the trajectory into the limits; nothing was commanded",
                )

    def _limits_corner_farthest_from(self, here: AltAz) -> AltAz:
        lim = self._limits
        az = (
            lim.az.min_deg
            if here.az_deg - lim.az.min_deg > lim.az.max_deg - here.az_deg
            else lim.az.max_deg
        )
        el = (
            lim.el.min_deg
            if here.el_deg - lim.el.min_deg > lim.el.max_deg - here.el_deg
            else lim.el.max_deg
        )
        return AltAz(az, el)

    def _near(self, a: AltAz, b: AltAz) -> bool:
        tol = self._opts.tolerance_deg
        return (
            axis_error_deg(a.az_deg, b.az_deg, wraps=self.AZ_WRAPS) <= tol
            and abs(a.el_deg - b.el_deg) <= tol
        )

    async def _wait_reached(self, target: AltAz, bound_s: float, *, what: str) -> None:
        """Poll the position until it is within tolerance of ``target`` (bounded)."""
        deadline = self._clock.now() + bound_s
        last: AltAz | None = None
        try:
            async with asyncio.timeout(self._clock.to_wall(bound_s) + 2 * self._opts.io_timeout_s):
                while True:
                    last = await self._read_position()
                    if self._near(last, target):
                        return
                    if self._clock.now() >= deadline:
                        break
                    await self._clock.sleep(self._opts.poll_interval_s)
        except TimeoutError:
            pass
        raise DeviceTimeout(
            f"{what} to az {target.az_deg:.4f} el {target.el_deg:.4f} deg not reached within "
            f"{bound_s:.1f} s (clock); last position {last}",
            device=self._url,
            hint="check speed_deg_s/accel_deg_s2 against the real mount, or an obstruction",
        )

    async def _stop_quietly(self, why: str) -> None:
        """Stop the axes after a failed or cancelled follow; log (not raise) a failing stop."""
        await stop_quietly(self._stop_axes, why, device=self._url)

    # ------------------------------------------------------------------ wire primitives

    @abc.abstractmethod
    async def _handshake(self) -> None:
        """Verify the device answers and read what it can report (limits, precision)."""

    @abc.abstractmethod
    async def _read_position(self) -> AltAz: ...

    @abc.abstractmethod
    async def _command_position(self, target: AltAz, *, streaming: bool) -> None:
        """Send one go-to; ``streaming`` is True for follow ticks (busy may be tolerated)."""

    @abc.abstractmethod
    async def _stop_axes(self) -> None: ...

    @abc.abstractmethod
    async def _start_park(self) -> None: ...

    @abc.abstractmethod
    async def _park_complete(self) -> bool: ...
