"""Scriptable faults for emulated devices: a rehearsal rig must misbehave on purpose.

Each emulated device owns a :class:`FaultInjector`. Faults are injected on demand
(:meth:`FaultInjector.inject`) or scheduled at a simulated time from the rig config; the
wire front-ends and behaviour models consult :meth:`FaultInjector.active` at the points
where a real device would show the fault:

==============  ============================================================
kind            what the device does while the fault is active
==============  ============================================================
disconnect      drops the connection (TCP close / pty hang-up) and refuses new ones
hang            reads requests but never answers
garbage         answers with random bytes instead of the reply
slow            delays every reply by ``params["delay_s"]`` (clock seconds)
error_reply     answers every request with the device's error reply
stall           motor stalls: axis stops moving and the device reports a stall
latch           detector latch: ``params["channel"]`` goes silent (time tagger)
clock_jump      station clock jumps by ``params["jump_ps"]`` (time tagger, one-off)
==============  ============================================================
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

from drivers.clock import Clock

log = logging.getLogger(__name__)


class FaultKind(enum.Enum):
    DISCONNECT = "disconnect"
    HANG = "hang"
    GARBAGE = "garbage"
    SLOW = "slow"
    ERROR_REPLY = "error_reply"
    STALL = "stall"
    LATCH = "latch"
    CLOCK_JUMP = "clock_jump"


@dataclass(frozen=True)
class Fault:
    """One fault: active from ``start`` (POSIX s) for ``duration`` s (None: until cleared)."""

    kind: FaultKind
    start: float
    duration: float | None = None
    params: dict[str, float] = field(default_factory=dict)

    def active_at(self, t: float) -> bool:
        return t >= self.start and (self.duration is None or t < self.start + self.duration)


class FaultInjector:
    """The fault schedule of one emulated device."""

    def __init__(self, clock: Clock, device: str) -> None:
        self._clock = clock
        self.device = device
        self._faults: list[Fault] = []

    def inject(
        self,
        kind: FaultKind,
        *,
        at: float | None = None,
        duration: float | None = None,
        **params: float,
    ) -> Fault:
        """Schedule ``kind`` at clock time ``at`` (default: now) for ``duration`` s."""
        fault = Fault(kind, self._clock.now() if at is None else at, duration, dict(params))
        self._faults.append(fault)
        log.info("fault scheduled on %s: %s", self.device, fault)
        return fault

    def clear(self, kind: FaultKind | None = None) -> None:
        """Remove all faults (of ``kind``, or every kind)."""
        self._faults = [f for f in self._faults if kind is not None and f.kind is not kind]

    def active(self, kind: FaultKind) -> Fault | None:
        """The fault of ``kind`` active now, if any."""
        now = self._clock.now()
        for fault in self._faults:
            if fault.kind is kind and fault.active_at(now):
                return fault
        return None

    def scheduled(self) -> list[Fault]:
        return list(self._faults)
