"""Thorlabs Elliptec ELL14 rotation mount on its serial bus (protocols.md §2a).

Wire facts this driver depends on (pylablib / roesel / itom, cross-checked in §2a):

- 9600 8N1, multidrop bus, addresses ``0``–``F``. Requests are ``<addr><cmd><data>`` with a
  lower-case two-letter command and fixed-length upper-case hex data and **no terminator**;
  replies are ``<addr><CMD><data>\\r\\n`` with the command in upper case.
- Positions are 32-bit two's complement counts, 8 hex digits. Counts per degree come from the
  ``in`` reply (``pulses / travel``); the sources disagree on ELL14's pulses per turn, so the
  driver never assumes a value.
- ``ma``/``ho`` answer only when the motion has ended: ``PO`` + position, or ``GS`` + a status
  code on failure. ``BO``/``BS`` are background messages the device may send at any time; they
  are skipped.
- A move issued too soon after the previous one can go to 0 instead (a comment in pylablib,
  which sleeps 0.1 s before ``ma``/``mr``; no Thorlabs source consulted gives a minimum gap);
  the driver waits :data:`MOVE_PAUSE_S` after each move before the next.
- After a non-zero status the fault is latched until ``gs`` is queried again (pylablib), so the
  driver re-queries ``gs`` once before raising.

Cancellation safety comes from the shared :class:`~drivers.transport.link.DeviceLink`: one
exchange runs at a time under its lock, in a task shielded from the caller's cancellation, so a
cancelled caller never leaves a reply in the input buffer for the next command; after an error
the input is flushed before the lock is released. A move is one exchange (its only reply comes
at the end of the motion) run through :func:`drivers.motion.guarded_move`: a cancelled move is
stopped (``st``) and its final reply consumed before the cancellation propagates; a move
cancelled before its request went out (waiting for the lock or the pause) is simply not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from dataclasses import dataclass

from drivers.clock import Clock
from drivers.errors import (
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    DeviceURLError,
    LimitViolation,
    NotConnected,
    ProtocolError,
)
from drivers.motion import Motion, guarded_move
from drivers.registry import DeviceURL, read_params
from drivers.transport.base import Transport
from drivers.transport.link import DeviceLink

log = logging.getLogger(__name__)

MOVE_PAUSE_S = 0.1  #: clock seconds between the end of one move and the next (pylablib)
DEFAULT_SPEED_DEG_S = 45.0  #: conservative ELL14 speed for move bounds (datasheet max ~430)
MOVE_OVERHEAD_S = 1.0  #: clock seconds added to every move bound (reply, settling)
MOVE_MARGIN = 2.0  #: factor on the computed travel time of a move
REPLY_TIMEOUT_S = 2.0  #: wall seconds for an immediate reply (queries)
STOP_STATUS_WAIT_S = 0.05  #: wall seconds to catch a GS that may follow a stopped move's PO

#: reply command -> length of its hex data (pylablib's validation table)
REPLY_LENGTHS: dict[str, int] = {
    "IN": 30,
    "GS": 2,
    "PO": 8,
    "HO": 8,
    "GJ": 8,
    "GV": 2,
    "BS": 2,
    "BO": 8,
    "I1": 22,
    "I2": 22,
}
BACKGROUND = frozenset({"BO", "BS"})

_HEX = re.compile(r"[0-9A-F]*")


def _status_error(code: int) -> tuple[type[DeviceError], str, str]:
    """Error class, meaning and hint for a non-zero ``GS`` status code (§2a table)."""
    table: dict[int, tuple[type[DeviceError], str, str]] = {
        1: (DeviceTimeout, "communication timeout", "check the serial link and retry"),
        2: (DeviceTimeout, "mechanical timeout", "the stage did not reach the target; check it"),
        3: (ProtocolError, "command error or not supported", "this model lacks the command"),
        4: (LimitViolation, "value out of range", "command a position inside the travel"),
        5: (DeviceFault, "module isolated", "re-enable the module on the bus"),
        6: (DeviceFault, "module out of isolation", "the module left isolation; retry"),
        7: (DeviceFault, "initialisation error", "power-cycle the stage"),
        8: (DeviceFault, "thermal error", "let the motor cool down"),
        9: (DeviceFault, "busy", "wait for the current motion to finish"),
        10: (DeviceFault, "sensor error", "the position sensor failed; service the stage"),
        11: (DeviceFault, "motor error", "the motor failed; service the stage"),
        12: (LimitViolation, "out of range", "command a position inside the travel"),
        13: (DeviceFault, "over-current", "the motor drew too much current; check for a jam"),
    }
    return table.get(code, (DeviceFault, f"unknown status code {code}", "see the ELLx manual"))


def counts_to_hex(counts: int) -> str:
    """Two's complement 32-bit ``counts`` as 8 upper-case hex digits."""
    if not -(2**31) <= counts < 2**31:
        raise ValueError(f"{counts} counts do not fit a signed 32-bit position")
    return f"{counts % 2**32:08X}"


def hex_to_counts(text: str) -> int:
    """8 hex digits (two's complement 32-bit) to a signed count."""
    value = int(text, 16)
    return (value + 2**31) % 2**32 - 2**31


@dataclass(frozen=True, slots=True)
class ElliptecInfo:
    """The fields of the ``in`` reply that the driver uses."""

    model: int  #: 0x0E for ELL14
    serial: str
    year: str
    firmware: int
    travel: int  #: degrees per full travel (360 for rotary mounts)
    pulses: int  #: encoder counts over ``travel``

    @property
    def counts_per_deg(self) -> float:
        return self.pulses / self.travel

    @classmethod
    def parse(cls, data: str, *, device: str) -> ElliptecInfo:
        """Decode the 30 characters after ``IN``: model, serial, year, fw, hw, travel, pulses."""
        fields = {
            "model": data[0:2],
            "firmware": data[14:16],
            "travel": data[18:22],
            "pulses": data[22:30],
        }
        for name, text in fields.items():
            if not _HEX.fullmatch(text):
                raise ProtocolError(
                    f"'in' reply field {name} {text!r} is not hex (reply data {data!r})",
                    device=device,
                )
        info = cls(
            model=int(data[0:2], 16),
            serial=data[2:10],
            year=data[10:14],
            firmware=int(data[14:16], 16),
            travel=int(data[18:22], 16),
            pulses=int(data[22:30], 16),
        )
        if info.travel <= 0 or info.pulses <= 0:
            raise ProtocolError(
                f"'in' reply gives travel {info.travel} and pulses {info.pulses}; both must be > 0",
                device=device,
            )
        return info


class ElliptecRotator:
    """An ELL14 rotation mount on one bus address; satisfies :class:`drivers.interfaces.Rotator`.

    Args:
        url: the device URL (for messages and provenance).
        clock: control-plane clock; move bounds and the pause between moves are clock seconds.
        transport: an already-open transport (tests inject a scripted one); when None,
            :meth:`connect` opens ``transport_url``.
        transport_url: where to open the serial line (``serial:///dev/ttyUSB0``).
        address: bus address 0..15.
        speed_deg_s: speed used to bound a move's duration (deg/s, clock time).
        reply_timeout_s: wall seconds allowed for an immediate reply.
    """

    def __init__(
        self,
        *,
        url: str,
        clock: Clock,
        transport: Transport | None = None,
        transport_url: str | None = None,
        address: int = 0,
        speed_deg_s: float = DEFAULT_SPEED_DEG_S,
        reply_timeout_s: float = REPLY_TIMEOUT_S,
    ) -> None:
        if not 0 <= address <= 15:
            raise DeviceURLError(f"{url!r}: Elliptec address must be 0..F, got {address}")
        if not speed_deg_s > 0:
            raise DeviceURLError(f"{url!r}: speed must be > 0 deg/s, got {speed_deg_s}")
        if transport is None and transport_url is None:
            raise DeviceURLError(f"{url!r}: give a transport or a transport URL")
        self._url = url
        self._clock = clock
        self._link = DeviceLink(
            transport if transport is not None else str(transport_url),
            url=url,
            timeout=reply_timeout_s,
        )
        self._addr = f"{address:X}"
        self._speed = speed_deg_s
        self._reply_timeout = reply_timeout_s
        self._info: ElliptecInfo | None = None
        self._last_counts: int | None = None  #: position from the latest PO reply
        self._last_move_end: float | None = None  #: clock time the previous move ended
        self._moving = False
        self._stop_sent = False  #: an ``st`` went out during the current move

    @classmethod
    def from_url(cls, url: DeviceURL, clock: Clock) -> ElliptecRotator:
        """``elliptec+serial:///dev/ttyUSB0?address=0&speed=45&timeout_s=2``.

        ``address``: bus address (one hex digit); ``speed``: deg/s used to bound a move;
        ``timeout_s``: wall seconds for an immediate reply.
        """
        params = read_params(url)
        return cls(
            url=url.raw,
            clock=clock,
            transport_url=url.transport_url,
            address=params.integer("address"),
            speed_deg_s=params.number("speed"),
            reply_timeout_s=params.number("timeout_s"),
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return self._url

    @property
    def info(self) -> ElliptecInfo:
        """Identity and scale read from ``in`` at :meth:`connect`."""
        if self._info is None:
            raise NotConnected("not connected", device=self._url, hint="call connect() first")
        return self._info

    async def connect(self) -> None:
        """Open the line and read ``in`` (model, counts per turn)."""
        await self._link.open()
        _, data = await self._exchange("in", expect=("IN",))
        self._info = ElliptecInfo.parse(data, device=self._url)
        log.info(
            "elliptec %s: model %02X serial %s, %d counts per %d deg",
            self._url,
            self._info.model,
            self._info.serial,
            self._info.pulses,
            self._info.travel,
        )

    async def close(self) -> None:
        self._info = None
        await self._link.close()

    # ------------------------------------------------------------------ Rotator

    async def angle(self) -> float:
        """Current angle (deg, [0, 360)) from ``gp``."""
        _, data = await self._exchange("gp", expect=("PO",))
        return self._counts_to_deg(self._position(data))

    async def move_to(self, angle_deg: float, *, timeout: float | None = None) -> None:
        """Absolute move (``ma``) to ``angle_deg`` mod 360; returns when the ``PO`` reply comes.

        ``timeout`` (clock s) defaults to a bound from the distance and the configured speed.
        Cancellation (or a failed reply) stops the stage with ``st``.
        """
        if not math.isfinite(angle_deg):
            raise LimitViolation(
                f"move_to({angle_deg}) is not a finite angle", device=self._url, hint="give degrees"
            )
        info = self.info
        target = round((angle_deg % 360.0) * info.counts_per_deg) % info.pulses
        if self._last_counts is None:
            distance = float(info.travel)
        else:
            distance = abs(target - self._last_counts) / info.counts_per_deg
        await self._move(f"ma{counts_to_hex(target)}", distance, timeout)

    async def home(self) -> None:
        """Home (``ho0``, clockwise) and return once at the home reference (angle 0)."""
        await self._move("ho0", float(self.info.travel), None)

    async def stop(self) -> None:
        """Stop the motor (``st``). During a move the moving call receives the final reply."""
        self._link.transport  # noqa: B018 - raises NotConnected before anything is sent
        if self._moving:
            self._stop_sent = True
            await self._write("st")
            return
        await self._exchange("st", expect=("GS",))

    # ------------------------------------------------------------------ internals

    def move_bound_s(self, distance_deg: float) -> float:
        """Clock seconds allowed for a move of ``distance_deg`` at the configured speed."""
        return MOVE_OVERHEAD_S + MOVE_MARGIN * abs(distance_deg) / self._speed

    async def _exchange(self, request: str, *, expect: tuple[str, ...]) -> tuple[str, str]:
        """One query through the link (locked, shielded, input flushed after an error)."""
        return await self._link.exchange(lambda _t: self._query(request, expect=expect))

    async def _move(self, request: str, distance_deg: float, timeout: float | None) -> None:
        """Run a move to its end as one exchange; a cancelled caller stops it first.

        The ELL14 answers a move only when it ends, so the stop of an interrupted move
        happens inside that exchange (:meth:`_run_move`, :meth:`_stop_cancelled_move`),
        where the final reply is read, not after it.
        """

        async def move(motion: Motion) -> None:
            await self._link.exchange(
                lambda _t: self._run_move(request, motion.bound_s),
                prepare=self._pause_after_previous_move,
                on_cancel=self._stop_cancelled_move,
            )

        await guarded_move(
            f"move {request!r}",
            move,
            timeout_s=self.move_bound_s(distance_deg) if timeout is None else timeout,
            stop=None,  # stopped inside the exchange, see above
            clock=self._clock,
            device=self._url,
            grace_wall_s=None,  # the final reply's read is bounded by the move's bound
        )

    async def _stop_cancelled_move(self, task: asyncio.Task[None]) -> None:
        """The move's caller was cancelled: stop the stage and let the shielded exchange
        read its final reply (bounded), so nothing is left in the pipe."""
        if self._moving and not task.done():
            self._stop_sent = True
            try:
                await self._write("st")
            except DeviceError as exc:
                log.warning("elliptec %s: stopping a cancelled move: %s", self._url, exc)
        await asyncio.wait({task}, timeout=2 * self._reply_timeout + STOP_STATUS_WAIT_S)

    async def _run_move(self, request: str, bound: float) -> None:
        """Write a move request and read its final reply (the caller holds the lock)."""
        self._moving = True
        self._stop_sent = False
        finished = False
        try:
            await self._write(request)
            cmd, data = await self._read_reply(
                self._clock.to_wall(bound), what=f"the end of move {request!r} ({bound:.1f} s)"
            )
            finished = True
        finally:
            self._moving = False
            self._last_move_end = self._clock.now()
            if not finished:
                await self._abort_move()
        if self._stop_sent:
            await self._drain_stop_status()
        if cmd == "PO":
            self._position(data)
            return
        if cmd == "GS":
            await self._raise_status(int(data, 16), request)
        raise ProtocolError(
            f"unexpected reply {cmd}{data} to {request!r}; expected PO or GS", device=self._url
        )

    async def _pause_after_previous_move(self) -> None:
        # pylablib: "if the move command is issued too soon after a previous one, it can
        # move to 0 instead" -> keep MOVE_PAUSE_S between moves.
        if self._last_move_end is not None:
            await self._clock.sleep(self._last_move_end + MOVE_PAUSE_S - self._clock.now())

    async def _drain_stop_status(self) -> None:
        """After a move ended by ``st``: swallow the ``GS`` that ``st`` may also answer (§2a)."""
        try:
            cmd, data = await self._read_reply(STOP_STATUS_WAIT_S, what="the stop status")
        except DeviceTimeout:
            return  # the emulator's behaviour: st during a move gets no reply of its own
        except DeviceError:
            await self._link.resync()
            return
        if cmd != "GS":
            log.warning("elliptec %s: unexpected %s%s after a stop", self._url, cmd, data)
            await self._link.resync()

    async def _abort_move(self) -> None:
        """Stop a move whose reply did not arrive (cancelled, timed out or garbled)."""
        try:
            await self._write("st")
            # The interrupted move answers PO at the stop position; whether `st` itself then
            # answers GS is unverified (§2a, §5), so a GS is awaited only briefly after PO.
            cmd, data = await self._read_reply(self._reply_timeout, what="the stop reply")
            if cmd == "PO":
                self._position(data)
                with contextlib.suppress(DeviceTimeout):
                    await self._read_reply(STOP_STATUS_WAIT_S, what="the stop status")
        except DeviceError as exc:
            log.warning("elliptec %s: stopping an interrupted move: %s", self._url, exc)
        finally:
            await self._link.resync()

    async def _raise_status(self, code: int, request: str) -> None:
        if code == 0:
            raise ProtocolError(
                f"{request!r} answered GS 00 (OK) instead of its data reply", device=self._url
            )
        # The fault stays latched until the status is read once more (pylablib).
        try:
            await self._query("gs", expect=("GS",))
        except DeviceError as exc:
            log.warning("elliptec %s: clearing status %d failed: %s", self._url, code, exc)
        cls, meaning, hint = _status_error(code)
        raise cls(f"{request!r} failed with status {code}: {meaning}", device=self._url, hint=hint)

    async def _query(self, request: str, *, expect: tuple[str, ...]) -> tuple[str, str]:
        """Send ``request`` and read its reply; a ``GS`` with a non-zero code raises."""
        await self._write(request)
        try:
            cmd, data = await self._read_reply(self._reply_timeout, what=f"a reply to {request!r}")
        except (DeviceTimeout, ProtocolError):
            await self._link.resync()
            raise
        if cmd == "GS" and request != "gs":
            code = int(data, 16)
            if code != 0 or "GS" not in expect:
                await self._raise_status(code, request)
        if cmd not in expect:
            await self._link.resync()
            raise ProtocolError(
                f"unexpected reply {cmd}{data} to {request!r}; expected {'/'.join(expect)}",
                device=self._url,
            )
        return cmd, data

    async def _write(self, request: str) -> None:
        frame = f"{self._addr}{request}".encode("ascii")  # no terminator (§2a)
        await self._link.transport.write(frame, timeout=self._reply_timeout)

    async def _read_reply(self, timeout_wall_s: float, *, what: str) -> tuple[str, str]:
        """Next non-background reply from our address as (COMMAND, hex data)."""
        transport = self._link.transport
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_wall_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DeviceTimeout(f"no reply: waited for {what}", device=self._url)
            try:
                line = await transport.read_until(b"\n", timeout=remaining, max_bytes=64)
            except DeviceTimeout:
                raise DeviceTimeout(
                    f"no complete reply: waited for {what}",
                    device=self._url,
                    hint="check power, cable and bus address",
                ) from None
            cmd, data = self._parse_reply(line)
            if cmd in BACKGROUND:
                log.debug("elliptec %s: background message %s%s", self._url, cmd, data)
                continue
            return cmd, data

    def _parse_reply(self, line: bytes) -> tuple[str, str]:
        try:
            text = line.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError:
            raise ProtocolError(f"non-ASCII reply {line!r}", device=self._url) from None
        if len(text) < 3 or text[0] != self._addr or not text[1:3].isupper():
            raise ProtocolError(
                f"malformed reply {line!r}; expected {self._addr}<CMD><hex data>\\r\\n",
                device=self._url,
            )
        cmd, data = text[1:3], text[3:]
        length = REPLY_LENGTHS.get(cmd)
        if length is None:
            raise ProtocolError(f"unknown reply command {cmd!r} in {line!r}", device=self._url)
        hex_part = data if cmd != "IN" else data[0:2] + data[18:30]
        if len(data) != length or not _HEX.fullmatch(hex_part):
            raise ProtocolError(
                f"reply {line!r}: {cmd} needs {length} upper-case hex characters", device=self._url
            )
        return cmd, data

    def _position(self, data: str) -> int:
        counts = hex_to_counts(data)
        self._last_counts = counts
        return counts

    def _counts_to_deg(self, counts: int) -> float:
        deg = (counts / self.info.counts_per_deg) % 360.0
        return 0.0 if deg >= 360.0 else deg  # -1e-17 % 360 rounds to 360.0
