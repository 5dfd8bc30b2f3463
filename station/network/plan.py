"""The campaign plan: the common windows of every station pair, and what became of each.

A window is an interval in which both stations of a pair see the satellite above the
campaign's minimum common elevation (geometric, each station's horizon mask applied too),
at night at both when the campaign asks for nights only (Sun below -12 deg at culmination,
station/tracking/passes.py). Windows of different pairs may overlap in time; a station
takes one pass at a time, so a later window that shares a station with an earlier,
overlapping one is marked ``conflict`` and not booked.

Each window has a stable id (``<a>-<b>-<start YYYYmmddTHHMMSSZ>``) so a restarted
coordinator finds its own plan again in the campaign directory.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from station.network.config import NetworkConfig
from station.tracking.elements import OrbitElements, iso
from station.tracking.passes import common_windows, find_passes


class WindowStatus(enum.Enum):
    PLANNED = "planned"  #: predicted, not booked yet
    BOOKED = "booked"  #: both stations acknowledged the booking
    RUNNING = "running"  #: the window has started
    ANALYSING = "analysing"  #: both passes ended; the analysis runs
    DONE = "done"  #: both passes complete, analysed, the result published
    PARTIAL = "partial"  #: a station faulted or dropped out; the reason says which
    FAILED = "failed"  #: booking refused, or no usable data at all
    SKIPPED = "skipped"  #: the operator skipped it (``skip_window``) or it was missed
    CONFLICT = "conflict"  #: shares a station with an earlier overlapping window

    @property
    def terminal(self) -> bool:
        return self in (
            WindowStatus.DONE,
            WindowStatus.PARTIAL,
            WindowStatus.FAILED,
            WindowStatus.SKIPPED,
            WindowStatus.CONFLICT,
        )


@dataclass
class Window:
    """One common window of a station pair and its bookkeeping (times POSIX s UTC)."""

    id: str
    stations: tuple[str, str]
    start_s: float
    end_s: float
    max_elevation_deg: dict[str, float]
    night: bool
    status: WindowStatus = WindowStatus.PLANNED
    reason: str | None = None
    #: per station: the daemon's pass id, outcome and bundle path, from its acks and events
    passes: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: dict[str, Any] | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "stations": list(self.stations),
            "start_utc": iso(self.start_s),
            "end_utc": iso(self.end_s),
            "duration_s": round(self.duration_s, 1),
            "max_elevation_deg": {k: round(v, 2) for k, v in self.max_elevation_deg.items()},
            "night": self.night,
            "status": self.status.value,
            "reason": self.reason,
            "passes": self.passes,
            "result": self.result,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Window:
        from station.tracking.elements import parse_time

        a, b = body["stations"]
        return cls(
            id=str(body["id"]),
            stations=(str(a), str(b)),
            start_s=parse_time(body["start_utc"]),
            end_s=parse_time(body["end_utc"]),
            max_elevation_deg={str(k): float(v) for k, v in body["max_elevation_deg"].items()},
            night=bool(body["night"]),
            status=WindowStatus(body["status"]),
            reason=body.get("reason"),
            passes=dict(body.get("passes") or {}),
            result=body.get("result"),
        )


def window_id(a: str, b: str, start_s: float) -> str:
    return f"{a}-{b}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(round(start_s)))}"


def predict_windows(cfg: NetworkConfig, elements: OrbitElements, start_s: float) -> list[Window]:
    """Every usable common window of every station pair from ``start_s`` for the horizon.

    Sorted by start; windows that would need a station already booked for an earlier,
    overlapping window are returned with status ``conflict``.
    """
    passes = {}
    for st in cfg.stations:
        site = st.config.site
        site = dataclasses.replace(
            site, min_elevation_deg=max(site.min_elevation_deg, cfg.min_common_elevation_deg)
        )
        passes[st.name] = find_passes(elements.satrec, site, start_s, cfg.horizon_days)
    windows: list[Window] = []
    for a, b in itertools.combinations([s.name for s in cfg.stations], 2):
        for c in common_windows([passes[a], passes[b]], min_duration_s=cfg.min_window_s):
            if cfg.nights_only and not c.all_night:
                continue
            windows.append(
                Window(
                    id=window_id(a, b, c.start_s),
                    stations=(a, b),
                    start_s=c.start_s,
                    end_s=c.end_s,
                    max_elevation_deg={p.site: p.max_elevation_deg for p in c.passes},
                    night=c.all_night,
                )
            )
    windows.sort(key=lambda w: (w.start_s, w.id))
    busy: dict[str, float] = {}
    for w in windows:
        if any(busy.get(s, -1.0) > w.start_s for s in w.stations):
            w.status, w.reason = WindowStatus.CONFLICT, "a station is booked for an earlier window"
            continue
        for s in w.stations:
            busy[s] = w.end_s
    return windows


def merge(known: list[Window], fresh: list[Window]) -> list[Window]:
    """The plan after a new prediction: known windows keep their state; new ones are added."""
    by_id = {w.id: w for w in known}
    for w in fresh:
        by_id.setdefault(w.id, w)
    return sorted(by_id.values(), key=lambda w: (w.start_s, w.id))
