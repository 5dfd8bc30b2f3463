"""The station's pass schedule: predicted passes, bookings, cancellations, outcomes.

Passes are predicted from the configured elements over ``[schedule] horizon_days`` and
re-predicted whenever the schedule runs low, keeping what an operator said about a pass
(booked, cancelled, campaign) by matching AOS times within :data:`MATCH_S`. A pass is taken
when it is *booked* (by command, or by a coordinator's campaign window) or, with
``[schedule] auto = true``, when it reaches ``min_max_elevation_deg`` (and is at night if
``night_only``). A cancelled pass is never taken, whatever else is said about it.

The operator's and the coordinator's decisions (bookings with their campaign, cancellations)
are saved to ``decisions_path`` at once (atomic rewrite) and re-applied after a restart,
matched by AOS like a re-prediction; decisions about passes more than a day old are dropped.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station.config import StationConfig
from station.recording.atomic import atomic_write_bytes
from station.recording.errors import RecordingError
from station.tracking.elements import OrbitElements, iso
from station.tracking.passes import Pass, find_passes

MATCH_S = 60.0  #: two predictions of one pass differ by far less than this (s)
KEEP_S = 86400.0  #: decisions about passes older than this are not kept

log = logging.getLogger(__name__)


class PassOutcome(enum.Enum):
    PLANNED = "planned"
    RUNNING = "running"
    COMPLETE = "complete"
    ABORTED = "aborted"
    FAILED = "failed"
    MISSED = "missed"  #: its window went by while the station was not ENABLED


@dataclass
class Entry:
    """One predicted pass and what the station will do / did with it."""

    pass_: Pass
    booked: bool = False
    cancelled: bool = False
    campaign: dict[str, Any] | None = None
    outcome: PassOutcome = PassOutcome.PLANNED
    reason: str = ""
    bundle: str | None = None
    eligible_auto: bool = field(default=False)

    @property
    def id(self) -> str:
        return f"{self.pass_.site}-{iso(self.pass_.aos_s)[:19].replace(':', '')}"

    @property
    def wanted(self) -> bool:
        return not self.cancelled and (self.booked or self.eligible_auto)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "aos_utc": iso(self.pass_.aos_s),
            "tca_utc": iso(self.pass_.tca_s),
            "los_utc": iso(self.pass_.los_s),
            "max_elevation_deg": round(self.pass_.max_elevation_deg, 2),
            "night": self.pass_.night,
            "booked": self.booked,
            "cancelled": self.cancelled,
            "auto": self.eligible_auto,
            "wanted": self.wanted,
            "campaign": self.campaign,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "bundle": self.bundle,
        }


class ScheduleError(ValueError):
    """A booking or cancellation that names no predicted pass (message says which exist)."""


class Schedule:
    """Predicted passes of one station with the operator's decisions attached."""

    def __init__(
        self, cfg: StationConfig, elements: OrbitElements, decisions_path: Path | None = None
    ) -> None:
        self.cfg = cfg
        self.elements = elements
        self.entries: list[Entry] = []
        self._predicted_until = float("-inf")
        self.decisions_path = decisions_path
        #: AOS (POSIX s) -> {"booked", "cancelled", "campaign"}: survives a restart
        self._decisions: dict[float, dict[str, Any]] = self._load()

    def _load(self) -> dict[float, dict[str, Any]]:
        if self.decisions_path is None or not self.decisions_path.exists():
            return {}
        try:
            body = json.loads(self.decisions_path.read_text())
            return {float(d["aos_s"]): dict(d) for d in body["decisions"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # never fatal: the station runs, the operator re-books; say so loudly
            log.error("ignoring unreadable schedule decisions %s: %s", self.decisions_path, exc)
            return {}

    def _decide(self, entry: Entry) -> None:
        """Remember what was said about ``entry`` and save it (best effort, logged)."""
        self._decisions[entry.pass_.aos_s] = {
            "aos_s": entry.pass_.aos_s,
            "booked": entry.booked,
            "cancelled": entry.cancelled,
            "campaign": entry.campaign,
        }
        if self.decisions_path is None:
            return
        oldest = entry.pass_.aos_s - KEEP_S
        self._decisions = {k: v for k, v in self._decisions.items() if k >= oldest}
        body = json.dumps({"station": self.cfg.name, "decisions": list(self._decisions.values())})
        try:
            self.decisions_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.decisions_path, body.encode())
        except (OSError, RecordingError) as exc:
            log.error("cannot save schedule decisions to %s: %s", self.decisions_path, exc)

    def _saved_decision(self, aos_s: float) -> dict[str, Any] | None:
        for aos, d in self._decisions.items():
            if abs(aos - aos_s) < MATCH_S:
                return d
        return None

    def refresh(self, now_s: float) -> None:
        """Predict passes from ``now_s`` if the schedule covers less than half its horizon."""
        horizon = self.cfg.daemon.schedule.horizon_days
        if self._predicted_until - now_s > 0.5 * horizon * 86400.0:
            return
        passes = find_passes(self.elements.satrec, self.cfg.site, now_s, horizon)
        old = self.entries
        fresh: list[Entry] = []
        for p in passes:
            match = next((e for e in old if abs(e.pass_.aos_s - p.aos_s) < MATCH_S), None)
            if match is not None and match.outcome is not PassOutcome.PLANNED:
                fresh.append(match)  # a pass in progress or done keeps its record
                continue
            entry = Entry(p)
            if match is not None:
                entry.booked, entry.cancelled, entry.campaign = (
                    match.booked,
                    match.cancelled,
                    match.campaign,
                )
            elif (saved := self._saved_decision(p.aos_s)) is not None:  # said before a restart
                entry.booked = bool(saved.get("booked"))
                entry.cancelled = bool(saved.get("cancelled"))
                entry.campaign = saved.get("campaign")
            entry.eligible_auto = self._auto(p)
            fresh.append(entry)
        done = [e for e in old if e not in fresh and e.outcome is not PassOutcome.PLANNED]
        self.entries = sorted(done + fresh, key=lambda e: e.pass_.aos_s)
        self._predicted_until = now_s + horizon * 86400.0

    def _auto(self, p: Pass) -> bool:
        s = self.cfg.daemon.schedule
        return (
            s.auto
            and p.max_elevation_deg >= s.min_max_elevation_deg
            and (p.night or not s.night_only)
        )

    def find(self, aos_s: float) -> Entry:
        """The planned pass whose AOS is within :data:`MATCH_S` of ``aos_s``."""
        for e in self.entries:
            if abs(e.pass_.aos_s - aos_s) < MATCH_S:
                return e
        known = ", ".join(iso(e.pass_.aos_s) for e in self.entries[:8]) or "none"
        raise ScheduleError(f"no predicted pass has AOS near {iso(aos_s)}; upcoming AOS: {known}")

    def book(self, aos_s: float, campaign: dict[str, Any] | None = None) -> Entry:
        entry = self.find(aos_s)
        if entry.outcome is not PassOutcome.PLANNED:
            raise ScheduleError(f"pass {entry.id} is already {entry.outcome.value}")
        entry.booked, entry.cancelled = True, False
        if campaign is not None:
            entry.campaign = campaign
        self._decide(entry)
        return entry

    def book_window(self, start_s: float, end_s: float, campaign: dict[str, Any]) -> Entry:
        """Book the pass that overlaps a common-visibility window the most."""
        if not end_s > start_s:
            raise ScheduleError(f"window end {iso(end_s)} is not after its start {iso(start_s)}")
        overlaps = [
            (min(e.pass_.los_s, end_s) - max(e.pass_.aos_s, start_s), e) for e in self.entries
        ]
        best = max(overlaps, default=(0.0, None), key=lambda x: x[0])
        if best[1] is None or best[0] <= 0:
            raise ScheduleError(
                f"no predicted pass overlaps the window {iso(start_s)} .. {iso(end_s)}"
            )
        return self.book(best[1].pass_.aos_s, {**campaign, "window": [iso(start_s), iso(end_s)]})

    def cancel(self, aos_s: float) -> Entry:
        entry = self.find(aos_s)
        if entry.outcome is not PassOutcome.PLANNED:
            raise ScheduleError(f"pass {entry.id} is already {entry.outcome.value}")
        entry.cancelled = True
        self._decide(entry)
        return entry

    def next_wanted(self, now_s: float) -> Entry | None:
        """The first wanted, planned pass whose LOS is still ahead (older ones are MISSED)."""
        for e in self.entries:
            if e.outcome is not PassOutcome.PLANNED or not e.wanted:
                continue
            if e.pass_.los_s <= now_s + 1.0:
                e.outcome, e.reason = PassOutcome.MISSED, "window passed before it could start"
                continue
            return e
        return None

    def to_json(self, now_s: float, limit: int = 20) -> list[dict[str, Any]]:
        recent = [e for e in self.entries if e.pass_.los_s > now_s - 86400.0]
        return [e.to_json() for e in recent[:limit]]
