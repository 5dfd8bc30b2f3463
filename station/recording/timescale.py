"""What event time 0 means: the tagger's epoch, pinned to UTC by its PPS edges.

A time tagger counts picoseconds from its own epoch (power-up, or a reset), not from the run
start and not from any UTC instant; the bundle keeps those readings untouched (re-basing them
would hide the tagger's own timescale from the analysis). To make the bundle self-describing,
the recorder watches the PPS input while it records:

- every PPS edge marks an integer UTC second, so the *fraction* of the tagger epoch in UTC is
  known from any single edge: epoch ≡ −T_pps (mod 1 s), to the tagger clock's offset (µs at
  worst for a GPS-disciplined reference; ``qgs analyze`` measures it);
- the *integer* second comes from the station clock at the moment the block holding the edge
  arrived: receipt − T_pps/1e12 = epoch + latency, with the latency in [0, 1) s for a healthy
  stream; the median over edges is taken, then the epoch is the value with the PPS fraction
  just below it.

The manifest then carries ``timescale``: the anchor (a tagger reading and the UTC second it
was), the epoch in UTC, the number of edges seen and the median latency, and a sentence saying
what event time 0 is. Without PPS edges the anchor is the first event and the station clock
at its receipt (uncertainty: the stream latency, ~1 s), and it says so.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from drivers.datatypes import EventBlock

PS = 10**12
MAX_EDGES = 4096  #: edges kept for the latency median (a pass has a few hundred)

EVENT_TIME_ZERO = (
    "event times are int64 picoseconds on the time tagger's own timescale: t = 0 is the "
    "tagger's epoch (its counter's zero), not the run start; `timescale.tagger_epoch_utc` "
    "is that epoch in UTC from the PPS anchor (to the tagger clock's offset, which `qgs "
    "analyze` measures from the PPS edges)"
)


def _iso(posix_s: float) -> str:
    dt = datetime.fromtimestamp(posix_s, UTC)
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class TimescaleTracker:
    """Collects PPS edges (tagger ps) with the station-clock time their block arrived.

    Feed every block with :meth:`observe`; :meth:`section` is the manifest's ``timescale``.
    """

    pps_channel: int | None
    _edges: list[tuple[int, float]] = field(default_factory=list)
    _count: int = 0
    _first_event: tuple[int, float] | None = None

    def observe(self, block: EventBlock, received_s: float) -> None:
        """Note the PPS edges (and the first event) of a block received at ``received_s``."""
        if len(block) and self._first_event is None:
            self._first_event = (int(block.t_ps[0]), received_s)
        if self.pps_channel is None or not len(block):
            return
        edges = block.t_ps[block.channel == self.pps_channel]
        if not edges.size:
            return
        self._count += int(edges.size)
        # the block's last event is the freshest reading when it arrived: edge k happened
        # (t_last - T_k) before that, on the tagger's scale
        t_last = int(block.t_ps[-1])
        for t in edges[: max(0, MAX_EDGES - len(self._edges))].tolist():
            self._edges.append((int(t), received_s - (t_last - int(t)) / PS))

    def section(self) -> dict[str, Any]:
        """The manifest ``timescale`` object (see the module docstring)."""
        out: dict[str, Any] = {
            "event_time_zero": EVENT_TIME_ZERO,
            "unit": "ps",
            "pps_channel": self.pps_channel,
            "pps_edges": self._count,
        }
        if self._edges:
            # epoch + latency, per edge: receipt - T/1e12 (float seconds; ~µs resolution)
            lag = [recv - t / PS for t, recv in self._edges]
            median = statistics.median(lag)
            t0 = self._edges[0][0]
            frac = (-t0 / PS) % 1.0  # the epoch's fraction of a UTC second, from the edge
            epoch = median - ((median - frac) % 1.0)
            second = round(epoch + t0 / PS)
            out.update(
                anchor={
                    "tagger_ps": t0,
                    "posix_s": second,
                    "utc": _iso(second),
                    "source": "pps",
                    "uncertainty_s": 0.0,
                },
                tagger_epoch_utc=_iso(epoch),
                tagger_epoch_posix=epoch,
                median_latency_s=median - epoch,
                note="the anchor second assumes the stream latency was below 1 s",
            )
        elif self._first_event is not None:
            t, recv = self._first_event
            out.update(
                anchor={
                    "tagger_ps": t,
                    "posix_s": recv,
                    "utc": _iso(recv),
                    "source": "first_event",
                    "uncertainty_s": 1.0,
                },
                tagger_epoch_utc=_iso(recv - t / PS),
                tagger_epoch_posix=recv - t / PS,
                note="no PPS edge was recorded: the anchor is the first event and the station "
                "clock when its block arrived (uncertain by the stream latency)",
            )
        else:
            out.update(anchor=None, tagger_epoch_utc=None, note="no event was recorded")
        return out
