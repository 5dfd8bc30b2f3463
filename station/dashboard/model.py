"""The dashboard's model of the network, fed by ``qgs/v1/#`` messages, read as one JSON document.

Same idea as :class:`station.monitor.MonitorModel` (the terminal monitor), with what a web
page needs besides: the pass's planned sky track and the mount's actual position (sky plot),
the coordinator's plan, live figures and window results. Every node (station or
coordinator) is one :class:`NodeView`; :meth:`DashboardModel.snapshot` is what the server
pushes to the page. Units are those of the MQTT API (docs/mqtt-api.md): degrees, Hz,
POSIX seconds on the publisher's clock.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from station.bus.envelope import TOPIC_ROOT

ALARMS_KEPT = 8  #: last alarms shown per node
TRAIL_KEPT = 150  #: last actual mount positions kept per station (sky plot trail)
TRAIL_STEP_DEG = 0.3  #: a trail point is kept once the mount moved this far (az + el, deg)
RESULTS_KEPT = 10  #: last window results kept per coordinator
TRACK_MAX = 400  #: bound on the track points taken from one ``state/pass``


@dataclass
class NodeView:
    """What the dashboard knows about one node under ``qgs/v1/<name>/``."""

    name: str
    link: str = "unknown"  #: ``online`` / ``offline`` / ``unknown`` (no status seen yet)
    summary: str = "?"
    session: int = 0
    reason: str | None = None  #: why offline (``lwt``, ``shutdown``) or the last change
    status_ts: float | None = None
    warped_clock: bool = False
    pass_state: dict[str, Any] = field(default_factory=dict)
    #: planned sky track of the pass: [[t, az_deg, el_deg], ...] (``state/pass`` ``track``)
    track: list[list[float]] = field(default_factory=list)
    #: last actual mount position from ``telemetry/pointing``: t, az_deg, el_deg, error_arcsec
    pointing: dict[str, float] | None = None
    trail: deque[list[float]] = field(default_factory=lambda: deque(maxlen=TRAIL_KEPT))
    rates_hz: dict[str, float] = field(default_factory=dict)
    events_recorded: int | None = None
    hwp: dict[str, float] = field(default_factory=dict)
    alarms: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=ALARMS_KEPT))
    telemetry_gaps: int = 0
    #: coordinator only: retained ``state/plan``, last ``telemetry/live``, window results
    plan: dict[str, Any] | None = None
    live: dict[str, Any] | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_ts: float | None = None  #: newest ``ts`` seen from this node (its clock)
    _seq: dict[str, int] = field(default_factory=dict)

    @property
    def role(self) -> str:
        """``coordinator`` once a plan, live figures or results were seen, else ``station``."""
        if self.plan is not None or self.live is not None or self.results:
            return "coordinator"
        return "coordinator" if self.summary in ("ACTIVE", "PAUSED") else "station"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "link": self.link,
            "summary": self.summary,
            "session": self.session,
            "reason": self.reason,
            "status_ts": self.status_ts,
            "warped_clock": self.warped_clock,
            "pass": self.pass_state,
            "track": self.track,
            "pointing": self.pointing,
            "trail": list(self.trail),
            "rates_hz": self.rates_hz,
            "events_recorded": self.events_recorded,
            "hwp": self.hwp,
            "alarms": list(self.alarms),
            "telemetry_gaps": self.telemetry_gaps,
            "plan": self.plan,
            "live": self.live,
            "results": self.results,
            "last_ts": self.last_ts,
        }


def _number(x: object) -> float | None:
    """A finite float, or None (JSON from the bus is untrusted)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    value = float(x)
    return value if math.isfinite(value) else None


def _time(x: object) -> float | None:
    """POSIX seconds from a number or an ISO 8601 UTC string (``t_utc`` of telemetry)."""
    if isinstance(x, str):
        try:
            return datetime.fromisoformat(x).timestamp()
        except ValueError:
            return None
    return _number(x)


def _track(raw: object) -> list[list[float]]:
    if not isinstance(raw, list):
        return []
    out: list[list[float]] = []
    for point in raw[:TRACK_MAX]:
        if isinstance(point, list) and len(point) == 3:
            values = [_number(v) for v in point]
            if all(v is not None for v in values):
                out.append([v for v in values if v is not None])
    return out


def _moved(a: list[float], b: list[float]) -> float:
    """How far the mount moved between two trail points, |Δaz| (wrapped) + |Δel| in deg."""
    daz = abs((b[1] - a[1] + 180.0) % 360.0 - 180.0)
    return daz + abs(b[2] - a[2])


class DashboardModel:
    """All nodes, updated message by message; :attr:`version` counts accepted changes."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeView] = {}
        self.version = 0
        self.broker = {"url": "", "connected": False, "error": None, "embedded": False}

    def set_broker(self, **fields: Any) -> None:
        """Record the dashboard's own broker link (shown in the page header)."""
        self.broker.update(fields)
        self.version += 1

    def update(self, topic: str, payload: bytes) -> bool:
        """Apply one message; True when it changed the model (ignored otherwise)."""
        parts = topic.split("/")
        if len(parts) < 4 or "/".join(parts[:2]) != TOPIC_ROOT or not parts[2]:
            return False
        name, kind, rest = parts[2], parts[3], parts[4:]
        if not payload:  # a cleared retained topic
            return False
        try:
            body = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return False
        if not isinstance(body, dict):
            return False
        node = self.nodes.setdefault(name, NodeView(name))
        ts = _number(body.get("ts"))
        if ts is not None and (node.last_ts is None or ts > node.last_ts):
            node.last_ts = ts
        changed = self._apply(node, kind, rest, body)
        if changed:
            self.version += 1
        return changed

    def _apply(self, node: NodeView, kind: str, rest: list[str], body: dict[str, Any]) -> bool:
        if kind == "status" and not rest:
            return self._status(node, body)
        if kind == "state" and rest == ["pass"]:
            node.pass_state = {
                k: body.get(k) for k in ("state", "pass_id", "aos_utc", "los_utc", "reason")
            }
            if "track" in body or body.get("state") == "IDLE":
                node.track = _track(body.get("track"))
            return True
        if kind == "state" and rest == ["plan"]:
            node.plan = body
            return True
        if kind == "telemetry" and len(rest) == 1:
            return self._telemetry(node, rest[0], body)
        if kind == "event" and len(rest) == 1:
            level = body.get("level", "info")
            if level not in ("warning", "error"):
                return False
            node.alarms.append(
                {
                    "kind": str(body.get("kind") or rest[0]),
                    "level": str(level),
                    "message": str(body.get("message") or body.get("reason") or ""),
                    "t_utc": body.get("t_utc"),
                    "ts": _number(body.get("ts")),
                }
            )
            return True
        if kind == "campaign" and len(rest) == 3 and rest[1] == "result":
            node.results[rest[2]] = body
            while len(node.results) > RESULTS_KEPT:
                del node.results[next(iter(node.results))]
            return True
        return False

    @staticmethod
    def _status(node: NodeView, body: dict[str, Any]) -> bool:
        session = body.get("session", 0)
        session = session if isinstance(session, int) and not isinstance(session, bool) else 0
        state = str(body.get("state", "unknown"))
        # A Will from an older session (broker session takeover) must not win over the
        # newer session's "online" (docs/mqtt-api.md, "status and sessions").
        if session < node.session:
            return False
        node.session = session
        node.link = state
        node.summary = str(body.get("summary", "?"))
        node.reason = str(body["reason"]) if body.get("reason") is not None else None
        node.status_ts = _number(body.get("ts"))
        node.warped_clock = "clock" in body
        return True

    @staticmethod
    def _telemetry(node: NodeView, stream: str, body: dict[str, Any]) -> bool:
        seq = body.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            last = node._seq.get(stream)
            if last is not None and seq > last + 1:
                node.telemetry_gaps += seq - last - 1
            node._seq[stream] = seq
        if stream == "pointing":
            return DashboardModel._pointing(node, body)
        if stream == "rates":
            rates = body.get("rates_hz")
            if not isinstance(rates, dict):
                return False
            node.rates_hz = {
                str(k): v for k, v in ((k, _number(r)) for k, r in rates.items()) if v is not None
            }
            events = body.get("events")
            node.events_recorded = events if isinstance(events, int) else node.events_recorded
            return True
        if stream == "hwp":
            node.hwp = {
                k: v
                for k in ("theta_deg", "commanded_deg", "actual_deg")
                if (v := _number(body.get(k))) is not None
            }
            return True
        if stream == "live":
            node.live = body
            return True
        return False

    @staticmethod
    def _pointing(node: NodeView, body: dict[str, Any]) -> bool:
        az, el = body.get("az_deg"), body.get("el_deg")
        if not (isinstance(az, list) and isinstance(el, list) and az and len(az) == len(el)):
            return False
        t = body.get("t_utc")
        t = t if isinstance(t, list) else []
        err = body.get("error_arcsec")
        err = err if isinstance(err, list) else []
        last: list[float] | None = None
        for i in range(len(az)):
            a, e = _number(az[i]), _number(el[i])
            if a is None or e is None:
                continue
            ti = _time(t[i]) if i < len(t) else None
            last = [ti if ti is not None else 0.0, a % 360.0, e]
            if not node.trail or _moved(node.trail[-1], last) >= TRAIL_STEP_DEG:
                node.trail.append(last)
        if last is None:
            return False
        errors = [abs(v) for v in (_number(x) for x in err) if v is not None]
        node.pointing = {"t": last[0], "az_deg": last[1], "el_deg": last[2]}
        if errors:
            node.pointing["error_arcsec"] = max(errors)
        return True

    def snapshot(self) -> dict[str, Any]:
        """The whole model as JSON-ready data (what the page receives)."""
        return {
            "version": self.version,
            "broker": dict(self.broker),
            "nodes": [self.nodes[n].to_json() for n in sorted(self.nodes)],
        }
