"""One reconnect policy for every driver: backoff with jitter, resync, degraded state.

Unattended stations lose links: a USB adapter resets, a terminal server reboots, rotctld is
restarted. The lessons of the anchor systems (anchors.md) are encoded here once:

- *never a silent hang*: every operation and every reconnect attempt is bounded, and the
  link state and the last error are always readable (:attr:`Supervisor.status`) and pushed
  to listeners (the station publishes them on MQTT);
- *reconnect by itself* (ophyd-async#743 "manual reconnect required after IOC restart";
  SatNOGS "no reconnection logic after a timeout"): a link error (NotConnected,
  DeviceTimeout, ProtocolError) closes and reopens the device with exponential backoff and
  jitter, then runs a resync hook that restores device state (speed, precision, target);
- *disengage after N consecutive errors* (gpredict ``MAX_ERROR_COUNT``; OCS ``degraded``):
  after ``degraded_after`` consecutive failed operations the state is DEGRADED, which tells
  the controller to stop relying on the device (abort tracking, raise an alarm);
- *give up visibly*: after ``max_attempts`` failed reconnects in one episode the state is
  FAILED and calls raise NotConnected at once with the last error, until :meth:`reconnect`;
- *say so at once*: error listeners (:meth:`Supervisor.add_error_listener`) hear of a failed
  operation when it fails, before the reconnect episode (which can last minutes of backoff
  and connect timeouts), and of the first success after failures; a caller that only sees
  the re-raised error would hear of a hung device only after the reconnect gave up or the
  device came back (issue 10: alarms 62-76 s after a 60 s fault began).

Errors of the caller (LimitViolation) are not link errors and are passed through untouched.
A failed operation is never retried silently unless the caller says it is idempotent
(``retries``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from drivers.clock import Clock
from drivers.errors import (
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    LimitViolation,
    NotConnected,
    ProtocolError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: errors after which the link is closed and reopened
LINK_ERRORS: tuple[type[DeviceError], ...] = (NotConnected, DeviceTimeout, ProtocolError)


class Connectable(Protocol):
    """What the supervisor needs from a device: a URL and a connect/close lifecycle."""

    @property
    def url(self) -> str: ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...


D = TypeVar("D", bound=Connectable)


class LinkState(enum.Enum):
    """Health of a supervised device link."""

    DISCONNECTED = "disconnected"  #: not started yet, or closed
    CONNECTED = "connected"  #: the last operation or connect succeeded
    RECONNECTING = "reconnecting"  #: a link error happened; reopening with backoff
    DEGRADED = "degraded"  #: ``degraded_after`` consecutive operations failed
    FAILED = "failed"  #: reconnecting gave up; calls fail at once until reconnect()


@dataclass(frozen=True, slots=True)
class SupervisorStatus:
    """A snapshot for monitoring: state, the last error and counters."""

    state: LinkState
    device: str
    last_error: str | None
    consecutive_errors: int
    reconnects: int  #: successful reconnects since start


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with multiplicative jitter (clock seconds).

    Delay before attempt ``k`` (0-based) is ``min(max_s, initial_s * 2**k)`` scaled by a
    uniform factor in ``[1 - jitter, 1 + jitter]`` so that many stations restarted at once
    do not reconnect in lockstep.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.max_s):
            raise ValueError(f"need 0 < backoff_initial_s <= backoff_max_s, got {self}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        base = min(self.max_s, self.initial_s * 2.0 ** min(attempt, 60))
        return base * (1.0 + self.jitter * rng.uniform(-1.0, 1.0))


class Supervisor(Generic[D]):
    """Runs operations on ``device`` and keeps its link alive.

    Args:
        device: the driver (anything with ``url``, ``connect()`` and ``close()``).
        clock: backoff waits are clock seconds (a WarpClock shortens them).
        backoff_initial_s, backoff_max_s, jitter: see :class:`Backoff`.
        degraded_after: consecutive failed operations before the state is DEGRADED.
        max_attempts: reconnect attempts per episode before FAILED.
        connect_timeout_s: wall-second bound on one connect (+ resync) attempt.
        resync: awaited after every successful (re)connect to restore device state.
        seed: seeds the jitter (deterministic rigs and tests).
    """

    def __init__(
        self,
        device: D,
        clock: Clock,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        jitter: float = 0.2,
        degraded_after: int = 3,
        max_attempts: int = 8,
        connect_timeout_s: float = 10.0,
        resync: Callable[[D], Awaitable[None]] | None = None,
        seed: int | None = None,
    ) -> None:
        if degraded_after < 1 or max_attempts < 1 or connect_timeout_s <= 0:
            raise ValueError("degraded_after, max_attempts and connect_timeout_s must be >= 1/> 0")
        self.device = device
        self._clock = clock
        self.backoff = Backoff(backoff_initial_s, backoff_max_s, jitter)
        self.degraded_after = degraded_after
        self.max_attempts = max_attempts
        self.connect_timeout_s = connect_timeout_s
        self._resync = resync
        self._rng = random.Random(seed)
        self._state = LinkState.DISCONNECTED
        self._last_error: str | None = None
        self._consecutive = 0
        self._reconnects = 0
        self._listeners: list[Callable[[SupervisorStatus], None]] = []
        self._error_listeners: list[Callable[[DeviceError | None], None]] = []
        self._reconnect_lock = asyncio.Lock()

    # ------------------------------------------------------------------ status

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def status(self) -> SupervisorStatus:
        return SupervisorStatus(
            self._state, self.device.url, self._last_error, self._consecutive, self._reconnects
        )

    def add_listener(self, listener: Callable[[SupervisorStatus], None]) -> None:
        """Call ``listener(status)`` on every state change (must not block)."""
        self._listeners.append(listener)

    def add_error_listener(self, listener: Callable[[DeviceError | None], None]) -> None:
        """Call ``listener(error)`` when an operation fails (before any reconnect) and
        ``listener(None)`` at the first successful operation after one or more failures.

        Must not block (schedule work instead); a failing listener is logged and ignored.
        """
        self._error_listeners.append(listener)

    def _notify_error(self, error: DeviceError | None) -> None:
        for listener in list(self._error_listeners):
            try:
                listener(error)
            except Exception:  # a broken listener must not break the device link
                log.exception("%s: error listener failed", self.device.url)

    def _set_state(self, state: LinkState) -> None:
        if state is self._state:
            return
        # connecting for the first time and closing on purpose are routine, not warnings
        routine = state in (LinkState.CONNECTED, LinkState.DISCONNECTED) or (
            self._state is LinkState.DISCONNECTED and state is LinkState.RECONNECTING
        )
        log.log(
            logging.INFO if routine else logging.WARNING,
            "%s: link %s -> %s (last error: %s)",
            self.device.url,
            self._state.value,
            state.value,
            self._last_error,
        )
        self._state = state
        snapshot = self.status
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:  # a broken listener must not break the device link
                log.exception("%s: status listener failed", self.device.url)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect (with backoff); raises NotConnected if every attempt fails."""
        await self._reconnect(first=True)

    async def reconnect(self) -> None:
        """Force a reconnect episode now (also the way out of FAILED)."""
        await self._reconnect(first=False)

    async def close(self) -> None:
        """Close the device; the state becomes DISCONNECTED."""
        with contextlib.suppress(DeviceError, OSError):
            await self.device.close()
        self._set_state(LinkState.DISCONNECTED)

    # ------------------------------------------------------------------ operations

    async def call(self, op: Callable[[D], Awaitable[T]], *, retries: int = 0) -> T:
        """Run ``op(device)``; on a link error reconnect and re-raise (or retry ``retries`` times).

        Only pass ``retries > 0`` for idempotent operations (reads, absolute set-points).
        """
        for attempt in range(retries + 1):
            if self._state is LinkState.FAILED:
                raise NotConnected(
                    f"link failed after {self.max_attempts} reconnect attempts "
                    f"(last error: {self._last_error})",
                    device=self.device.url,
                    hint="fix the device or its cable, then call reconnect()",
                )
            if self._state is LinkState.DISCONNECTED:
                await self._reconnect(first=True)
            try:
                result = await op(self.device)
            except LimitViolation:
                raise  # the caller's mistake, not the link's
            except LINK_ERRORS as exc:
                self._record_error(exc)
                await self._reconnect_quietly()
                if attempt == retries:
                    raise
                log.info("%s: retrying after %s", self.device.url, exc)
            except DeviceFault as exc:
                self._record_error(exc)
                raise
            else:
                recovered = self._consecutive > 0
                self._consecutive = 0
                self._set_state(LinkState.CONNECTED)
                if recovered:
                    self._notify_error(None)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _record_error(self, exc: DeviceError) -> None:
        self._consecutive += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        if self._consecutive >= self.degraded_after:
            self._set_state(LinkState.DEGRADED)
        self._notify_error(exc)

    async def _reconnect_quietly(self) -> None:
        with contextlib.suppress(NotConnected):
            await self._reconnect(first=False)

    async def _reconnect(self, *, first: bool) -> None:
        async with self._reconnect_lock:
            for attempt in range(self.max_attempts):
                if self._state is not LinkState.DEGRADED:
                    self._set_state(LinkState.RECONNECTING)
                if attempt > 0 or not first:
                    await self._clock.sleep(self.backoff.delay_s(attempt, self._rng))
                try:
                    with contextlib.suppress(DeviceError, OSError):
                        await asyncio.wait_for(self.device.close(), self.connect_timeout_s)
                    async with asyncio.timeout(self.connect_timeout_s):
                        await self.device.connect()
                        if self._resync is not None:
                            await self._resync(self.device)
                except (DeviceError, OSError, TimeoutError) as exc:
                    self._last_error = f"{type(exc).__name__}: {exc}"
                    log.warning(
                        "%s: connect attempt %d/%d failed: %s",
                        self.device.url,
                        attempt + 1,
                        self.max_attempts,
                        self._last_error,
                    )
                    continue
                if not first:
                    self._reconnects += 1
                if self._consecutive < self.degraded_after:
                    self._set_state(LinkState.CONNECTED)
                return
            self._set_state(LinkState.FAILED)
            raise NotConnected(
                f"could not connect after {self.max_attempts} attempts "
                f"(last error: {self._last_error})",
                device=self.device.url,
                hint="check that the device is powered and reachable",
            )
