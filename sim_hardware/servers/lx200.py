"""LX200 front-end (OnStep dialect, alt-az mount) on a pseudo-terminal.

Framing and replies per protocols.md §1a (Meade Rev L, OnStepX):

- a request is either the lone byte ``0x06`` (ACK; reply ``A``: alt-az mount) or ``:`` … ``#``;
  bytes outside a frame are ignored; a ``:`` inside a frame is data (INDI's ``:Sz123:45#``);
- string replies end in ``#``; numeric replies are one bare digit with no ``#``; some commands
  answer nothing;
- angles: ``*`` as degree separator on output; on input ``*``, ``:``, ``'``, 0xDF and spaces
  are all accepted (be liberal in what you accept, strict in what you send).

=============  ==============================================  =============================
command        meaning                                         reply
=============  ==============================================  =============================
``:GA#``       altitude                                        ``sDD*MM'SS#`` (low: ``sDD*MM#``)
``:GZ#``       azimuth (0..360)                                ``DDD*MM'SS#`` (low: ``DDD*MM#``)
``:GAH#``      altitude, OnStep highest precision              ``sDD*MM'SS.SSS#``
``:GZH#``      azimuth, OnStep highest precision               ``DDD*MM'SS.SSS#``
``:Sa…#``      target altitude                                 ``1`` ok / ``0`` invalid
``:Sz…#``      target azimuth                                  ``1`` ok / ``0`` invalid
``:MA#``       goto target                                     digit, OnStep codes (below)
``:Q#``        stop (also ``:Qn# :Qs# :Qe# :Qw#``)             none
``:Mn# …``     move n/s (altitude) e/w (azimuth) at the rate   none
``:RG# …``     rate guide/centre/find/slew (1%/10%/50%/100%)   none
``:hP#``       park                                            ``1`` / ``0``
``:hR#``       unpark                                          ``1``
``:hC#``       go home                                         none
``:U#``        toggle high/low precision                       none
``:D#``        slewing? (distance bars)                        ``\\x7f#`` moving / ``#``
``:GU#``       OnStep status flags                             e.g. ``nNpA0#``
``:GVP#`` etc  product / firmware number, date, time           ``On-Step#`` …
unknown        —                                               ``0``
=============  ==============================================  =============================

``:MA#`` digits (OnStepX): 0 goto started, 1 below the horizon limit, 2 above the overhead
limit, 4 parked, 5 goto already in progress, 6 outside limits (azimuth not reachable inside
the cable wrap), 7 hardware fault (stall). OnStep refuses a new goto while one is running; pass
``reject_goto_while_slewing=False`` to let gotos retarget a running slew.

``:GU#`` is an approximation of OnStep's flag string: ``n`` not tracking, ``N`` no goto in
progress, ``p``/``P``/``I`` not parked/parked/parking, ``H`` at home, ``A`` alt-az, then the
last error as a digit (0 none, 1 motor fault). The ``error_reply`` fault answers every request
with ``0``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable

from drivers.datatypes import AltAz, MountState
from drivers.errors import DeviceFault, LimitViolation
from sim_hardware.devices.mount import MountModel
from sim_hardware.faults import FaultKind
from sim_hardware.servers.pty import PtyServer
from sim_hardware.servers.replies import ReplyWriter

log = logging.getLogger(__name__)

ACK = 0x06
#: Longest frame accepted between ``:`` and ``#``; longer ones are dropped.
MAX_FRAME = 64
#: Jog speed (fraction of full speed) for the LX200 rates guide/centre/find/slew.
RATES = {"RG": 0.01, "RC": 0.1, "RM": 0.5, "RS": 1.0}
PRODUCT = "On-Step"
FIRMWARE = {"GVP": PRODUCT, "GVN": "10.0q", "GVD": "Jan 01 2025", "GVT": "00:00:00"}

_DMS = re.compile(
    r"([+-]?)(\d{1,3}(?:\.\d+)?)"  # sign, degrees (decimal degrees allowed alone)
    r"(?:[*:\xdf'](\d{1,2}(?:\.\d+)?)"  # minutes
    r"(?:[*:\xdf'](\d{1,2}(?:\.\d+)?))?)?"  # seconds
)


def parse_angle(text: str) -> float | None:
    """Parse ``sDD*MM``, ``sDD*MM'SS(.sss)`` and friends into degrees; None if malformed."""
    m = _DMS.fullmatch(text.replace(" ", ""))
    if m is None:
        return None
    sign, deg, mins, secs = m.groups()
    if (mins is not None or secs is not None) and "." in deg:
        return None
    minutes = float(mins) if mins is not None else 0.0
    seconds = float(secs) if secs is not None else 0.0
    if minutes >= 60 or seconds >= 60:
        return None
    value = float(deg) + minutes / 60.0 + seconds / 3600.0
    return -value if sign == "-" else value


def format_angle(value: float, *, signed: bool, precision: str) -> str:
    """Format degrees as ``sDD*MM``/``sDD*MM'SS``/``sDD*MM'SS.SSS`` (az: ``DDD``, unsigned).

    ``precision`` is ``low``, ``high`` or ``highest``. Rounding carries into minutes and
    degrees, so 44.99999 prints as ``+45*00'00``.
    """
    sign = "-" if signed and value < 0 else "+"
    mag = abs(value)
    width = 2 if signed else 3
    if precision == "low":
        total = round(mag * 60)
        d, mm = divmod(total, 60)
        body = f"{d:0{width}d}*{mm:02d}"
    elif precision == "high":
        total = round(mag * 3600)
        d, rest = divmod(total, 3600)
        mm, ss = divmod(rest, 60)
        body = f"{d:0{width}d}*{mm:02d}'{ss:02d}"
    else:
        total = round(mag * 3_600_000)
        d, rest = divmod(total, 3_600_000)
        mm, rest = divmod(rest, 60_000)
        ss, ms = divmod(rest, 1000)
        body = f"{d:0{width}d}*{mm:02d}'{ss:02d}.{ms:03d}"
    return (sign + body) if signed else body


class Lx200Protocol:
    """Serves the LX200 (OnStep) command set against a :class:`MountModel`."""

    def __init__(self, model: MountModel, *, reject_goto_while_slewing: bool = True) -> None:
        self.model = model
        self.reject_goto_while_slewing = reject_goto_while_slewing
        self.high_precision = True  # OnStep's default
        self.rate = RATES["RS"]
        self._target_alt: float | None = None
        self._target_az: float | None = None  #: 0..360 as the client sent it

    async def handle(self, reader: asyncio.StreamReader, writer: ReplyWriter) -> None:
        frame: bytearray | None = None
        while True:
            chunk = await reader.read(256)
            if not chunk:
                return
            for byte in chunk:
                if frame is None:
                    if byte == ACK:
                        writer.write(self._reply_error() or b"A")
                    elif byte == ord(":"):
                        frame = bytearray()
                    continue  # noise between frames is ignored
                # ':' inside a frame is data: INDI sends ":Sz%03d:%02d#".
                if byte == ord("#"):
                    writer.write(self._dispatch(frame.decode("latin-1")))
                    frame = None
                elif len(frame) >= MAX_FRAME:
                    log.warning("lx200: frame longer than %d bytes dropped", MAX_FRAME)
                    frame = None
                else:
                    frame.append(byte)

    def _reply_error(self) -> bytes:
        faults = self.model.faults
        if faults is not None and faults.active(FaultKind.ERROR_REPLY) is not None:
            return b"0"
        return b""

    def _dispatch(self, body: str) -> bytes:
        error = self._reply_error()
        if error:
            return error
        cmd = body.strip()
        head2, arg = cmd[:2], cmd[2:]
        if cmd in ("GA", "GZ", "GAH", "GZH"):
            return self._get_position(cmd)
        if head2 in ("Sa", "Sz"):
            return self._set_target(head2, arg)
        if cmd == "MA":
            return self._goto()
        if cmd in ("Q", "Qn", "Qs", "Qe", "Qw"):
            self.model.stop()
            return b""
        if cmd in ("Mn", "Ms", "Me", "Mw"):
            self._jog(cmd[1])
            return b""
        if cmd in RATES:
            self.rate = RATES[cmd]
            return b""
        if cmd == "U":
            self.high_precision = not self.high_precision
            return b""
        if cmd == "hP":
            return self._park()
        if cmd == "hR":
            self.model.unpark()
            return b"1"
        if cmd == "hC":
            self._guarded(self.model.home)
            return b""
        if cmd == "D":
            return b"\x7f#" if self.model.is_moving() else b"#"
        if cmd == "GU":
            return self._status()
        if cmd in FIRMWARE:
            return f"{FIRMWARE[cmd]}#".encode()
        log.info("lx200: unknown command :%s# (reply 0)", body)
        return b"0"

    # ------------------------------------------------------------------ commands

    def _get_position(self, cmd: str) -> bytes:
        pos = self.model.encoder_position()
        low_or_high = "high" if self.high_precision else "low"
        precision = "highest" if cmd.endswith("H") else low_or_high
        if cmd.startswith("GA"):
            text = format_angle(pos.el_deg, signed=True, precision=precision)
        else:
            text = format_angle(pos.az_deg % 360.0, signed=False, precision=precision)
            if text.startswith("360"):  # rounding up at the wrap point
                text = "000" + text[3:]
        return f"{text}#".encode()

    def _set_target(self, which: str, arg: str) -> bytes:
        value = parse_angle(arg)
        if value is None:
            return b"0"
        if which == "Sa":
            if not -90.0 <= value <= 90.0:
                return b"0"
            self._target_alt = value
        else:
            if not 0.0 <= value < 360.0:
                return b"0"
            self._target_az = value
        return b"1"

    def _unwrap_az(self, az: float) -> float | None:
        """The axis azimuth equal to ``az`` mod 360 nearest the current one, inside the wrap."""
        lim = self.model.limits.az
        here = self.model.encoder_position().az_deg
        candidates = [
            az + 360.0 * k
            for k in range(
                math.floor((lim.min_deg - az) / 360.0), math.ceil((lim.max_deg - az) / 360.0) + 1
            )
            if lim.contains(az + 360.0 * k)
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda a: abs(a - here))

    def _goto(self) -> bytes:
        model = self.model
        state = model.state
        if state is MountState.FAULT:
            return b"7"
        if state is MountState.PARKED:
            return b"4"
        if self.reject_goto_while_slewing and state is MountState.SLEWING:
            return b"5"
        here = model.encoder_position()
        alt = self._target_alt if self._target_alt is not None else here.el_deg
        az_in = self._target_az if self._target_az is not None else here.az_deg % 360.0
        el_lim = model.limits.el
        if alt < el_lim.min_deg:
            return b"1"
        if alt > el_lim.max_deg:
            return b"2"
        az = self._unwrap_az(az_in)
        if az is None:
            return b"6"
        try:
            model.command(AltAz(az, alt))
        except LimitViolation:
            return b"6"
        except DeviceFault:
            return b"7"
        return b"0"

    def _jog(self, direction: str) -> None:
        d_az = {"e": 1, "w": -1}.get(direction, 0)
        d_el = {"n": 1, "s": -1}.get(direction, 0)
        self._guarded(lambda: self.model.jog(d_az, d_el, self.rate))

    def _park(self) -> bytes:
        return b"1" if self._guarded(self.model.park) else b"0"

    def _guarded(self, action: Callable[[], None]) -> bool:
        try:
            action()
        except DeviceFault as exc:
            log.info("lx200: refused: %s", exc)
            return False
        return True

    def _status(self) -> bytes:
        model = self.model
        state = model.state
        flags = "n"
        if state is not MountState.SLEWING:
            flags += "N"
        if state is MountState.PARKED:
            flags += "P"
        elif model.is_moving() and model.target == model.park_position:
            flags += "I"
        else:
            flags += "p"
        if model.encoder_position().separation_deg(model.home_position) < 1.0 / 3600.0:
            flags += "H"
        flags += "A"
        flags += "1" if state is MountState.FAULT else "0"
        return f"{flags}#".encode()


class Lx200Server:
    """A running LX200 emulator on a pty: :attr:`path`, :attr:`url`, :meth:`close`."""

    def __init__(self, pty: PtyServer, protocol: Lx200Protocol) -> None:
        self._pty = pty
        self.protocol = protocol

    @property
    def path(self) -> str:
        return self._pty.path

    @property
    def url(self) -> str:
        """Device URL for the station config, e.g. ``lx200+serial:///dev/pts/7``."""
        return f"lx200+serial://{self._pty.path}"

    async def close(self) -> None:
        await self._pty.close()

    async def __aenter__(self) -> Lx200Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def serve_lx200(model: MountModel, *, reject_goto_while_slewing: bool = True) -> Lx200Server:
    """Start an LX200 (OnStep) emulator for ``model`` on a new pseudo-terminal."""
    protocol = Lx200Protocol(model, reject_goto_while_slewing=reject_goto_while_slewing)
    pty = PtyServer(
        protocol.handle, faults=model.faults, name=f"lx200:{model.name}", clock=model.clock
    )
    await pty.start()
    return Lx200Server(pty, protocol)
