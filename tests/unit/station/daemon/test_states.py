"""Pass state machine: only the table's transitions, listeners see every change."""

from __future__ import annotations

import pytest

from station.daemon.states import (
    PASS_TRANSITIONS,
    IllegalTransition,
    PassState,
    PassStateMachine,
    Transition,
)


def test_nominal_pass_sequence_is_legal_and_reported() -> None:
    seen: list[Transition] = []
    m = PassStateMachine(seen.append)
    for i, s in enumerate(
        (PassState.PREPOSITION, PassState.WAIT_AOS, PassState.TRACK, PassState.STOW, PassState.IDLE)
    ):
        m.to(s, float(i), "step")
    assert [t.new for t in seen] == [
        PassState.PREPOSITION,
        PassState.WAIT_AOS,
        PassState.TRACK,
        PassState.STOW,
        PassState.IDLE,
    ]
    assert seen[0].old is PassState.IDLE
    assert m.state is PassState.IDLE


def test_illegal_transition_raises_and_keeps_state() -> None:
    m = PassStateMachine()
    with pytest.raises(IllegalTransition, match="IDLE -> TRACK"):
        m.to(PassState.TRACK, 0.0)
    assert m.state is PassState.IDLE


@pytest.mark.parametrize("state", [s for s in PassState if s is not PassState.IDLE])
def test_safe_or_stow_reachable_from_every_state(state: PassState) -> None:
    allowed = PASS_TRANSITIONS[state]
    assert PassState.SAFE in allowed or state is PassState.SAFE
    assert PassState.IDLE in allowed or PassState.STOW in allowed or PassState.ABORT in allowed


def test_active_only_while_a_pass_runs() -> None:
    m = PassStateMachine()
    assert not m.active
    m.to(PassState.PREPOSITION, 0.0)
    assert m.active
    m.to(PassState.ABORT, 1.0)
    assert not m.active
