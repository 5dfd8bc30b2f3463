"""Hamlib ``rotctld`` client over TCP: any rotator or mount Hamlib supports (protocols.md §1c).

Wire facts this driver depends on (Hamlib ``rotctl_parse.c`` and the real ``rotctld -m 1``
of Hamlib 4.5.4, checked byte for byte):

- one command per ``\\n``-terminated line; set commands answer ``RPRT 0`` or ``RPRT -n``;
  get commands answer their values one per line with *no* trailing ``RPRT`` on success, and
  only ``RPRT -n`` on failure;
- ``p`` -> ``az\\nel\\n`` (``%.2f`` in current Hamlib, ``%f`` in older; parsed as float);
- ``P az el`` -> ``RPRT 0``; a target outside the backend's range is refused with
  ``RPRT -1`` (EINVAL) by Hamlib 4.5 and with the newer ``RIG_ELIMIT`` code by later ones;
- ``\\dump_state`` -> ``<protocol version>\\n<model>\\n`` then, for protocol 1,
  ``min_az=…\\nmax_az=…\\nmin_el=…\\nmax_el=…\\n…done\\n`` (protocol 0: the four bare numbers).
  That is where the limits come from (:attr:`MountCapability.READ_LIMITS`);
- a command with a missing argument makes rotctld read the next *line* as that argument,
  so the driver always sends both numbers (never a partial ``P``).

Speeds are not reported by the protocol: ``speed_deg_s``/``accel_deg_s2`` come from the URL.
"""

from __future__ import annotations

import dataclasses
import logging
import math

from drivers.clock import Clock
from drivers.datatypes import AltAz, MountCapability, MountLimits
from drivers.errors import (
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    LimitViolation,
    ProtocolError,
)
from drivers.mount.common import StreamedMount, TransportSource, intersect_limits
from drivers.mount.options import MountOptions, default_limits, parse_mount_params
from drivers.registry import DeviceURL
from drivers.transport.base import Transport

log = logging.getLogger(__name__)

MAX_LINE = 256  #: bytes in one reply line before it is treated as garbage
MAX_DUMP_STATE_LINES = 64  #: bound on ``\dump_state`` reply lines
#: soft limits wider than any rotator, so the device's ``\dump_state`` ranges apply as-is
NO_SOFT_LIMITS = default_limits(-720.0, 720.0, -90.0, 180.0)

#: Hamlib negated ``rig_errcode_e`` -> (error class, meaning, what to do). 21 is RIG_ELIMIT in
#: Hamlib >= 4.6 (⚠️ not in the 4.5 headers the notes quote; 4.5 reports limits as -1).
RPRT_ERRORS: dict[int, tuple[type[DeviceError], str, str]] = {
    1: (
        LimitViolation,
        "invalid parameter (EINVAL)",
        "the rotator refused the value; check its range",
    ),
    2: (DeviceFault, "invalid configuration (ECONF)", "check the rotctld command line"),
    3: (DeviceFault, "out of memory (ENOMEM)", "restart rotctld"),
    4: (DeviceFault, "not implemented by this rotator (ENIMPL)", "the backend lacks the command"),
    5: (DeviceTimeout, "rotator did not answer rotctld (ETIMEOUT)", "check the rotator's cable"),
    6: (DeviceFault, "I/O error between rotctld and the rotator (EIO)", "check the rotator link"),
    7: (DeviceFault, "internal Hamlib error (EINTERNAL)", "restart rotctld"),
    8: (ProtocolError, "protocol error (EPROTO)", "rotctld and the rotator disagree"),
    9: (DeviceFault, "command rejected by the rotator (ERJCTED)", "check the rotator's state"),
    10: (DeviceFault, "argument truncated (ETRUNC)", "send fewer digits"),
    11: (DeviceFault, "feature not available (ENAVAIL)", "the rotator lacks the feature"),
    13: (DeviceFault, "communication bus error (BUSERROR)", "check the rotator link"),
    14: (DeviceFault, "communication bus collision (BUSBUSY)", "another client is talking"),
    15: (DeviceFault, "invalid argument (EARG)", "report this as a driver bug"),
    17: (LimitViolation, "argument out of domain (EDOM)", "check the rotator's range"),
    20: (DeviceFault, "rotator is not powered on (EPOWER)", "power the rotator"),
    21: (LimitViolation, "limit exceeded (ELIMIT)", "command a target inside the limits"),
}


def rprt_error(code: int, command: str, *, device: str) -> DeviceError:
    """The typed error for ``RPRT -code`` answering ``command``."""
    cls, meaning, hint = RPRT_ERRORS.get(
        code, (DeviceFault, f"Hamlib error {code}", "see rig_errcode_e in hamlib/rig.h")
    )
    return cls(f"rotctld refused {command!r}: RPRT -{code}, {meaning}", device=device, hint=hint)


def parse_rprt(line: str) -> int | None:
    """The code of an ``RPRT n`` line (0 or positive for errors), None if not an RPRT line."""
    if not line.startswith("RPRT"):
        return None
    try:
        return -int(line[4:].strip())
    except ValueError:
        return None


class RotctldMount(StreamedMount):
    """A mount behind Hamlib's ``rotctld`` (``rotctld://host:4533``).

    The constructor's ``limits`` are soft limits; on connect they are narrowed to the range
    the daemon reports in ``\\dump_state``.
    """

    CAPABILITIES = MountCapability.STOP | MountCapability.PARK | MountCapability.READ_LIMITS
    AZ_WRAPS = False  # rotctld reports the axis position, e.g. -90 and 270 differ

    def __init__(
        self,
        transport: TransportSource,
        clock: Clock,
        *,
        limits: MountLimits | None = None,
        follow_rate_hz: float | None = None,
        options: MountOptions | None = None,
        park: AltAz | None = None,
        url: str | None = None,
    ) -> None:
        opts = options if options is not None else MountOptions()
        if follow_rate_hz is not None:
            opts = dataclasses.replace(opts, follow_rate_hz=follow_rate_hz)
        soft = limits if limits is not None else NO_SOFT_LIMITS
        super().__init__(transport, clock, limits=soft, options=opts, park=park, url=url)
        self._soft_limits = soft
        self._info = ""
        self._device_limits: MountLimits | None = None
        self._park_previous: AltAz | None = None

    @classmethod
    def from_url(cls, url: DeviceURL, clock: Clock) -> RotctldMount:
        """``rotctld://host:port?speed_deg_s=3&el_min=10&follow_rate_hz=10&park_az=0&park_el=0``."""
        host, port = url.host_port()
        params = parse_mount_params(url)
        return cls(
            f"tcp://{host}:{port}",
            clock,
            limits=params.limits,
            options=params.options,
            park=params.park,
            url=url.raw,
        )

    @property
    def info(self) -> str:
        """The backend's ``get_info`` string (e.g. ``Dummy rotator``), read on connect."""
        return self._info

    @property
    def device_limits(self) -> MountLimits | None:
        """The ranges reported by ``\\dump_state`` (None before connect)."""
        return self._device_limits

    # ------------------------------------------------------------------ wire primitives

    async def _handshake(self) -> None:
        ranges = await self._link.exchange(self._dump_state)
        soft = self._soft_limits
        device = default_limits(
            ranges[0],
            ranges[1],
            ranges[2],
            ranges[3],
            speed_deg_s=soft.az.max_speed_deg_s,
            accel_deg_s2=soft.az.max_accel_deg_s2,
        )
        self._device_limits = device
        self._limits = intersect_limits(soft, device, where=self._url)
        self._info = await self._link.exchange(self._get_info)
        log.info("%s: rotctld backend %r, limits %s", self._url, self._info, self._limits)

    async def _read_position(self) -> AltAz:
        return await self._link.exchange(self._get_pos)

    async def _command_position(self, target: AltAz, *, streaming: bool) -> None:
        del streaming  # rotctld retargets a moving rotator; nothing is ever "busy"
        command = f"P {target.az_deg:.6f} {target.el_deg:.6f}"
        await self._link.exchange(lambda t: self._set(t, command))

    async def _stop_axes(self) -> None:
        await self._link.exchange(lambda t: self._set(t, "S"))

    async def _start_park(self) -> None:
        self._park_previous = None
        await self._link.exchange(lambda t: self._set(t, "K"))

    async def _park_complete(self) -> bool:
        # rotctld has no "parked" query: done when at the configured park position, or, when
        # that is unknown, when two polls one interval apart agree (the rotator stopped).
        here = await self._read_position()
        if self._park_position is not None:
            return self._near(here, self._park_position)
        previous, self._park_previous = self._park_previous, here
        return previous is not None and self._near(previous, here)

    # ------------------------------------------------------------------ transactions

    async def _send(self, transport: Transport, command: str) -> None:
        await transport.reset_input()  # drop a late reply left by an earlier timeout
        await transport.write(command.encode("ascii") + b"\n", timeout=self._opts.io_timeout_s)

    async def _line(self, transport: Transport, command: str) -> str:
        raw = await transport.read_until(b"\n", timeout=self._opts.io_timeout_s, max_bytes=MAX_LINE)
        try:
            return raw.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError:
            raise ProtocolError(
                f"non-ASCII reply {raw!r} to {command!r}", device=self._url
            ) from None

    async def _set(self, transport: Transport, command: str) -> None:
        await self._send(transport, command)
        line = await self._line(transport, command)
        code = parse_rprt(line)
        if code is None:
            raise ProtocolError(
                f"expected 'RPRT n' in reply to {command!r}, got {line!r}", device=self._url
            )
        if code != 0:
            raise rprt_error(code, command, device=self._url)

    async def _value_line(self, transport: Transport, command: str) -> str:
        """One value line of a get command; an ``RPRT -n`` instead raises its error."""
        line = await self._line(transport, command)
        code = parse_rprt(line)
        if code is not None:
            if code == 0:
                raise ProtocolError(
                    f"{command!r} answered RPRT 0 without a value", device=self._url
                )
            raise rprt_error(code, command, device=self._url)
        return line

    def _float(self, text: str, command: str, what: str) -> float:
        try:
            value = float(text.replace(",", "."))
        except ValueError:
            raise ProtocolError(
                f"expected a number for {what} in reply to {command!r}, got {text!r}",
                device=self._url,
            ) from None
        if not math.isfinite(value):
            raise ProtocolError(f"{what} {text!r} from {command!r} is not finite", device=self._url)
        return value

    async def _get_pos(self, transport: Transport) -> AltAz:
        await self._send(transport, "p")
        az = self._float(await self._value_line(transport, "p"), "p", "azimuth")
        el = self._float(await self._value_line(transport, "p"), "p", "elevation")
        return AltAz(az, el)

    async def _get_info(self, transport: Transport) -> str:
        await self._send(transport, "_")
        return await self._value_line(transport, "_")

    async def _dump_state(self, transport: Transport) -> tuple[float, float, float, float]:
        command = "\\dump_state"
        await self._send(transport, command)
        version = (await self._value_line(transport, command)).strip()
        if version not in ("0", "1"):
            raise ProtocolError(
                f"{command} protocol version {version!r} is not 0 or 1", device=self._url
            )
        await self._value_line(transport, command)  # model number
        keys = ("min_az", "max_az", "min_el", "max_el")
        found: dict[str, float] = {}
        positional: list[float] = []
        for _ in range(MAX_DUMP_STATE_LINES):
            line = await self._value_line(transport, command)
            if line == "done":
                break
            key, sep, value = line.partition("=")
            if sep:
                if key in keys:
                    found[key] = self._float(value, command, key)
                continue
            positional.append(self._float(line, command, keys[len(positional)]))
            if len(positional) == 4:  # protocol 0: four bare numbers and no "done"
                found = dict(zip(keys, positional, strict=True))
                break
        else:
            raise ProtocolError(
                f"{command} did not end with 'done' within {MAX_DUMP_STATE_LINES} lines",
                device=self._url,
            )
        missing = [k for k in keys if k not in found]
        if missing:
            raise ProtocolError(f"{command} reply lacks {missing}", device=self._url)
        return found["min_az"], found["max_az"], found["min_el"], found["max_el"]
