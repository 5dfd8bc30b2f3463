"""Merge per-input timestamp streams into one time-ordered event stream.

The IDQ DataLinkTarget sends one stream per input (protocols.md §3a: ``start-stream
--channel <1-4>``), each a sequence of messages of non-decreasing timestamps of that input
and nothing while the input is silent. The recorder wants one stream of EventBlocks in time
order. An event can be released only once no input can still deliver an earlier one:

- **watermark**: every input has delivered events up to its *high mark* (its latest
  timestamp), and its next events are >= that mark (its stream is ordered); so everything
  <= the smallest high mark is final. An input that has not spoken yet holds everything
  back.
- **stall rule** (wall time): a silent input (a dark detector, a threshold that never fires,
  a 1 Hz PPS) would hold the others back forever. So an input's mark is raised to the
  highest timestamp that *any* input had delivered ``stall_s`` wall seconds ago: the inputs
  come from one device and one DLT, so whatever a silent input may still deliver was
  recorded after what the others had delivered ``stall_s`` earlier, as long as its delivery
  lags theirs by less than ``stall_s``. The rule needs no device-time margin, so it holds
  on a warped clock as on a real one; it costs at most ``stall_s`` of latency while an input
  is silent. An event that breaks the assumption (it arrives older than one already
  released) is *late*: it is still emitted (nothing is lost), in the next block, and
  counted in :attr:`TimeMerge.late_events` (that block is then not ordered against the one
  before it).
- **bound**: the caller stops reading an input whose pending (held-back) events reach its
  bound (:meth:`TimeMerge.pending`); that is back-pressure toward the sender, not a release
  rule, so the bound never reorders events. An input paused at its bound is not silent
  (:meth:`TimeMerge.set_paused`): the stall rule skips it, and its own mark, the lowest,
  releases what frees it. The stall rule resolves a bound reached while waiting for a
  silent input.
- an ended input (its end-of-stream marker seen) leaves the watermark; when every input has
  ended, everything pending is released.

Ties: events with equal times from different inputs come out in input order (stable sort
of the inputs' runs concatenated by input number). Times are int64 picoseconds.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Times = npt.NDArray[np.int64]
Channels = npt.NDArray[np.uint8]


@dataclass
class _Input:
    channel: int
    chunks: deque[Times] = field(default_factory=deque)  #: pending, each sorted, in order
    pending: int = 0  #: events in ``chunks``
    high: int | None = None  #: the latest timestamp received (ps); None before the first
    paused: bool = False  #: its reader stopped reading (bound): not silent, just unread
    ended: bool = False
    steps_back: int = 0  #: messages that started before the previous message's end


class TimeMerge:
    """Holds per-input timestamps until they are final, then releases them merged.

    Args:
        channels: the inputs (1-based, as in EventBlock.channel), one stream each.
        stall_s: the stall rule's wall seconds (module doc).

    ``now`` arguments are wall seconds on any monotonic clock (the caller's loop time).
    """

    def __init__(self, channels: Sequence[int], *, stall_s: float = 0.25) -> None:
        if not stall_s > 0:
            raise ValueError(f"stall_s must be > 0, got {stall_s}")
        if not channels or len(set(channels)) != len(channels):
            raise ValueError(f"channels must be distinct and not empty, got {list(channels)}")
        if not all(1 <= c <= 255 for c in channels):
            raise ValueError(f"channels must be 1..255, got {list(channels)}")
        self._inputs = {c: _Input(c) for c in sorted(channels)}
        self.stall_s = stall_s
        #: (wall s, highest timestamp delivered by any input by then), rising in both
        self._history: deque[tuple[float, int]] = deque()
        self.released_upto: int | None = None  #: the latest timestamp released (ps)
        self.late_events = 0  #: events released after a later one (see module doc)
        self.events_in = 0
        self.events_out = 0

    @property
    def channels(self) -> list[int]:
        return list(self._inputs)

    def pending(self, channel: int) -> int:
        """Events of ``channel`` held back."""
        return self._inputs[channel].pending

    @property
    def total_pending(self) -> int:
        return sum(i.pending for i in self._inputs.values())

    @property
    def done(self) -> bool:
        """Every input ended and everything released."""
        return all(i.ended for i in self._inputs.values()) and not self.total_pending

    def push(self, channel: int, t_ps: Times, now: float) -> None:
        """One message of ``channel``: timestamps (ps) in non-decreasing order.

        The caller checks the order inside the message (a protocol error); a message that
        starts before the previous one ended (a clock step back) is accepted and counted.
        """
        inp = self._inputs[channel]
        if inp.ended:
            raise ValueError(f"input {channel}: events after its end of stream")
        if not len(t_ps):
            return
        first, last = int(t_ps[0]), int(t_ps[-1])
        if not self._history or last > self._history[-1][1]:
            self._history.append((now, last))
        if inp.high is not None and first < inp.high:
            inp.steps_back += 1
            log.warning(
                "input %d: timestamps step back from %d to %d ps between messages",
                channel,
                inp.high,
                first,
            )
            # keep the pending run sorted: what is still held merges with the new message
            if inp.chunks:
                merged = np.concatenate([*inp.chunks, t_ps])
                inp.chunks = deque([np.sort(merged, kind="stable")])
                inp.pending += len(t_ps)
                inp.high = max(inp.high, last)
                self.events_in += len(t_ps)
                return
        inp.chunks.append(t_ps)
        inp.pending += len(t_ps)
        inp.high = last if inp.high is None else max(inp.high, last)
        self.events_in += len(t_ps)

    def set_paused(self, channel: int, paused: bool) -> None:
        """The caller stopped (True) or resumed (False) reading ``channel`` (the bound).

        A paused input is not silent: what it has not delivered waits in its socket, so the
        stall rule does not apply to it; its own mark holds the others back, and releasing
        up to that mark is what frees it.
        """
        self._inputs[channel].paused = paused

    def end(self, channel: int) -> None:
        """``channel``'s end-of-stream marker arrived."""
        self._inputs[channel].ended = True

    def _stalled_high(self, now: float) -> int | None:
        """The highest timestamp any input had delivered ``stall_s`` before ``now``."""
        cutoff = now - self.stall_s
        history = self._history
        while len(history) > 1 and history[1][0] <= cutoff:
            history.popleft()  # keep the latest entry at or before the cutoff
        if history and history[0][0] <= cutoff:
            return history[0][1]
        return None

    def watermark(self, now: float) -> int | None:
        """The time up to which (inclusive) events are final at wall time ``now``; None:
        nothing is. Once every input has ended, everything pending is final."""
        live = [i for i in self._inputs.values() if not i.ended]
        if not live:
            highs = [i.high for i in self._inputs.values() if i.pending and i.high is not None]
            return max(highs) if highs else None
        floor = self._stalled_high(now)
        marks = [
            i.high if floor is None or i.paused else floor if i.high is None else max(i.high, floor)
            for i in live
        ]
        if any(m is None for m in marks):
            return None  # an input that has not spoken yet could still say anything
        return min(m for m in marks if m is not None)

    def take(self, now: float) -> list[tuple[int, Times]] | None:
        """Remove every event final at wall time ``now``: ``(input, times)`` runs, each
        sorted, for :func:`merge_runs`; None when none is. Accounts released and late
        events (what :meth:`pop` does, without the merge itself, so that a caller can merge
        off the event loop)."""
        mark = self.watermark(now)
        if mark is None:
            return None
        runs: list[tuple[int, Times]] = []
        for inp in self._inputs.values():
            taken = _take_upto(inp, mark)
            if taken is not None:
                runs.append((inp.channel, taken))
        if not runs:
            return None
        if self.released_upto is not None:
            late = sum(int(np.searchsorted(t, self.released_upto, side="left")) for _, t in runs)
            if late:
                self.late_events += late
                log.warning(
                    "%d event(s) arrived after later ones were released (an input's delivery "
                    "lagged the others' by more than %g s); released now, out of order",
                    late,
                    self.stall_s,
                )
        last = max(int(t[-1]) for _, t in runs)
        self.released_upto = last if self.released_upto is None else max(self.released_upto, last)
        self.events_out += sum(len(t) for _, t in runs)
        return runs

    def pop(self, now: float) -> tuple[Times, Channels] | None:
        """Every event final at wall time ``now``, merged in time order (ties by input);
        None when none is."""
        runs = self.take(now)
        return None if runs is None else merge_runs(runs)


def merge_runs(runs: list[tuple[int, Times]]) -> tuple[Times, Channels]:
    """Sorted per-input runs -> one time-ordered (t_ps, channel) pair; ties by input order
    in ``runs``."""
    if len(runs) == 1:
        ch0, t0 = runs[0]
        return t0, np.full(len(t0), ch0, dtype=np.uint8)
    t = np.concatenate([t for _, t in runs])
    ch = np.repeat(np.array([c for c, _ in runs], np.uint8), [len(t) for _, t in runs])
    # runs are sorted: timsort merges them in O(n log k); stable keeps input order
    order = np.argsort(t, kind="stable")
    return np.take(t, order), np.take(ch, order)


def _take_upto(inp: _Input, mark: int) -> Times | None:
    """Remove and return ``inp``'s pending events <= ``mark`` (None if there are none)."""
    out: list[Times] = []
    while inp.chunks:
        chunk = inp.chunks[0]
        if int(chunk[-1]) <= mark:
            out.append(inp.chunks.popleft())
            continue
        k = int(np.searchsorted(chunk, mark, side="right"))
        if k:
            out.append(chunk[:k])
            inp.chunks[0] = chunk[k:]
        break
    if not out:
        return None
    taken = out[0] if len(out) == 1 else np.concatenate(out)
    inp.pending -= len(taken)
    return taken
