"""LX200 mount in the OnStep alt-az dialect, high precision, over serial (protocols.md §1a).

Wire facts this driver depends on (Meade Rev L, INDI ``lx200driver.cpp``, OnStepX):

- commands ``:XX…#``; the ACK is the lone byte 0x06, answered by one mode letter (``A``
  alt-az, ``P`` polar, ``G`` German, ``L`` land) with no ``#``;
- each command has one of three reply kinds, which the driver must know: a ``#``-terminated
  string (``:GA#``, ``:GZ#``, ``:GU#``), a bare digit with no ``#`` (setters, ``:MA#``,
  ``:hP#``), or nothing at all (``:Q#``, ``:U#``);
- setters answer ``1`` for accepted and ``0`` for refused (OnStep polarity; Meade Rev L
  inverts ``:Sa``, which this driver does not support);
- ``:MA#`` answers one digit (OnStep ``Goto.command.cpp``): 0 ok, 1 below the horizon limit,
  2 above the overhead limit, 3 standby, 4 parked, 5 goto in progress, 6 outside limits,
  7 hardware fault, 8 already in motion, 9 unspecified;
- precision: INDI's ``checkLX200Format`` reads a coordinate and, if it lacks seconds, sends
  the ``:U#`` toggle and reads again. This driver does the same on ``:GZ#`` (the coordinate
  it uses) rather than ``:GR#``;
- INDI flushes the input before every command (stale bytes after a timeout), and so do we;
- a busy LX200GPS may answer NAK (0x15) within 10 ms; the command is then retried.

Azimuth on the wire is modulo 360 (no cable-wrap information): reported positions are
mapped into ``[az_min, az_min + 360)`` of the configured limits.
"""

from __future__ import annotations

import dataclasses
import logging

from drivers.clock import Clock
from drivers.datatypes import AltAz, MountCapability, MountLimits
from drivers.errors import DeviceError, DeviceFault, DeviceTimeout, LimitViolation, ProtocolError
from drivers.mount.common import StreamedMount, TransportSource
from drivers.mount.lx200_format import (
    ParsedAngle,
    format_altitude,
    format_azimuth,
    parse_angle,
)
from drivers.mount.options import (
    MountOptions,
    default_limits,
    parse_mount_params,
    transport_query,
)
from drivers.registry import DeviceURL
from drivers.transport.base import Transport

log = logging.getLogger(__name__)

ACK = b"\x06"
NAK = b"\x15"
MAX_REPLY = 64  #: bytes of a ``#``-terminated reply before it is treated as garbage
NAK_RETRIES = 2  #: resends of a command answered with NAK
NAK_WAIT_S = 0.05  #: clock seconds to wait after a NAK (Meade: "wait and retry")
SERIAL_PARAMS = ("baud", "parity", "bytesize", "stopbits", "xonxoff", "rtscts")
DEFAULT_BAUD = "9600"  #: OnStepX and Meade default (protocols.md §1a)

#: ``:MA#`` digit -> (error class, meaning, what to do)
GOTO_ERRORS: dict[str, tuple[type[DeviceError], str, str]] = {
    "1": (LimitViolation, "target is below the horizon limit", "raise the target elevation"),
    "2": (LimitViolation, "target is above the overhead limit", "lower the target elevation"),
    "3": (DeviceFault, "controller is in standby", "wake the mount controller"),
    "4": (DeviceFault, "mount is parked", "unpark it (:hR#)"),
    "5": (DeviceFault, "a goto is already in progress", "stop (:Q#) before a new goto"),
    "6": (LimitViolation, "target is outside the mount's limits", "check the firmware limits"),
    "7": (DeviceFault, "hardware fault", "inspect the mount; the controller reports a fault"),
    "8": (DeviceFault, "mount is already in motion", "stop (:Q#) before a new goto"),
    "9": (DeviceFault, "unspecified goto error", "check the controller's state"),
}
BUSY_CODES = frozenset({"5", "8"})  #: goto refused because the previous one is still running
MODES = {"A": "alt-az", "P": "polar", "G": "German equatorial", "L": "land"}


class LX200Mount(StreamedMount):
    """An OnStep-style LX200 mount (``lx200+serial:///dev/ttyUSB0?baud=9600``)."""

    CAPABILITIES = MountCapability.STOP | MountCapability.PARK
    AZ_WRAPS = True

    def __init__(
        self,
        transport: TransportSource,
        clock: Clock,
        *,
        limits: MountLimits | None = None,
        follow_rate_hz: float | None = None,
        options: MountOptions | None = None,
        url: str | None = None,
    ) -> None:
        opts = options if options is not None else MountOptions(tolerance_deg=0.01)
        if follow_rate_hz is not None:
            opts = dataclasses.replace(opts, follow_rate_hz=follow_rate_hz)
        lim = limits if limits is not None else default_limits(0.0, 360.0, 0.0, 90.0)
        super().__init__(transport, clock, limits=lim, options=opts, url=url)
        self.mode = ""  #: alignment mode letter from the ACK (``A`` expected)
        self.unparks = 0  #: how often a goto found the mount parked and unparked it

    @classmethod
    def from_url(cls, url: DeviceURL, clock: Clock) -> LX200Mount:
        """``lx200+serial:///dev/ttyUSB0?baud=9600&el_min=10&speed_deg_s=4&follow_rate_hz=5``."""
        params = parse_mount_params(url)
        transport_url = url.transport_url
        if url.transport == "serial":
            serial = dict(url.params)
            serial.setdefault("baud", DEFAULT_BAUD)
            transport_url += transport_query(serial, SERIAL_PARAMS)
        return cls(transport_url, clock, limits=params.limits, options=params.options, url=url.raw)

    # ------------------------------------------------------------------ wire primitives

    async def _handshake(self) -> None:
        self.mode = await self._link.exchange(self._ack)
        if self.mode != "A":
            log.warning(
                "%s: mount reports %s mode, not alt-az; :MA# gotos still work on OnStep",
                self._url,
                MODES[self.mode],
            )
        await self._link.exchange(self._ensure_high_precision)

    async def _read_position(self) -> AltAz:
        return await self._link.exchange(self._get_altaz)

    async def _command_position(self, target: AltAz, *, streaming: bool) -> None:
        alt = f":Sa{format_altitude(target.el_deg)}#"
        az = f":Sz{format_azimuth(target.az_deg)}#"

        async def goto(t: Transport) -> str:
            await self._setter(t, alt, "altitude")
            await self._setter(t, az, "azimuth")
            code = await self._digit(t, ":MA#")
            if code == "4":  # parked: unpark once and retry (OnStep :hR#)
                self.unparks += 1
                await self._setter(t, ":hR#", "unpark")
                code = await self._digit(t, ":MA#")
            return code

        code = await self._link.exchange(goto)
        if code in BUSY_CODES:
            if streaming:
                # Step-and-settle tracking: the previous goto is still running; the next
                # tick carries a fresher target, so skip this one (protocols.md §0).
                log.debug("%s: goto busy (%s); tick skipped", self._url, code)
                return
            code = await self._goto_after_stop(target)
        if code != "0":
            raise self._goto_error(code, target)

    async def _goto_after_stop(self, target: AltAz) -> str:
        """A new slew while one runs: OnStep refuses (5/8), so stop and retry until it brakes."""
        axes = (self._limits.az, self._limits.el)
        bound = max(a.max_speed_deg_s / a.max_accel_deg_s2 for a in axes) * self._opts.move_margin
        deadline = self._clock.now() + bound + self._opts.move_overhead_s
        await self._stop_axes()
        code = "5"
        while code in BUSY_CODES and self._clock.now() < deadline:
            await self._clock.sleep(self._opts.poll_interval_s)
            code = await self._link.exchange(lambda t: self._digit(t, ":MA#"))
        return code

    async def _stop_axes(self) -> None:
        await self._link.exchange(lambda t: self._send(t, ":Q#"))

    async def _start_park(self) -> None:
        await self._link.exchange(lambda t: self._setter(t, ":hP#", "park"))

    async def _park_complete(self) -> bool:
        status = await self._link.exchange(lambda t: self._string(t, ":GU#"))
        # OnStep :GU# flags: P parked, I park in progress, F park failed.
        if "F" in status:
            raise DeviceFault(
                f"the mount reports park failed (:GU# {status!r})",
                device=self._url,
                hint="clear the fault and set a park position (:hQ#)",
            )
        return "P" in status

    # ------------------------------------------------------------------ transactions

    async def _send(self, transport: Transport, command: bytes | str) -> None:
        data = command.encode("ascii") if isinstance(command, str) else command
        await transport.reset_input()  # INDI: tcflush(TCIFLUSH) before every command
        await transport.write(data, timeout=self._opts.io_timeout_s)

    async def _string(self, transport: Transport, command: str) -> str:
        """A command with a ``#``-terminated reply; returns the text without ``#``."""
        await self._send(transport, command)
        raw = await transport.read_until(b"#", timeout=self._opts.io_timeout_s, max_bytes=MAX_REPLY)
        return raw[:-1].decode("latin-1")  # latin-1: a Meade 0xDF degree sign stays one char

    async def _digit(self, transport: Transport, command: str) -> str:
        """A command with a bare one-character reply (no ``#``); NAK is retried."""
        for attempt in range(NAK_RETRIES + 1):
            await self._send(transport, command)
            reply = await transport.read_exactly(1, timeout=self._opts.io_timeout_s)
            if reply != NAK:
                if not reply.isdigit():
                    raise ProtocolError(
                        f"expected a digit in reply to {command!r}, got {reply!r}",
                        device=self._url,
                        hint="is this an LX200/OnStep mount at the right baud rate?",
                    )
                return reply.decode("ascii")
            log.debug("%s: NAK to %r (attempt %d)", self._url, command, attempt + 1)
            await self._clock.sleep(NAK_WAIT_S)
        raise DeviceTimeout(
            f"mount kept answering NAK (busy) to {command!r}", device=self._url, hint="retry later"
        )

    async def _setter(self, transport: Transport, command: str, what: str) -> None:
        code = await self._digit(transport, command)
        if code == "1":
            return
        if code == "0":
            cls: type[DeviceError] = (
                LimitViolation if what in ("altitude", "azimuth") else DeviceFault
            )
            raise cls(
                f"mount refused the {what} command {command!r} (reply 0)",
                device=self._url,
                hint="the value is outside what the mount accepts; nothing moved",
            )
        raise ProtocolError(
            f"expected 1 or 0 in reply to {command!r}, got {code!r}", device=self._url
        )

    async def _ack(self, transport: Transport) -> str:
        # INDI check_lx200_connection sends the ACK up to twice.
        for attempt in range(2):
            await self._send(transport, ACK)
            try:
                reply = await transport.read_exactly(1, timeout=self._opts.io_timeout_s)
            except DeviceTimeout:
                if attempt == 1:
                    raise
                continue
            mode = reply.decode("latin-1")
            if mode not in MODES:
                raise ProtocolError(
                    f"ACK (0x06) answered {reply!r}, expected one of {sorted(MODES)}",
                    device=self._url,
                    hint="is this an LX200/OnStep mount at the right baud rate?",
                )
            return mode
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ensure_high_precision(self, transport: Transport) -> None:
        first = self._angle(await self._string(transport, ":GZ#"), ":GZ#")
        if first.high_precision:
            return
        await self._send(transport, ":U#")  # toggle; no reply
        again = self._angle(await self._string(transport, ":GZ#"), ":GZ#")
        if not again.high_precision:
            raise ProtocolError(
                "mount stays in low precision after the :U# toggle",
                device=self._url,
                hint="enable high precision on the handbox",
            )
        log.info("%s: switched the mount to high precision", self._url)

    def _angle(self, text: str, command: str) -> ParsedAngle:
        try:
            return parse_angle(text)
        except ValueError as exc:
            raise ProtocolError(f"bad reply to {command!r}: {exc}", device=self._url) from None

    async def _get_altaz(self, transport: Transport) -> AltAz:
        el = self._angle(await self._string(transport, ":GA#"), ":GA#").deg
        az = self._angle(await self._string(transport, ":GZ#"), ":GZ#").deg
        az_min = self._limits.az.min_deg
        return AltAz(az_min + (az - az_min) % 360.0, el)

    def _goto_error(self, code: str, target: AltAz) -> DeviceError:
        if code not in GOTO_ERRORS:
            return ProtocolError(f"unknown :MA# reply {code!r}", device=self._url)
        cls, meaning, hint = GOTO_ERRORS[code]
        return cls(
            f"goto to az {target.az_deg:.4f} el {target.el_deg:.4f} refused: {meaning} "
            f"(:MA# reply {code})",
            device=self._url,
            hint=hint,
        )
