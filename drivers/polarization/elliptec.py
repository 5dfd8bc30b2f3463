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

Cancellation safety (as :class:`drivers.mount.common.StreamedMount`): one exchange runs at a
time under a lock, in a task shielded from the caller's cancellation, so a cancelled caller never
leaves a reply in the input buffer for the next command; after a timeout or error the input is
flushed before the lock is released. A cancelled move is stopped (``st``) and its final reply
consumed before the cancellation propagates; a move cancelled before its request went out is
simply not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

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
from drivers.registry import DeviceURL
from drivers.transport.base import Transport

log = logging.getLogger(__name__)

T = TypeVar("T")

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
        self._transport = transport
        self._transport_url = transport_url
        self._addr = f"{address:X}"
        self._speed = speed_deg_s
        self._reply_timeout = reply_timeout_s
        self._lock = asyncio.Lock()
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
        allowed = {"address", "speed", "timeout_s"}
        unknown = sorted(set(url.params) - allowed)
        if unknown:
            raise DeviceURLError(
                f"{url.raw!r}: unknown parameter(s) {unknown}; allowed: {sorted(allowed)}",
                key="url",
            )
        text = url.params.get("address", "0")
        if not re.fullmatch(r"[0-9A-Fa-f]", text):
            raise DeviceURLError(
                f"{url.raw!r}: address must be one hex digit 0..F, got {text!r}", key="url"
            )
        values: dict[str, float] = {}
        for name, default, unit in (
            ("speed", DEFAULT_SPEED_DEG_S, "deg/s"),
            ("timeout_s", REPLY_TIMEOUT_S, "seconds"),
        ):
            try:
                values[name] = float(url.params.get(name, default))
            except ValueError:
                values[name] = math.nan
            if not (math.isfinite(values[name]) and values[name] > 0):
                raise DeviceURLError(
                    f"{url.raw!r}: {name} must be a number of {unit} > 0, got {url.params[name]!r}",
                    key="url",
                )
        return cls(
            url=url.raw,
            clock=clock,
            transport_url=url.transport_url,
            address=int(text, 16),
            speed_deg_s=values["speed"],
            reply_timeout_s=values["timeout_s"],
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
        if self._transport is None or not self._transport.is_open:
            from drivers.transport import open_transport  # H1's module; imported lazily

            assert self._transport_url is not None
            self._transport = await open_transport(self._transport_url, timeout=self._reply_timeout)
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
        transport, self._transport = self._transport, None
        self._info = None
        if transport is not None:
            await transport.close()

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
        self._require_open()
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
        """One query under the lock, shielded from cancellation; input flushed after an error."""
        self._require_open()

        async def locked() -> tuple[str, str]:
            async with self._lock:
                try:
                    return await self._query(request, expect=expect)
                except DeviceError:
                    await self._resync_quietly()
                    raise

        return await _shielded(locked())

    async def _move(self, request: str, distance_deg: float, timeout: float | None) -> None:
        """Run a move to its end under the lock; a cancelled caller stops it first."""
        bound = self.move_bound_s(distance_deg) if timeout is None else timeout
        self._require_open()
        sent = False

        async def locked() -> None:
            nonlocal sent
            async with self._lock:
                await self._pause_after_previous_move()
                sent = True  # no await between here and the write: see the handler below
                try:
                    await self._run_move(request, bound)
                except DeviceError:
                    await self._resync_quietly()
                    raise

        task = asyncio.ensure_future(locked())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_retrieve)
            if not sent:
                task.cancel()  # still waiting for the lock or the pause: nothing went out
                raise
            # The move is under way: stop it and let the shielded task read its final reply,
            # so nothing is left in the pipe, before the cancellation propagates.
            if self._moving and not task.done():
                self._stop_sent = True
                try:
                    await self._write("st")
                except DeviceError as exc:
                    log.warning("elliptec %s: stopping a cancelled move: %s", self._url, exc)
            await asyncio.wait({task}, timeout=2 * self._reply_timeout + STOP_STATUS_WAIT_S)
            raise

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
            await self._resync_quietly()
            return
        if cmd != "GS":
            log.warning("elliptec %s: unexpected %s%s after a stop", self._url, cmd, data)
            await self._resync_quietly()

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
            if self._transport is not None and self._transport.is_open:
                await self._transport.reset_input()

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
            await self._resync()
            raise
        if cmd == "GS" and request != "gs":
            code = int(data, 16)
            if code != 0 or "GS" not in expect:
                await self._raise_status(code, request)
        if cmd not in expect:
            await self._resync()
            raise ProtocolError(
                f"unexpected reply {cmd}{data} to {request!r}; expected {'/'.join(expect)}",
                device=self._url,
            )
        return cmd, data

    async def _resync(self) -> None:
        if self._transport is not None and self._transport.is_open:
            await self._transport.reset_input()

    async def _resync_quietly(self) -> None:
        with contextlib.suppress(DeviceError, OSError):
            await self._resync()

    def _require_open(self) -> Transport:
        if self._transport is None or not self._transport.is_open:
            raise NotConnected("not connected", device=self._url, hint="call connect() first")
        return self._transport

    async def _write(self, request: str) -> None:
        frame = f"{self._addr}{request}".encode("ascii")  # no terminator (§2a)
        await self._require_open().write(frame, timeout=self._reply_timeout)

    async def _read_reply(self, timeout_wall_s: float, *, what: str) -> tuple[str, str]:
        """Next non-background reply from our address as (COMMAND, hex data)."""
        transport = self._require_open()
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


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Done callback: fetch a finished task's outcome so it is never logged as unretrieved."""
    if not task.cancelled():
        task.exception()


async def _shielded(aw: Awaitable[T]) -> T:
    """Await ``aw`` in its own task, shielded from the caller's cancellation.

    A cancelled caller returns at once; the task runs on (its I/O is bounded by the reply
    timeout) and consumes its reply, so the next exchange starts on a clean line.
    """
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_retrieve)
        raise
