"""Thorlabs Elliptec ELL14 rotation mounts on one multidrop serial line (protocols.md §2a).

Wire format, as the emulator implements it:

- Host -> device: ``<addr><cmd><data>``: ``addr`` one hex digit ``0``-``F``, ``cmd`` two
  lower-case characters, ``data`` fixed-length hex (upper case; lower case accepted). There is
  **no terminator**: commands are delimited by the known data length of each command
  (:data:`DATA_LEN`). CR, LF and any other byte that cannot start a command are skipped, so
  drivers that append ``\\r`` work too.
- Device -> host: ``<addr><CMD><data>\\r\\n`` with the command in upper case.
- Positions are 32-bit two's complement encoder counts, 8 hex digits.
- Only the addressed device answers; a command for an address with no device is ignored.
- A command whose data does not arrive within :data:`BYTE_TIMEOUT_S` is dropped and answered
  ``GS01`` (communication timeout); an unknown command ``GS03``; a bad value ``GS04``.
- ``ma``/``mr``/``ho``/``fw``/``bw`` answer ``PO<pos>`` only **when the motion ends**; a stall
  (fault) ends it with ``GS02`` (mechanical timeout). While the stage moves ``gs`` answers
  ``GS09`` (busy; Micro-Manager polls ``gs`` this way) and a new move is refused with ``GS09``
  (⚠️ what the device does with a move during a move is not verified). Other queries are
  answered at once.
- Once ``PO`` has been sent the stage is idle: the next move is accepted at once, so a client
  may send home-then-move back to back (roesel's ``elliptec`` does). No source gives a
  minimum gap after a move; the only hint is a pylablib comment ("if the move command is issued
  too soon after a previous one, it can move to 0 instead"; it sleeps 0.1 s before ``ma``/
  ``mr``, not before ``ho``), with no threshold, so the emulator does not model it and the
  driver keeps pylablib's 0.1 s pause on its side.
- An error status stays latched and is returned (then cleared) by the next ``gs``, as
  pylablib describes.
- ``st`` (⚠️ not in the verified command set): during a move the interrupted move answers
  ``PO`` at the stop position and ``st`` itself gets no separate reply; when idle it answers
  ``GS00``.
- ``fw``/``bw`` move by the jog step (``sj``/``gj``); a jog step of 0 jogs continuously until
  ``st``.
- ``in``: ``IN`` + model ``0E`` + serial (8) + year (4 decimal) + firmware (2 hex) + hardware
  (2: thread ``0`` metric, release) + travel (4 hex, 360 deg) + pulses per travel (8 hex).
- ``error_reply`` fault: every request is answered ``GS`` + ``params["code"]`` (default 0x0B,
  motor error).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from drivers.clock import Clock
from sim_hardware.devices.rotator import MoveOutcome, RotatorModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.replies import ReplyWriter

log = logging.getLogger(__name__)

#: hex data characters following each command (host -> device)
DATA_LEN: dict[str, int] = {
    "in": 0,
    "gs": 0,
    "gp": 0,
    "ma": 8,
    "mr": 8,
    "ho": 1,
    "go": 0,
    "so": 8,
    "gj": 0,
    "sj": 8,
    "fw": 0,
    "bw": 0,
    "gv": 0,
    "sv": 2,
    "ca": 1,
    "us": 0,
    "st": 0,
    "i1": 0,
    "i2": 0,
    "f1": 4,
    "b1": 4,
    "f2": 4,
    "b2": 4,
    "s1": 0,
    "s2": 0,
}

BYTE_TIMEOUT_S = 0.1  #: clock seconds allowed between the bytes of one command
MIN_BYTE_WAIT_WALL_S = 0.05  #: ... but at least this many wall seconds

# GS status codes (protocols.md §2a)
OK, COMM_TIMEOUT, MECH_TIMEOUT, CMD_ERROR, VALUE_RANGE, BUSY, MOTOR_ERROR = 0, 1, 2, 3, 4, 9, 11

_HEX = frozenset(b"0123456789ABCDEFabcdef")
_ADDR = frozenset(b"0123456789ABCDEF")
_CONTINUOUS_JOG_DEG = 1.0e6  #: "continuous" jog target distance (stopped by ``st``)


def to_hex32(counts: int) -> str:
    """Signed counts as 8 upper-case hex digits (two's complement, wrapped to 32 bits)."""
    return f"{counts % 2**32:08X}"


def from_hex32(text: str) -> int:
    """8 hex digits (two's complement) to signed counts."""
    v = int(text, 16)
    return (v + 2**31) % 2**32 - 2**31


@dataclass
class ElliptecInfo:
    """Identity fields of the ``in`` reply."""

    serial: str = "11400001"
    year: int = 2023
    firmware: int = 0x17
    hardware: str = "01"  #: thread char (0 metric) + hardware release
    travel_deg: int = 360


class ElliptecDevice:
    """One ELL14 on the bus: the protocol state around a :class:`RotatorModel`."""

    def __init__(self, model: RotatorModel, info: ElliptecInfo | None = None) -> None:
        self.model = model
        self.info = info or ElliptecInfo()
        self.jog_counts = round(5.0 * model.counts_per_deg)
        self.velocity_pct = 100
        self.latched = OK
        self.move_task: asyncio.Task[None] | None = None

    def busy(self) -> bool:
        return self.model.is_moving()

    def info_reply(self) -> str:
        i = self.info
        return (
            f"0E{i.serial[:8]:>08}{i.year:04d}{i.firmware:02X}{i.hardware[:2]:>02}"
            f"{i.travel_deg:04X}{self.model.counts_per_turn:08X}"
        )


class ElliptecBus:
    """The protocol handler for a multidrop line of ELL14 devices (a pty ``Handler``).

    Args:
        clock: time source (byte timeout).
        devices: bus address (0-15) -> device.
        faults: the line's fault schedule (``error_reply`` is applied here; the transport
            faults by the server's reply writer).
    """

    def __init__(
        self,
        clock: Clock,
        devices: dict[int, ElliptecDevice],
        *,
        faults: FaultInjector | None = None,
    ) -> None:
        bad = [a for a in devices if not 0 <= a <= 15]
        if bad:
            raise ValueError(f"Elliptec bus addresses must be 0..15, got {bad}")
        self.clock = clock
        self.devices = dict(devices)
        self.faults = faults

    async def __call__(self, reader: asyncio.StreamReader, writer: ReplyWriter) -> None:
        """Serve requests until end of stream."""
        buf = bytearray()
        try:
            while True:
                if not await self._fill(reader, buf, 1, None):
                    return
                if buf[0] not in _ADDR:
                    del buf[0]  # CR/LF terminators, noise: skip until a possible address
                    continue
                if not await self._fill(reader, buf, 3, BYTE_TIMEOUT_S):
                    self._reply(writer, buf[0], "GS", f"{COMM_TIMEOUT:02X}")
                    buf.clear()
                    continue
                cmd = buf[1:3].decode("ascii", "replace")
                if not (cmd.islower() or (cmd[0].islower() and cmd[1].isdigit())):
                    del buf[0]  # not a command after all: resynchronise on the next byte
                    continue
                n = DATA_LEN.get(cmd, 0)
                if not await self._fill(reader, buf, 3 + n, BYTE_TIMEOUT_S):
                    self._reply(writer, buf[0], "GS", f"{COMM_TIMEOUT:02X}")
                    buf.clear()
                    continue
                addr, data = buf[0], bytes(buf[3 : 3 + n])
                del buf[: 3 + n]
                self._dispatch(writer, int(chr(addr), 16), cmd, data)
        finally:
            for dev in self.devices.values():
                if dev.move_task is not None:
                    dev.move_task.cancel()

    async def _fill(
        self, reader: asyncio.StreamReader, buf: bytearray, n: int, timeout: float | None
    ) -> bool:
        """Read until ``buf`` holds ``n`` bytes; False at end of stream or timeout."""
        while len(buf) < n:
            try:
                if timeout is None:
                    chunk = await reader.read(4096)
                else:
                    # never below MIN_BYTE_WAIT_WALL_S: a high warp rate must not split a
                    # command the host wrote in one go
                    wall = max(self.clock.to_wall(timeout), MIN_BYTE_WAIT_WALL_S)
                    chunk = await asyncio.wait_for(reader.read(4096), wall)
            except TimeoutError:
                return False
            if not chunk:
                return False
            buf += chunk
        return True

    def _reply(self, writer: ReplyWriter, addr: int | str, cmd: str, data: str) -> None:
        a = chr(addr) if isinstance(addr, int) else addr
        writer.write(f"{a}{cmd}{data}\r\n".encode("ascii"))

    def _status(self, writer: ReplyWriter, addr: int, dev: ElliptecDevice, code: int) -> None:
        if code != OK:
            dev.latched = code
        self._reply(writer, f"{addr:X}", "GS", f"{code:02X}")

    def _dispatch(self, writer: ReplyWriter, addr: int, cmd: str, raw: bytes) -> None:
        dev = self.devices.get(addr)
        if dev is None:
            return  # nobody at this address: the line stays silent
        a = f"{addr:X}"
        if self.faults is not None and (err := self.faults.active(FaultKind.ERROR_REPLY)):
            self._status(writer, addr, dev, int(err.params.get("code", MOTOR_ERROR)))
            return
        if cmd not in DATA_LEN:
            self._status(writer, addr, dev, CMD_ERROR)
            return
        if any(b not in _HEX for b in raw):
            self._status(writer, addr, dev, CMD_ERROR)
            return
        data = raw.decode("ascii").upper()
        model = dev.model
        if cmd == "in":
            self._reply(writer, a, "IN", dev.info_reply())
        elif cmd == "gs":
            code = dev.latched or (BUSY if dev.busy() else OK)
            dev.latched = OK
            self._reply(writer, a, "GS", f"{code:02X}")
        elif cmd == "gp":
            self._reply(writer, a, "PO", to_hex32(model.encoder_counts()))
        elif cmd in ("ma", "mr", "ho", "fw", "bw"):
            self._move(writer, addr, dev, cmd, data)
        elif cmd == "st":
            if model.is_moving():
                model.stop()  # the move task answers PO at the stop position
            else:
                self._status(writer, addr, dev, OK)
        elif cmd == "go":
            self._reply(
                writer, a, "HO", to_hex32(round(model.home_offset_deg * model.counts_per_deg))
            )
        elif cmd == "so":
            model.home_offset_deg = from_hex32(data) / model.counts_per_deg
            self._status(writer, addr, dev, OK)
        elif cmd == "gj":
            self._reply(writer, a, "GJ", to_hex32(dev.jog_counts))
        elif cmd == "sj":
            dev.jog_counts = from_hex32(data)
            self._status(writer, addr, dev, OK)
        elif cmd == "gv":
            self._reply(writer, a, "GV", f"{dev.velocity_pct:02X}")
        elif cmd == "sv":
            pct = int(data, 16)
            if not 1 <= pct <= 100:
                self._status(writer, addr, dev, VALUE_RANGE)
                return
            dev.velocity_pct = pct
            model.set_speed_fraction(pct / 100.0)
            self._status(writer, addr, dev, OK)
        elif cmd == "ca":
            new = int(data, 16)
            if new != addr and new in self.devices:
                self._status(writer, addr, dev, VALUE_RANGE)
                return
            del self.devices[addr]
            self.devices[new] = dev
            self._status(writer, new, dev, OK)  # answered from the new address
        elif cmd in ("i1", "i2"):
            # loop on, motor on, current 0x0700 (/1866 A), ramps, fwd/bwd period (14.74 MHz/p)
            self._reply(writer, a, cmd.upper(), "11" + "0700" + "FFFF" + "FFFF" + "0091" + "0091")
        else:  # us, f1/b1/f2/b2, s1/s2: accepted and acknowledged
            self._status(writer, addr, dev, OK)

    def _move(
        self, writer: ReplyWriter, addr: int, dev: ElliptecDevice, cmd: str, data: str
    ) -> None:
        if dev.busy():
            self._status(writer, addr, dev, BUSY)
            return
        model = dev.model
        if cmd == "ma":
            model.move_to_counts(from_hex32(data))
        elif cmd == "mr":
            model.move_by(from_hex32(data) / model.counts_per_deg)
        elif cmd == "ho":
            model.home(1 if data == "0" else -1)  # 0: clockwise (+), 1: counter-clockwise
        else:
            sign = 1.0 if cmd == "fw" else -1.0
            step = dev.jog_counts / model.counts_per_deg if dev.jog_counts else _CONTINUOUS_JOG_DEG
            model.move_by(sign * step)
        dev.move_task = asyncio.get_running_loop().create_task(self._finish_move(writer, addr, dev))

    async def _finish_move(self, writer: ReplyWriter, addr: int, dev: ElliptecDevice) -> None:
        outcome = await dev.model.wait_idle()
        # The device may have been re-addressed meanwhile; answer from where it is now.
        here = next((a for a, d in self.devices.items() if d is dev), addr)
        if outcome is MoveOutcome.STALLED:
            self._status(writer, here, dev, MECH_TIMEOUT)
        else:
            self._reply(writer, f"{here:X}", "PO", to_hex32(dev.model.encoder_counts()))
