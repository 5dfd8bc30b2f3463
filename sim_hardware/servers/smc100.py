"""Newport SMC100 (CC) motion controllers with rotation stages, on one serial line (§2c).

Wire format, as the emulator implements it (57600 8N1 XON/XOFF on the real line; a pty
ignores line settings):

- Requests ``<addr><CC>[param]`` terminated by CR LF (a lone CR or LF is accepted), ``addr``
  1-31 (an address without a controller is silent; ``0`` broadcasts set commands, no reply).
- Set commands are **silent**; a rejected command records an error letter that ``TE``
  returns (``@`` = none) and clears. Queries answer ``<addr><CC><value>\\r\\n``:
  ``1TP?`` -> ``1TP45.00000``, ``1TE`` -> ``1TEC``, ``1TS`` -> ``1TS000033``.
- ``TS``: 4 hex positioner-error bits then 2 hex state. Error bits (SMC100 manual order):
  0x0001 negative end of run, 0x0002 positive end of run, 0x0004 peak current, 0x0008 RMS
  current, 0x0010 short circuit, 0x0020 following error (set by a motor stall), 0x0040 homing
  time-out, ... Reading ``TS`` clears them.
- State machine: power-up NOT REFERENCED (0A); ``OR`` homes (1E) then READY (32); ``PA``/
  ``PR`` only in READY (else H in NOT REFERENCED, J in DISABLE, L in HOMING, M in MOVING),
  MOVING (28) then READY (33); ``ST`` stops a move (READY 33) or a homing (NOT REFERENCED
  0B); ``MM0``/``MM1`` enter/leave DISABLE (3C/34); ``RS`` resets to 0A. A stall ends the move
  in DISABLE from MOVING (3D) with the following-error bit.
- Errors: unknown command A, parameter missing or ``PA`` outside ``SL``/``SR`` C, ``PR``
  outside the limits G, ``OR`` when not NOT REFERENCED K (READY) / M (MOVING) / E (HOMING).
- ``error_reply`` fault: every command is rejected with ``params["code"]`` as error letter
  index (default V, error during command execution) and queries answer nothing.

Supported: PA PR TP TS TE OR ST RS MM ID VE SL SR VA AC TH (``?`` optional on queries).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re

from drivers.clock import Clock
from sim_hardware.devices.rotator import MoveOutcome, RotatorModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.replies import ReplyWriter

log = logging.getLogger(__name__)

MAX_LINE = 256  #: longer unterminated input is discarded
FOLLOWING_ERROR = 0x0020
_REQUEST = re.compile(r"^\s*(\d{1,2})([A-Za-z]{2})(.*?)\s*$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class State(enum.Enum):
    """SMC100 controller states with their ``TS`` codes."""

    NOT_REF_RESET = "0A"
    NOT_REF_HOMING = "0B"
    NOT_REF_DISABLE = "0D"
    HOMING = "1E"
    MOVING = "28"
    READY_HOMING = "32"
    READY_MOVING = "33"
    READY_DISABLE = "34"
    DISABLE_READY = "3C"
    DISABLE_MOVING = "3D"

    @property
    def ready(self) -> bool:
        return self.value in ("32", "33", "34")

    @property
    def not_referenced(self) -> bool:
        return self.value in ("0A", "0B", "0D")

    @property
    def disabled(self) -> bool:
        return self.value in ("3C", "3D")


class SMC100Controller:
    """One SMC100 controller driving a rotation stage (:class:`RotatorModel`).

    Args:
        model: the stage.
        min_deg / max_deg: software limits (``SL`` / ``SR``).
        stage: the stage name reported by ``ID``.
    """

    def __init__(
        self,
        model: RotatorModel,
        *,
        min_deg: float = -170.0,
        max_deg: float = 170.0,
        stage: str = "URS75BCC",
    ) -> None:
        self.model = model
        self.min_deg = min_deg
        self.max_deg = max_deg
        self.stage = stage
        self.state = State.NOT_REF_RESET
        self.error = "@"
        self.positioner_bits = 0
        self.target = 0.0  #: target of the current or latest move (deg)
        self._motion: asyncio.Task[None] | None = None

    def start_motion(self, homing: bool) -> None:
        self.state = State.HOMING if homing else State.MOVING
        self._motion = asyncio.get_running_loop().create_task(self._watch(homing))

    async def _watch(self, homing: bool) -> None:
        outcome = await self.model.wait_idle()
        if outcome is MoveOutcome.STALLED:
            self.positioner_bits |= FOLLOWING_ERROR
            self.state = State.NOT_REF_HOMING if homing else State.DISABLE_MOVING
        elif outcome is MoveOutcome.STOPPED:
            self.state = State.NOT_REF_HOMING if homing else State.READY_MOVING
        else:
            self.state = State.READY_HOMING if homing else State.READY_MOVING

    def close(self) -> None:
        """Forget the motion in progress (reset or shutdown)."""
        if self._motion is not None:
            self._motion.cancel()
            self._motion = None


class SMC100Line:
    """Protocol handler (pty ``Handler``) for SMC100 controllers on one RS-232/RS-485 line.

    Args:
        clock: time source.
        controllers: address (1-31) -> controller.
        faults: the line's fault schedule (``error_reply`` handled here).
    """

    def __init__(
        self,
        clock: Clock,
        controllers: dict[int, SMC100Controller],
        *,
        faults: FaultInjector | None = None,
    ) -> None:
        bad = [a for a in controllers if not 1 <= a <= 31]
        if bad:
            raise ValueError(f"SMC100 addresses must be 1..31, got {bad}")
        self.clock = clock
        self.controllers = dict(controllers)
        self.faults = faults

    async def __call__(self, reader: asyncio.StreamReader, writer: ReplyWriter) -> None:
        buf = bytearray()
        try:
            while True:
                chunk = await reader.read(4096)
                if not chunk:
                    return
                buf += chunk
                while True:
                    cut = min((i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0), default=-1)
                    if cut < 0:
                        break
                    line = bytes(buf[:cut])
                    del buf[: cut + 1]
                    if line.strip():
                        self.handle_line(line, writer)
                if len(buf) > MAX_LINE:
                    buf.clear()
        finally:
            for ctl in self.controllers.values():
                ctl.close()

    def handle_line(self, line: bytes, writer: ReplyWriter) -> None:
        """Handle one request line (without terminator)."""
        text = line.decode("ascii", "replace")
        m = _REQUEST.match(text)
        if m is None:
            log.debug("smc100: unparseable request %r ignored", line)
            return
        addr, cc, param = int(m.group(1)), m.group(2).upper(), m.group(3).strip()
        targets = list(self.controllers.items()) if addr == 0 else []
        if addr != 0 and addr in self.controllers:
            targets = [(addr, self.controllers[addr])]
        for a, ctl in targets:
            reply = self._command(ctl, cc, param, query_allowed=addr != 0)
            if reply is not None:
                writer.write(f"{a}{cc}{reply}\r\n".encode("ascii"))

    def _command(
        self, ctl: SMC100Controller, cc: str, param: str, *, query_allowed: bool
    ) -> str | None:
        """Execute one command; returns the reply value for a query, None for silence."""
        if self.faults is not None and (err := self.faults.active(FaultKind.ERROR_REPLY)):
            ctl.error = "ABCDEFGHIJKLMNSUVWX"[int(err.params.get("code", 16)) % 19]
            return None
        query = param in ("", "?")
        model = ctl.model
        if cc == "TP" and query:
            return f"{model.position_deg():.5f}" if query_allowed else None
        if cc == "TS" and query:
            bits, ctl.positioner_bits = ctl.positioner_bits, 0
            return f"{bits:04X}{ctl.state.value}" if query_allowed else None
        if cc == "TE" and query:
            letter, ctl.error = ctl.error, "@"
            return letter if query_allowed else None
        if cc == "ID" and query:
            return f"{ctl.stage}_EMULATED" if query_allowed else None
        if cc == "VE" and query:
            return " SMC_CC - Controller-driver version 3. 0. 0 (emulated)"
        if cc in ("SL", "SR", "VA", "AC") and param == "?":
            value = {
                "SL": ctl.min_deg,
                "SR": ctl.max_deg,
                "VA": model.max_speed_deg_s * model.speed_fraction,
                "AC": model.accel_deg_s2,
            }[cc]
            return f"{value:g}"
        if cc == "TH" and query:
            end = model.move_end_time()
            return f"{model.position_deg() if end is None else ctl.target:.5f}"
        self._set(ctl, cc, param)
        return None

    def _set(self, ctl: SMC100Controller, cc: str, param: str) -> None:
        model = ctl.model
        value: float | None = float(param) if _NUMBER.match(param) else None
        if cc in ("PA", "PR"):
            if value is None:
                ctl.error = "C"
                return
            letter = _motion_refusal(ctl.state)
            if letter:
                ctl.error = letter
                return
            target = value if cc == "PA" else model.position_deg() + value
            if not ctl.min_deg <= target <= ctl.max_deg:
                ctl.error = "C" if cc == "PA" else "G"
                return
            model.move_to(target)
            ctl.target = target
            ctl.start_motion(homing=False)
        elif cc == "OR":
            if not ctl.state.not_referenced:
                ctl.error = {State.HOMING: "E", State.MOVING: "M"}.get(ctl.state, "K")
                if ctl.state.disabled:
                    ctl.error = "J"
                return
            model.home(1)
            ctl.target = 0.0
            ctl.start_motion(homing=True)
        elif cc == "ST":
            model.stop()
        elif cc == "RS":
            model.stop()
            ctl.close()
            ctl.state = State.NOT_REF_RESET
            model.lose_reference()
        elif cc == "MM":
            if value == 0 and ctl.state.ready:
                ctl.state = State.DISABLE_READY
            elif value == 1 and ctl.state.disabled:
                ctl.state = State.READY_DISABLE
            elif value not in (0, 1):
                ctl.error = "C"
            else:
                ctl.error = "H" if ctl.state.not_referenced else "D"
        elif cc in ("SL", "SR"):
            if value is None:
                ctl.error = "C"
            elif cc == "SL":
                ctl.min_deg = value
            else:
                ctl.max_deg = value
        elif cc == "VA":
            top = model.max_speed_deg_s
            if value is None or not 0 < value <= top:
                ctl.error = "C"
            else:
                model.set_speed_fraction(value / top)
        else:
            ctl.error = "A"


def _motion_refusal(state: State) -> str:
    """Error letter for a move commanded in ``state`` ("" when allowed)."""
    if state.ready:
        return ""
    if state.not_referenced:
        return "H"
    if state.disabled:
        return "J"
    if state is State.HOMING:
        return "L"
    return "M"
