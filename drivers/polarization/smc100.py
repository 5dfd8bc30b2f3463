"""Newport SMC100 motion controller with a rotation stage, through pyvisa (protocols.md §2c).

Wire facts this driver depends on (pymeasure, hvl_ccb; §2c):

- ASCII ``<addr><CC>[param]`` terminated by CR LF both ways, addresses 1..31. Replies echo
  the prefix: ``1TP45.00000``, ``1TE@``, ``1TS000033``. Action commands (``PA``, ``OR``,
  ``ST``) do not answer; the driver sends ``TE`` after each one and maps the error letter.
- ``TS`` returns 4 hex digits of positioner-error bits then 2 hex digits of controller state.
  After power-up the controller is NOT REFERENCED; ``OR`` homes it (HOMING -> READY); ``PA``
  is accepted only in READY, and the state is MOVING (28) until the move ends in READY (33).
- A ``\\x00`` at the start of a reply means the motor power was cut and restored (hvl_ccb).
- Drivers poll the state about every 0.1 s while waiting for a motion (pymeasure
  ``wait_ready``).

Cancellation safety comes from the shared :class:`~drivers.transport.link.DeviceLink`: one
exchange (a query, or an action plus its ``TE``) runs at a time under its lock, in a task
shielded from the caller's cancellation, so a cancelled caller never leaves a reply in the input
buffer for the next command; after a timeout or a malformed reply the input is flushed before
the lock is released. Motions run through :func:`drivers.motion.guarded_move`: a cancelled,
timed-out or failed motion is stopped (``ST``) before the exception propagates.

Angles: the rotation stage's software limits (``SL?``/``SR?``) may not span a whole turn, so a
target (taken modulo 360) goes to the equivalent angle inside the limits nearest the current
position.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from drivers.clock import Clock
from drivers.errors import (
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    DeviceURLError,
    LimitViolation,
    ProtocolError,
)
from drivers.motion import Motion, guarded_move
from drivers.registry import DeviceURL, read_params
from drivers.transport.base import Transport
from drivers.transport.link import DeviceLink

log = logging.getLogger(__name__)

T = TypeVar("T")

POLL_S = 0.1  #: clock seconds between TS polls while waiting for a motion (pymeasure)
REPLY_TIMEOUT_S = 2.0  #: wall seconds for one reply
MOVE_OVERHEAD_S = 2.0  #: clock seconds added to each motion bound (acceleration, settling)
MOVE_MARGIN = 2.0  #: factor on the computed travel time
HOME_BOUND_S = 60.0  #: clock seconds allowed for OR (a homing search may take a full turn)
TERMINATOR = b"\r\n"
#: serial line of the controller (§2c): 57600 8N1 with XON/XOFF; URL parameters override
LINE_DEFAULTS = {"baud": "57600", "flow": "xonxoff"}
LINE_PARAMS = ("baud", "parity", "bytesize", "stopbits", "flow")

#: TE error letter -> (error class, meaning, what to do); "@" is no error (§2c table).
ERROR_LETTERS: dict[str, tuple[type[DeviceError], str, str]] = {
    "A": (ProtocolError, "unknown message code or floating-point address", "check the command"),
    "B": (ProtocolError, "address not correct", "check ?address= in the device URL"),
    "C": (LimitViolation, "parameter missing or out of range", "give a value inside the range"),
    "D": (DeviceFault, "command not allowed", "check the controller state"),
    "E": (DeviceFault, "home sequence already started", "wait for homing to finish"),
    "F": (DeviceFault, "ESP stage name unknown", "check the stage cable and configuration"),
    "G": (LimitViolation, "displacement out of limits", "command a target inside SL..SR"),
    "H": (DeviceFault, "not allowed in NOT REFERENCED", "call home() first"),
    "I": (DeviceFault, "not allowed in CONFIGURATION", "leave configuration with PW0"),
    "J": (DeviceFault, "not allowed in DISABLE", "enable the controller (MM1)"),
    "K": (DeviceFault, "not allowed in READY", "the command needs another state"),
    "L": (DeviceFault, "not allowed in HOMING", "wait for homing to finish"),
    "M": (DeviceFault, "not allowed in MOVING", "wait for the move to finish or stop()"),
    "N": (LimitViolation, "current position out of software limit", "move back inside SL..SR"),
    "S": (DeviceTimeout, "communication time-out", "check the serial link"),
    "U": (DeviceFault, "EEPROM access error", "power-cycle the controller"),
    "V": (DeviceFault, "error during command execution", "check the stage"),
    "W": (ProtocolError, "command not allowed for PP version", "this controller is a PP"),
    "X": (ProtocolError, "command not allowed for CC version", "this controller is a CC"),
}

#: positioner-error bits of TS (SMC100 manual; pymeasure's bits 6..15 of the bit string)
POSITIONER_ERRORS: dict[int, str] = {
    0x0200: "80 W output power exceeded",
    0x0100: "DC voltage too low",
    0x0080: "wrong ESP stage",
    0x0040: "homing time-out",
    0x0020: "following error",
    0x0010: "short circuit detection",
    0x0008: "RMS current limit",
    0x0004: "peak current limit",
    0x0002: "positive end of run",
    0x0001: "negative end of run",
}

NOT_REFERENCED = frozenset({0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11})
CONFIGURATION = frozenset({0x14})
HOMING = frozenset({0x1E, 0x1F})
MOVING = frozenset({0x28})
READY = frozenset({0x32, 0x33, 0x34, 0x35})
DISABLE = frozenset({0x3C, 0x3D, 0x3E})
JOGGING = frozenset({0x46, 0x47})

_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def format_number(value: float) -> str:
    """A parameter as the controller reads it: fixed point, no exponent, no trailing zeros."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True, slots=True)
class ControllerState:
    """A decoded ``TS`` reply: positioner-error bits and the controller state code."""

    errors: int
    state: int

    @property
    def name(self) -> str:
        for group, label in (
            (NOT_REFERENCED, "NOT REFERENCED"),
            (CONFIGURATION, "CONFIGURATION"),
            (HOMING, "HOMING"),
            (MOVING, "MOVING"),
            (READY, "READY"),
            (DISABLE, "DISABLE"),
            (JOGGING, "JOGGING"),
        ):
            if self.state in group:
                return label
        return f"unknown state {self.state:02X}"

    def error_text(self) -> str:
        names = [text for bit, text in POSITIONER_ERRORS.items() if self.errors & bit]
        return ", ".join(names) if names else "no positioner error"

    @classmethod
    def parse(cls, data: str, *, device: str) -> ControllerState:
        if not re.fullmatch(r"[0-9A-Fa-f]{6}", data):
            raise ProtocolError(
                f"TS reply {data!r} is not 4 hex error digits + 2 hex state digits", device=device
            )
        return cls(errors=int(data[:4], 16), state=int(data[4:], 16))


class SMC100Rotator:
    """A rotation stage on an SMC100 controller; satisfies :class:`drivers.interfaces.Rotator`.

    Args:
        url: the device URL (for messages and provenance).
        clock: control-plane clock for polling and motion bounds (clock seconds).
        transport: an open transport (tests inject a scripted one); when None,
            :meth:`connect` opens ``transport_url`` (``visa://ASRL/dev/ttyUSB0::INSTR``).
        address: controller address 1..31 on the RS-485 link.
        reply_timeout_s: wall seconds for one reply.
    """

    def __init__(
        self,
        *,
        url: str,
        clock: Clock,
        transport: Transport | None = None,
        transport_url: str | None = None,
        address: int = 1,
        reply_timeout_s: float = REPLY_TIMEOUT_S,
    ) -> None:
        if not 1 <= address <= 31:
            raise DeviceURLError(f"{url!r}: SMC100 address must be 1..31, got {address}")
        if transport is None and transport_url is None:
            raise DeviceURLError(f"{url!r}: give a transport or a transport URL")
        self._url = url
        self._clock = clock
        self._transport_url = transport_url
        self._link = DeviceLink(
            transport if transport is not None else str(transport_url),
            url=url,
            timeout=reply_timeout_s,
            resync_on=(DeviceTimeout, ProtocolError),
        )
        self._addr = str(address)
        self._reply_timeout = reply_timeout_s
        self.identity = ""
        self.speed_deg_s = 0.0
        self.limits_deg = (-math.inf, math.inf)

    @classmethod
    def from_url(cls, url: DeviceURL, clock: Clock) -> SMC100Rotator:
        """``smc100+visa://ASRL/dev/ttyUSB0::INSTR?address=1&timeout_s=2``.

        ``address``: controller address 1..31; ``timeout_s``: wall seconds for one reply.
        An ``ASRL`` resource gets the controller's line settings, 57600 baud 8N1 with
        XON/XOFF, unless ``baud``, ``parity``, ``bytesize``, ``stopbits`` or ``flow``
        (none/xonxoff/rtscts) say otherwise; ``TCPIP::host::port::SOCKET`` takes none.
        """
        params = read_params(url)
        line = {k: url.params[k] for k in LINE_PARAMS if k in url.params}
        transport_url = url.transport_url
        if url.address.upper().startswith("ASRL"):
            line = LINE_DEFAULTS | line
        if line:
            transport_url += "?" + "&".join(f"{k}={v}" for k, v in line.items())
        return cls(
            url=url.raw,
            clock=clock,
            transport_url=transport_url,
            address=params.integer("address"),
            reply_timeout_s=params.number("timeout_s"),
        )

    @property
    def url(self) -> str:
        return self._url

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Open the resource; read identity, velocity (``VA?``) and software limits."""
        await self._link.open()
        try:
            self.identity = await self._query("ID?")
            self.speed_deg_s = self._number(await self._query("VA?"), "VA?")
            low = self._number(await self._query("SL?"), "SL?")
            high = self._number(await self._query("SR?"), "SR?")
        except BaseException:
            await self.close()
            raise
        if self.speed_deg_s <= 0 or not low < high:
            await self.close()
            raise ProtocolError(
                f"velocity {self.speed_deg_s} deg/s or limits [{low}, {high}] make no sense",
                device=self._url,
            )
        self.limits_deg = (low, high)
        state = await self.state()
        log.info(
            "smc100 %s: %s, %g deg/s, limits [%g, %g] deg, %s",
            self._url,
            self.identity,
            self.speed_deg_s,
            low,
            high,
            state.name,
        )

    async def close(self) -> None:
        await self._link.close()

    # ------------------------------------------------------------------ Rotator

    async def state(self) -> ControllerState:
        """Controller state and positioner errors (``TS``; reading clears the errors)."""
        return ControllerState.parse(await self._query("TS"), device=self._url)

    async def angle(self) -> float:
        """Current angle (deg, folded into [0, 360)) from ``TP``."""
        deg = self._number(await self._query("TP"), "TP") % 360.0
        return 0.0 if deg >= 360.0 else deg

    async def move_to(self, angle_deg: float, *, timeout: float | None = None) -> None:
        """Absolute move (``PA``) to the equivalent of ``angle_deg`` inside the limits.

        ``timeout`` (clock s) defaults to a bound from distance and ``VA``. Cancellation
        stops the stage (``ST``).
        """
        if not math.isfinite(angle_deg):
            raise LimitViolation(f"move_to({angle_deg}) is not a finite angle", device=self._url)
        current = self._number(await self._query("TP"), "TP")
        target = self.nearest_equivalent(angle_deg, current)
        bound = self.move_bound_s(target - current) if timeout is None else timeout
        await self._motion(f"PA{format_number(target)}", bound)

    async def home(self) -> None:
        """Reference the stage (``OR``) if NOT REFERENCED; then go to 0 deg.

        ``OR`` is only allowed in NOT REFERENCED (error K in READY), so a referenced stage
        simply moves to 0.
        """
        state = await self.state()
        if state.state in NOT_REFERENCED:
            await self._motion("OR", HOME_BOUND_S)
        elif state.state in DISABLE:
            raise DeviceFault(
                f"cannot home in {state.name} ({state.error_text()})",
                device=self._url,
                hint="enable the controller (MM1)",
            )
        await self.move_to(0.0)

    async def stop(self) -> None:
        """Stop the motion (``ST``) and check the error letter."""
        await self._command("ST")

    # ------------------------------------------------------------------ helpers

    def nearest_equivalent(self, angle_deg: float, current_deg: float) -> float:
        """``angle_deg`` + k*360 inside the software limits, nearest to ``current_deg``."""
        low, high = self.limits_deg
        base = angle_deg % 360.0
        lo_k = math.ceil((low - base) / 360.0) if math.isfinite(low) else -1
        hi_k = math.floor((high - base) / 360.0) if math.isfinite(high) else 1
        candidates = [base + 360.0 * k for k in range(lo_k, hi_k + 1)]
        if not candidates:
            raise LimitViolation(
                f"no angle equivalent to {angle_deg} deg lies inside the limits [{low}, {high}]",
                device=self._url,
                hint="command an angle the stage can reach; nothing was commanded",
            )
        return min(candidates, key=lambda c: abs(c - current_deg))

    def move_bound_s(self, distance_deg: float) -> float:
        """Clock seconds allowed for a move of ``distance_deg`` at ``VA``."""
        return MOVE_OVERHEAD_S + MOVE_MARGIN * abs(distance_deg) / self.speed_deg_s

    async def _motion(self, command: str, bound_s: float) -> None:
        """Send a motion command and poll ``TS`` until READY; stop it if interrupted."""

        async def move(motion: Motion) -> None:
            # (cancelled while sending: the command may have gone out, so it is stopped)
            motion.started()
            try:
                await self._command(command)
            except DeviceError:
                motion.at_rest()  # refused or unanswered: as before, nothing is stopped
                raise
            deadline = self._clock.now() + motion.bound_s
            while True:
                state = await self.state()
                if state.state in READY:
                    return
                if state.state not in MOVING | HOMING:
                    motion.at_rest()  # nothing left moving to stop
                    raise DeviceFault(
                        f"{command!r} ended in {state.name}: {state.error_text()}",
                        device=self._url,
                        hint="call home() if NOT REFERENCED; check the stage otherwise",
                    )
                if self._clock.now() >= deadline:
                    raise DeviceTimeout(
                        f"{command!r} did not finish within {motion.bound_s:.1f} s ({state.name})",
                        device=self._url,
                    )
                await self._clock.sleep(POLL_S)

        await guarded_move(
            repr(command),
            move,
            timeout_s=bound_s,
            stop=self._stop_and_settle,
            clock=self._clock,
            device=self._url,
            # backstop only: the poll loop's own deadline reports first (a poll may take
            # a query plus its TE fallback, each bounded by the reply timeout)
            grace_wall_s=4 * self._reply_timeout + POLL_S,
        )

    async def _stop_and_settle(self) -> None:
        """Stop an interrupted motion and wait (bounded) until the stage is at rest.

        The controller decelerates after ``ST`` and refuses ``PA`` meanwhile (error M in
        MOVING), so the next command must not go out before the state has left MOVING.
        """
        await self._command("ST")
        deadline = self._clock.now() + MOVE_OVERHEAD_S
        while (state := await self.state()).state in MOVING | HOMING:
            if self._clock.now() >= deadline:
                log.warning("smc100 %s: still %s after ST", self._url, state.name)
                return
            await self._clock.sleep(POLL_S)

    async def _command(self, command: str) -> None:
        """An action command (no reply) followed by ``TE``; a non-@ letter raises."""

        async def exchange() -> str:
            await self._write(command)
            return await self._exchange("TE")

        letter = await self._locked(exchange)
        self._check_error(letter, command)

    async def _query(self, query: str) -> str:
        """A query; returns the reply after the echoed ``<addr><CC>`` prefix."""

        async def exchange() -> str:
            try:
                return await self._exchange(query)
            except DeviceTimeout:
                # An unknown or refused query gets no answer; TE says why (§2c). Drop any
                # partial reply first so it cannot prefix the TE answer.
                await self._link.resync()
                try:
                    letter = await self._exchange("TE")
                except DeviceTimeout:
                    raise DeviceTimeout(
                        f"no reply to {query!r}, nor to the TE error query after it",
                        device=self._url,
                        hint="the controller does not answer: check power, cable, "
                        "baud rate (57600) and address",
                    ) from None
                self._check_error(letter, query)
                raise

        return await self._locked(exchange)

    async def _locked(self, exchange: Callable[[], Awaitable[T]]) -> T:
        """Run ``exchange`` through the link: locked, shielded from the caller's cancellation,
        input flushed after a timeout or a malformed reply."""
        return await self._link.exchange(lambda _t: exchange())

    async def _exchange(self, query: str) -> str:
        await self._write(query)
        prefix = f"{self._addr}{query[:2]}"
        reply = await self._read_line(f"a reply to {query!r}")
        if not reply.startswith(prefix):
            await self._link.resync()
            raise ProtocolError(
                f"reply {reply!r} to {query!r} does not start with {prefix!r}", device=self._url
            )
        return reply[len(prefix) :]

    def _check_error(self, reply: str, command: str) -> None:
        if reply == "@":
            return
        if reply not in ERROR_LETTERS:
            raise ProtocolError(
                f"TE after {command!r} answered {reply!r}; expected one error letter",
                device=self._url,
            )
        cls, meaning, hint = ERROR_LETTERS[reply]
        raise cls(f"{command!r} refused: error {reply}, {meaning}", device=self._url, hint=hint)

    def _require_open(self) -> Transport:
        return self._link.transport

    async def _write(self, command: str) -> None:
        data = f"{self._addr}{command}".encode("ascii") + TERMINATOR
        await self._require_open().write(data, timeout=self._reply_timeout)

    async def _read_line(self, what: str) -> str:
        transport = self._require_open()
        try:
            raw = await transport.read_until(TERMINATOR, timeout=self._reply_timeout, max_bytes=256)
        except DeviceTimeout:
            raise DeviceTimeout(
                f"no complete reply: waited for {what}",
                device=self._url,
                hint="check power, cable, baud rate (57600) and address",
            ) from None
        if raw.startswith(b"\x00"):
            # hvl_ccb: a NUL before the reply means the motor power was cut and restored.
            log.warning("smc100 %s: NUL in reply: controller power was cycled", self._url)
            raw = raw.lstrip(b"\x00")
        try:
            return raw.decode("ascii").removesuffix("\r\n").removesuffix("\n")
        except UnicodeDecodeError:
            await self._link.resync()
            raise ProtocolError(f"non-ASCII reply {raw!r} to {what}", device=self._url) from None

    def _number(self, text: str, query: str) -> float:
        if not _FLOAT.fullmatch(text.strip()):
            raise ProtocolError(f"{query} reply {text!r} is not a number", device=self._url)
        return float(text)
