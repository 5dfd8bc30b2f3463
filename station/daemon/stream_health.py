"""Stream-health monitor: notices a time tagger that fails silently (issue 10).

A tagger can fail without raising anything: it latches (the same timestamp forever), its time
base jumps, it hangs or disconnects (no more blocks, or only empty ones), one detector channel
dies while the others count on. :class:`StreamHealth` watches the block stream and raises a
:class:`HealthAlarm` for each, within the bound stated below. It is pure and synchronous (no
I/O, no asyncio): feed every :class:`~drivers.datatypes.EventBlock` to :meth:`observe` with the
station-clock time it arrived, and call :meth:`tick` periodically (e.g. every 0.5 s) so that a
stream that stops altogether is still noticed. Times ``*_s`` are station-clock seconds (the
daemon may run warped; the bounds are in clock seconds), event times are int64 ps.

Checks and their bounds (``B`` = the block period, ``P`` = the tick period):

``stream_stalled``
    No non-empty block for ``stall_after_s`` of clock time while recording (tagger hung,
    disconnected, frozen, or every input dead) → alarm at most ``stall_after_s + max(B, P)``
    after the last events arrived. Cleared (a note with ``cleared=True``) when events resume.
``dead_channel``
    An analyzer channel ``c`` (the configured channels minus the PPS channel) has counted
    nothing while the other analyzer channels together counted
    ``K = dead_expected_events * (n - 1) / dead_min_share`` events, *and* it has been silent
    for at least ``dead_min_silence_s`` of event time. ``dead_min_share`` is the smallest
    rate of a healthy channel relative to the mean of the others (detector efficiencies
    differ), so a healthy channel should have seen at least ``dead_expected_events`` (default
    30) in that span: the chance a healthy channel's silence reaches the threshold is at most
    ``exp(-30) = 9.4e-14`` per inter-event gap, ≤ 2.4e-6 over 10 000 s at 2.5 kcps per
    channel. Because the test is relative, a ramp at AOS/LOS (all channels low together) does
    not alarm. Bound: alarm within ``max(dead_min_silence_s, K / R_others) + B`` of the
    channel's last event, where ``R_others`` is the others' summed rate; with the defaults
    (n = 4, K = 180) that is ≤ ``dead_after_s`` = 5 s whenever the others count ≥ 36 /s, and
    1 s at Micius-like rates (issue 10's bar: 40 s unnoticed). Cleared when it counts again.
``pps_missing``
    The PPS channel silent for more than ``pps_missing_after_s`` (2.5 s) of event time while
    other events advance → alarm at the first block past that (bound 2.5 s + B of event time);
    a stream with no events at all is ``stream_stalled`` instead. Cleared by the next edge.
``clock_jump``
    (a) PPS edge spacing: each spacing (divided by the whole number of seconds it spans, so a
    missed edge is not a jump) is compared with the previous spacing; a change of more than
    ``clock_jump_ps`` (1 µs) is a jump in the tagger's time base (a slow oscillator drift
    cancels in the comparison), as is a spacing more than 100 ppm off 1 s. Bound: the first
    PPS edge after the jump. (b) Event time steps backwards (between or within blocks): alarm
    on that block. (c) Event time vs station clock: ``received_s - t_last / 1e12`` drops by
    more than ``clock_offset_tol_s`` (0.5 s) below its running minimum (a forward jump): alarm
    on the first non-empty block after the jump. Re-armed after ``REARM_GOOD`` good checks.
``tagger_latch``
    Event times stop advancing: ``latch_blocks`` (3) consecutive non-empty blocks whose last
    time does not advance past the previous block's (or a block of ≥ 8 events all at one
    time), or non-empty blocks whose last event lags the station clock by more than
    ``latch_lag_s`` (2 s) beyond the running reference (blocks arrive, their times stand
    still). Bound: ``latch_blocks`` blocks, or ``latch_lag_s + B`` of clock. Cleared when
    event time advances with the clock again.

Each alarm fires once per episode and re-arms after its recovery. The checks assume the
tagger's event time runs at the station clock's rate (the emulators follow the warped clock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.datatypes import EventBlock

PS = 1_000_000_000_000  #: picoseconds per second
REARM_GOOD = 3  #: consecutive good checks that end a clock-jump episode
PPS_GROSS_PPM = 100.0  #: a PPS spacing further than this from 1 s is a jump by itself
LATCH_SAME_EVENTS = 8  #: a block of at least this many events, all at one time, is latched
OFFSET_DRIFT_PER_S = 1e-4  #: how fast the clock-offset reference may rise (100 ppm drift)


@dataclass(frozen=True, slots=True)
class HealthAlarm:
    """One health finding: ``kind`` names the check, ``cleared`` marks a recovery note."""

    kind: str  #: "stream_stalled", "dead_channel", "pps_missing", "clock_jump", "tagger_latch"
    message: str
    t_s: float  #: station-clock time it was raised
    cleared: bool = False
    channel: int | None = None  #: the channel concerned (dead_channel)


class StreamHealth:
    """Watches a tagger's block stream for silent failures (see the module docstring)."""

    def __init__(
        self,
        *,
        channels: Sequence[int],
        pps_channel: int | None,
        stall_after_s: float = 3.0,
        dead_after_s: float = 5.0,
        dead_expected_events: float = 30.0,
        dead_min_share: float = 0.5,
        dead_min_silence_s: float = 1.0,
        pps_missing_after_s: float = 2.5,
        clock_jump_ps: int = 1_000_000,
        clock_offset_tol_s: float = 0.5,
        latch_blocks: int = 3,
        latch_lag_s: float = 2.0,
    ) -> None:
        if stall_after_s <= 0 or pps_missing_after_s <= 0 or dead_after_s <= 0:
            raise ValueError("stream-health timeouts must be positive")
        if not 0 <= dead_min_silence_s <= dead_after_s:
            raise ValueError("dead_min_silence_s must be in [0, dead_after_s]")
        if not 0 < dead_min_share <= 1 or dead_expected_events <= 0:
            raise ValueError("dead_min_share must be in (0, 1] and dead_expected_events > 0")
        if clock_jump_ps <= 0 or clock_offset_tol_s <= 0 or latch_blocks < 1 or latch_lag_s <= 0:
            raise ValueError("clock-jump and latch thresholds must be positive")
        self.pps_channel = pps_channel
        self.analyzer = tuple(sorted({int(c) for c in channels} - {pps_channel}))
        self.stall_after_s = stall_after_s
        self.dead_after_s = dead_after_s
        n = len(self.analyzer)
        #: other-channel events after which a silent channel is declared dead
        self.dead_others = dead_expected_events * max(n - 1, 1) / dead_min_share
        self.dead_min_silence_ps = round(dead_min_silence_s * PS)
        self.pps_missing_ps = round(pps_missing_after_s * PS)
        self.clock_jump_ps = clock_jump_ps
        self.clock_offset_tol_s = clock_offset_tol_s
        self.latch_blocks = latch_blocks
        self.latch_lag_s = latch_lag_s

        self._active: set[tuple[str, int | None]] = set()  # alarms in their episode
        self._alarms: list[HealthAlarm] = []
        self._start_s: float | None = None
        self._last_data_s: float | None = None  # clock time of the last non-empty block
        self._last_t: int | None = None  # last event time seen
        self._blocks = 0
        self._empty_blocks = 0
        self._events = 0
        self._counts = np.zeros(256, np.int64)
        self._longest_gap_s = 0.0
        # dead channel: per analyzer channel, others counted since its last event / that time
        self._others_since = dict.fromkeys(self.analyzer, 0)
        self._silent_since: dict[int, int | None] = dict.fromkeys(self.analyzer, None)
        # PPS
        self._last_pps: int | None = None
        self._pps_spacing: float | None = None  # last good spacing (ps per second)
        self._pps_good = 0
        self._pps_edges = 0
        self._silent_pps_since: int | None = None  # event time the PPS wait began
        # clock offset (received_s - event time) reference, and latch counter
        self._offset_ref: float | None = None
        self._offset_ref_s = 0.0
        self._offset_good = 0
        self._stuck_blocks = 0

    @property
    def dead_rate_floor_hz(self) -> float:
        """Summed rate of the other analyzer channels above which a dead channel is alarmed
        within ``dead_after_s`` (below it, e.g. near AOS/LOS, the alarm may take longer)."""
        return self.dead_others / self.dead_after_s

    # ------------------------------------------------------------------ feeding

    def observe(self, block: EventBlock, received_s: float) -> list[HealthAlarm]:
        """Check one block that arrived at station-clock ``received_s``; new findings only."""
        out: list[HealthAlarm] = []
        if self._start_s is None:
            self._start_s = received_s
        self._blocks += 1
        n = len(block)
        if n == 0:
            self._empty_blocks += 1
            out += self._check_stall(received_s)
            return self._keep(out)
        if self._last_data_s is not None:
            self._longest_gap_s = max(self._longest_gap_s, received_s - self._last_data_s)
        self._last_data_s = received_s
        self._events += n
        out += self._clear("stream_stalled", None, received_s, "events are arriving again")
        t, ch = block.t_ps, block.channel
        self._counts += np.bincount(ch, minlength=256)
        first, last = int(t[0]), int(t[-1])
        out += self._check_time(t, first, last, received_s, n)
        if self._last_t is None or last > self._last_t:
            self._last_t = last
        out += self._check_dead(ch, t, last, received_s)
        out += self._check_pps(t, ch, last, received_s)
        return self._keep(out)

    def tick(self, now_s: float) -> list[HealthAlarm]:
        """Periodic check while recording (finds a stream that stopped altogether)."""
        if self._start_s is None:
            self._start_s = now_s
        return self._keep(self._check_stall(now_s))

    def summary(self) -> dict[str, Any]:
        """For the bundle manifest: what was seen, every finding, what is still active."""
        return {
            "blocks": self._blocks,
            "empty_blocks": self._empty_blocks,
            "events": self._events,
            "counts": {str(c): int(self._counts[c]) for c in np.flatnonzero(self._counts)},
            "pps_edges": self._pps_edges,
            "longest_gap_s": round(self._longest_gap_s, 3),
            "alarms": [
                {"kind": a.kind, "message": a.message, "t_s": a.t_s, "cleared": a.cleared}
                | ({} if a.channel is None else {"channel": a.channel})
                for a in self._alarms
            ],
            "active": sorted(k if c is None else f"{k}:{c}" for k, c in self._active),
            "healthy": not self._active,
        }

    # ------------------------------------------------------------------ checks

    def _check_stall(self, now_s: float) -> list[HealthAlarm]:
        ref = self._last_data_s if self._last_data_s is not None else self._start_s
        if ref is None or now_s - ref < self.stall_after_s:
            return []
        what = "no events" if self._last_data_s is not None else "no events since the start"
        return self._raise(
            "stream_stalled",
            None,
            now_s,
            f"{what} for {now_s - ref:.1f} s: the tagger may be hung, disconnected or dark",
        )

    def _check_time(
        self, t: np.ndarray[Any, Any], first: int, last: int, now_s: float, n: int
    ) -> list[HealthAlarm]:
        """Backward steps, forward jumps against the clock, and latches."""
        out: list[HealthAlarm] = []
        prev = self._last_t
        backwards = (prev is not None and first < prev) or bool(np.any(np.diff(t) < 0))
        if backwards:
            step = (first - prev) / PS if prev is not None and first < prev else 0.0
            out += self._raise(
                "clock_jump",
                None,
                now_s,
                f"event time stepped backwards ({step:+.6f} s): the tagger's time base jumped",
            )
            self._offset_ref, self._offset_good = None, 0  # new baseline
            self._last_t = None
            prev = None
        # latch: time does not advance between blocks, or a block all at one instant
        stuck = (prev is not None and last <= prev) or (n >= LATCH_SAME_EVENTS and first == last)
        self._stuck_blocks = self._stuck_blocks + 1 if stuck else 0
        if self._stuck_blocks >= self.latch_blocks:
            out += self._raise(
                "tagger_latch",
                None,
                now_s,
                f"event time stuck at {last} ps for {self._stuck_blocks} blocks",
            )
        offset = now_s - last / PS
        if self._offset_ref is None:
            self._offset_ref, self._offset_ref_s = offset, now_s
            return out
        allowed = self._offset_ref + OFFSET_DRIFT_PER_S * (now_s - self._offset_ref_s)
        if offset < self._offset_ref - self.clock_offset_tol_s:
            out += self._raise(
                "clock_jump",
                None,
                now_s,
                f"event time jumped {self._offset_ref - offset:+.3f} s ahead of the station clock",
            )
            self._offset_ref, self._offset_ref_s, self._offset_good = offset, now_s, 0
            return out
        if offset > allowed + self.latch_lag_s:
            out += self._raise(
                "tagger_latch",
                None,
                now_s,
                f"event time lags the station clock by {offset - allowed:.1f} s more than "
                "before: tagger time is not advancing",
            )
            return out
        # a healthy block: the reference follows the freshest reading (and slow drift)
        self._offset_ref, self._offset_ref_s = min(offset, allowed), now_s
        if not stuck:
            out += self._clear("tagger_latch", None, now_s, "event time advances again")
        self._offset_good += 1
        if self._offset_good >= REARM_GOOD and (
            self.pps_channel is None or self._pps_good >= REARM_GOOD
        ):
            out += self._clear("clock_jump", None, now_s, "time base steady again")
        return out

    def _check_dead(
        self, ch: np.ndarray[Any, Any], t: np.ndarray[Any, Any], last: int, now_s: float
    ) -> list[HealthAlarm]:
        if len(self.analyzer) < 2:
            return []
        out: list[HealthAlarm] = []
        is_an = np.isin(ch, self.analyzer)
        n_an = int(np.count_nonzero(is_an))
        an_cum = np.cumsum(is_an)
        for c in self.analyzer:
            hits = np.flatnonzero(ch == c)
            if hits.size:
                i = int(hits[-1])
                self._others_since[c] = n_an - int(an_cum[i])
                self._silent_since[c] = int(t[i])
                out += self._clear("dead_channel", c, now_s, f"channel {c} counts again")
            else:
                self._others_since[c] += n_an
                if self._silent_since[c] is None:
                    self._silent_since[c] = int(t[0])
            since = self._silent_since[c]
            silent_ps = last - since if since is not None else 0
            if self._others_since[c] >= self.dead_others and silent_ps >= self.dead_min_silence_ps:
                out += self._raise(
                    "dead_channel",
                    c,
                    now_s,
                    f"channel {c} silent for {silent_ps / PS:.1f} s while the other analyzer "
                    f"channels counted {self._others_since[c]} events: detector or input dead",
                )
        return out

    def _check_pps(
        self, t: np.ndarray[Any, Any], ch: np.ndarray[Any, Any], last: int, now_s: float
    ) -> list[HealthAlarm]:
        if self.pps_channel is None:
            return []
        out: list[HealthAlarm] = []
        edges = t[ch == self.pps_channel]
        if self._last_pps is None and not edges.size and self._silent_pps_since is None:
            self._silent_pps_since = int(t[0])
        for e in edges.tolist():
            out += self._pps_edge(int(e), now_s)
        if edges.size:
            out += self._clear("pps_missing", None, now_s, "PPS edges are back")
        since = self._last_pps if self._last_pps is not None else self._silent_pps_since
        if since is not None and last - since > self.pps_missing_ps:
            out += self._raise(
                "pps_missing",
                None,
                now_s,
                f"no PPS edge on channel {self.pps_channel} for {(last - since) / PS:.1f} s "
                "of event time",
            )
        return out

    def _pps_edge(self, e: int, now_s: float) -> list[HealthAlarm]:
        self._pps_edges += 1
        prev, self._last_pps = self._last_pps, e
        if prev is None or e <= prev:
            return []
        span = e - prev
        seconds = max(1, round(span / PS))
        spacing = span / seconds
        gross = abs(spacing - PS) > PPS_GROSS_PPM * 1e-6 * PS or span < PS // 2
        ref = self._pps_spacing
        jumped = gross or (ref is not None and abs(spacing - ref) > self.clock_jump_ps)
        if not gross:
            self._pps_spacing = spacing
        if not jumped:
            self._pps_good += 1
            return []
        self._pps_good = 0
        off = spacing - (ref if ref is not None else PS)
        return self._raise(
            "clock_jump",
            None,
            now_s,
            f"PPS edges {span / PS:.9f} s apart: the tagger's time base jumped {off:+.0f} ps",
        )

    # ------------------------------------------------------------------ episodes

    def _raise(self, kind: str, channel: int | None, t_s: float, msg: str) -> list[HealthAlarm]:
        if (kind, channel) in self._active:
            return []
        self._active.add((kind, channel))
        return [HealthAlarm(kind, msg, t_s, channel=channel)]

    def _clear(self, kind: str, channel: int | None, t_s: float, msg: str) -> list[HealthAlarm]:
        if (kind, channel) not in self._active:
            return []
        self._active.discard((kind, channel))
        return [HealthAlarm(kind, msg, t_s, cleared=True, channel=channel)]

    def _keep(self, found: list[HealthAlarm]) -> list[HealthAlarm]:
        self._alarms.extend(found)
        return found
