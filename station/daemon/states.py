"""The daemon's two state machines: the station summary and the pass in progress.

Summary (what an operator or a coordinator may ask of the station):

- ``OFFLINE``  — starting, devices not (yet) connected; no command moves anything.
- ``STANDBY``  — devices connected; nothing happens by itself (manual goto/park allowed).
- ``ENABLED``  — the schedule runs: booked passes, and predicted ones when ``auto``.
- ``FAULT``    — a device the policy marks ``safe`` was lost, or stowing failed; only
  ``safe`` and ``reset`` are accepted until an operator resets it.

Pass (what the telescope is doing)::

    IDLE → PREPOSITION → WAIT_AOS → TRACK → STOW → IDLE
      any active state → ABORT → STOW          (operator abort, device loss, safety)
      any state        → SAFE  → IDLE          (stow and close everything)

Only the transitions in :data:`PASS_TRANSITIONS` are legal; an illegal one is a bug and
raises :class:`IllegalTransition` rather than leaving the telescope in an unknown state.
The safety gate is applied by the pass runner before each transition that moves the mount
(PREPOSITION checks the slew, TRACK the trajectory, STOW/SAFE the slew to park).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class SummaryState(enum.Enum):
    OFFLINE = "OFFLINE"
    STANDBY = "STANDBY"
    ENABLED = "ENABLED"
    FAULT = "FAULT"


class PassState(enum.Enum):
    IDLE = "IDLE"
    PREPOSITION = "PREPOSITION"
    WAIT_AOS = "WAIT_AOS"
    TRACK = "TRACK"
    STOW = "STOW"
    ABORT = "ABORT"
    SAFE = "SAFE"


_ACTIVE = (PassState.PREPOSITION, PassState.WAIT_AOS, PassState.TRACK)

PASS_TRANSITIONS: dict[PassState, frozenset[PassState]] = {
    PassState.IDLE: frozenset({PassState.PREPOSITION, PassState.STOW, PassState.SAFE}),
    PassState.PREPOSITION: frozenset({PassState.WAIT_AOS, PassState.ABORT, PassState.SAFE}),
    PassState.WAIT_AOS: frozenset({PassState.TRACK, PassState.ABORT, PassState.SAFE}),
    PassState.TRACK: frozenset({PassState.STOW, PassState.ABORT, PassState.SAFE}),
    PassState.STOW: frozenset({PassState.IDLE, PassState.ABORT, PassState.SAFE}),
    PassState.ABORT: frozenset({PassState.STOW, PassState.SAFE}),
    PassState.SAFE: frozenset({PassState.IDLE}),
}


class IllegalTransition(RuntimeError):
    """A transition outside :data:`PASS_TRANSITIONS` was attempted (a daemon bug)."""


@dataclass(frozen=True)
class Transition:
    """One pass-state change, for logs and the ``event/pass_state`` topic."""

    old: PassState
    new: PassState
    t_s: float
    reason: str


class PassStateMachine:
    """Holds the pass state, enforces the table and tells listeners about changes."""

    def __init__(self, listener: Callable[[Transition], None] | None = None) -> None:
        self.state = PassState.IDLE
        self._listener = listener

    @property
    def active(self) -> bool:
        """True while a pass is being pre-positioned, waited for or tracked."""
        return self.state in _ACTIVE

    def to(self, new: PassState, t_s: float, reason: str = "") -> Transition:
        if new not in PASS_TRANSITIONS[self.state]:
            raise IllegalTransition(
                f"pass state {self.state.value} -> {new.value} is not allowed; "
                f"allowed: {sorted(s.value for s in PASS_TRANSITIONS[self.state])}"
            )
        change = Transition(self.state, new, t_s, reason)
        self.state = new
        if self._listener is not None:
            self._listener(change)
        return change
