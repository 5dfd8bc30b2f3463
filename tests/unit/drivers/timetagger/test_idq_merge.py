"""TimeMerge: per-input IDQ streams merged in time order (drivers/timetagger/merge.py).

Adversarial interleavings: the inputs' messages arrive in any order that keeps each input's
own order, split anywhere, with pops anywhere in between and wall time passing anywhere.
Whatever the interleaving, the released events are exactly the events sent (none lost, none
twice) and, unless the stall rule released events while an input was still to deliver older
ones, in time order across block boundaries (equal times may straddle a boundary in any
input order; inside one block ties go by input). Wall time is explicit (``now``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.timetagger.merge import TimeMerge


def arr(*t: int) -> np.ndarray:
    return np.array(t, dtype=np.int64)


STALL = 0.25


def drain(merge: TimeMerge, now: float = 0.0) -> list[tuple[int, int]]:
    out = merge.pop(now)
    if out is None:
        return []
    return list(zip(out[0].tolist(), out[1].tolist(), strict=True))


def finished(merge: TimeMerge) -> bool:
    return merge.done  # a call: mypy does not carry a narrowed property across statements


def test_nothing_is_final_until_every_input_has_spoken() -> None:
    merge = TimeMerge([1, 2, 3], stall_s=STALL)
    merge.push(1, arr(10, 20), 0.0)
    merge.push(2, arr(15), 0.0)
    assert merge.watermark(0.0) is None
    assert merge.pop(0.0) is None  # input 3 could still send t = 0
    merge.push(3, arr(12), 0.0)
    assert merge.watermark(0.0) == 12
    assert drain(merge) == [(10, 1), (12, 3)]
    assert merge.pending(1) == 1
    assert merge.pending(2) == 1


def test_release_up_to_the_slowest_live_input_inclusive() -> None:
    merge = TimeMerge([1, 2], stall_s=STALL)
    merge.push(1, arr(5, 9, 30), 0.0)
    merge.push(2, arr(9), 0.0)
    assert drain(merge) == [(5, 1), (9, 1), (9, 2)]  # ties: input order
    merge.push(2, arr(9, 40), 0.0)  # equal to the released time: still in order, not late
    assert drain(merge) == [(9, 2), (30, 1)]
    assert merge.late_events == 0


def test_a_silent_input_holds_the_others_back_for_stall_s_only() -> None:
    merge = TimeMerge([1, 2], stall_s=STALL)
    merge.push(1, arr(100, 200), 0.0)
    merge.push(1, arr(300), 0.2)
    assert merge.pop(0.2) is None  # input 2 has not spoken: it could send t = 0
    assert drain(merge, 0.3) == [(100, 1), (200, 1)]  # what input 1 had at 0.05 s
    assert drain(merge, 0.5) == [(300, 1)]
    merge.push(2, arr(150), 0.6)  # speaks at last, older than what was released: late
    merge.push(1, arr(500), 0.6)
    assert drain(merge, 0.6) == [(150, 2)]  # kept and released, counted
    assert merge.late_events == 1
    merge.push(2, arr(350, 400), 0.7)  # in order again
    assert drain(merge, 0.7) == [(350, 2), (400, 2)]
    assert merge.late_events == 1
    merge.end(1)
    merge.end(2)
    assert drain(merge, 1.0) == [(500, 1)]
    assert merge.done
    assert merge.events_in == merge.events_out == 7


def test_ended_inputs_release_everything() -> None:
    merge = TimeMerge([1, 2, 3], stall_s=STALL)
    merge.push(1, arr(1, 50), 0.0)
    merge.end(2)  # never sent anything
    merge.push(3, arr(7), 0.0)
    assert drain(merge) == [(1, 1), (7, 3)]
    assert not merge.done
    merge.end(1)
    merge.end(3)
    assert drain(merge) == [(50, 1)]
    assert finished(merge)
    with pytest.raises(ValueError, match="after its end"):
        merge.push(1, arr(60), 0.0)
    with pytest.raises(ValueError, match="stall_s"):
        TimeMerge([1], stall_s=0)


def test_a_step_back_inside_one_input_keeps_what_is_held_sorted() -> None:
    merge = TimeMerge([1, 2], stall_s=STALL)
    merge.push(1, arr(10, 20), 0.0)
    merge.push(1, arr(15, 25), 0.0)  # a clock step back between messages
    merge.push(2, arr(30), 0.0)
    assert drain(merge) == [(10, 1), (15, 1), (20, 1), (25, 1)]


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="distinct and not empty"):
        TimeMerge([])
    with pytest.raises(ValueError, match="distinct and not empty"):
        TimeMerge([1, 1])
    with pytest.raises(ValueError, match=r"1\.\.255"):
        TimeMerge([0, 2])


@st.composite
def interleavings(draw: st.DrawFn) -> tuple[dict[int, list[list[int]]], list[tuple[str, int]]]:
    """Per-input sorted messages and an arrival schedule of pushes, pops and quiet marks."""
    channels = draw(st.lists(st.integers(1, 8), min_size=1, max_size=4, unique=True))
    messages: dict[int, list[list[int]]] = {}
    for ch in channels:
        times = sorted(draw(st.lists(st.integers(-50, 200), max_size=25)))
        cuts = sorted(draw(st.lists(st.integers(0, len(times)), max_size=5)))
        bounds = [0, *cuts, len(times)]
        messages[ch] = [times[a:b] for a, b in itertools.pairwise(bounds)]
    queue = {ch: len(m) for ch, m in messages.items()}
    schedule: list[tuple[str, int]] = []
    while any(queue.values()):
        ch = draw(st.sampled_from([c for c, n in queue.items() if n]))
        schedule.append(("push", ch))
        queue[ch] -= 1
        if draw(st.booleans()):
            schedule.append(("pop", 0))
        if draw(st.integers(0, 9)) == 0:
            schedule.append(("tick", 0))  # a stall_s of wall time passes
    return messages, schedule


def run(
    messages: dict[int, list[list[int]]], schedule: list[tuple[str, int]], ticks: bool
) -> tuple[TimeMerge, list[tuple[int, int]], list[int]]:
    merge = TimeMerge(sorted(messages), stall_s=STALL)
    now = 0.0
    nxt = dict.fromkeys(messages, 0)
    out: list[tuple[int, int]] = []
    block_ends: list[int] = []

    def pop() -> None:
        got = drain(merge, now)
        if got:
            out.extend(got)
            block_ends.append(len(out))

    for what, ch in schedule:
        if what == "push":
            merge.push(ch, np.array(messages[ch][nxt[ch]], dtype=np.int64), now)
            nxt[ch] += 1
        elif what == "pop":
            pop()
        elif ticks:
            now += STALL * 1.01
    for ch in messages:
        merge.end(ch)
    pop()
    return merge, out, block_ends


@settings(max_examples=300, deadline=None)
@given(interleavings())
def test_any_interleaving_is_merged_in_order_without_loss(
    case: tuple[dict[int, list[list[int]]], list[tuple[str, int]]],
) -> None:
    messages, schedule = case
    merge, out, _ = run(messages, schedule, ticks=False)
    sent = sorted((t, ch) for ch, msgs in messages.items() for m in msgs for t in m)
    assert sorted(out) == sent  # every event once ...
    times = [t for t, _ in out]
    assert times == sorted(times)  # ... in time order across every block boundary
    assert merge.late_events == 0
    assert merge.done


@settings(max_examples=300, deadline=None)
@given(interleavings())
def test_the_stall_rule_never_loses_or_duplicates_events(
    case: tuple[dict[int, list[list[int]]], list[tuple[str, int]]],
) -> None:
    messages, schedule = case
    merge, out, block_ends = run(messages, schedule, ticks=True)
    sent = sorted((t, ch) for ch, msgs in messages.items() for m in msgs for t in m)
    assert sorted(out) == sent  # nothing lost, nothing twice
    times = [t for t, _ in out]
    start = 0
    for end in block_ends:  # each block is sorted in itself
        assert times[start:end] == sorted(times[start:end])
        start = end
    # every step back across a block boundary is accounted for as late events
    backs = sum(1 for i, t in enumerate(times) if i and t < max(times[:i], default=t))
    assert (backs == 0) == (merge.late_events == 0)
    assert merge.late_events >= (1 if backs else 0)
