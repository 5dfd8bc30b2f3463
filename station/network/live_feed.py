"""The coordinator's end of the live classical channel for one running window.

Frames arrive on the MQTT reader (the event loop) and are only queued there; the
correlation runs in a worker thread once per clock second (:meth:`LiveFeed.estimate`), so
a slow estimate never delays the coordinator's commands or the stations' frames.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

from station.daemon.pass_run import tle_lines
from station.network.channel import ChannelFormatError, LiveFrame, decode_frame
from station.network.config import NetworkConfig
from station.network.live import LiveCorrelator
from station.network.plan import Window
from station.tracking.elements import OrbitElements, iso

log = logging.getLogger(__name__)

MAX_QUEUED = 600  #: frames waiting for the next estimate (10 min at 1 Hz per station)


class LiveFeed:
    """Live coincidences, QBER and S of the window's two stations."""

    def __init__(self, cfg: NetworkConfig, elements: OrbitElements, window: Window) -> None:
        self.window = window
        self.window_ended = False
        a, b = (cfg.station(s).config for s in window.stations)
        tle = tle_lines(elements)
        if tle is None:
            raise ValueError(f"the live channel needs TLE lines; {elements.source} has none")
        mode: Literal["bell", "key"] = "bell" if cfg.mode == "bell" else "key"
        self.correlator = LiveCorrelator(mode, tle, (a.site, b.site))
        self._queue: list[LiveFrame] = []
        self._lock = threading.Lock()
        self.frames = dict.fromkeys(window.stations, 0)
        self.bytes = dict.fromkeys(window.stations, 0)
        self.rejected = 0
        self.dropped = 0
        self.last: dict[str, Any] | None = None

    def add(self, station: str, payload: bytes) -> None:
        """Queue one frame from ``station`` (malformed or foreign frames are counted, dropped)."""
        if station not in self.frames:
            return
        try:
            frame = decode_frame(payload)
        except ChannelFormatError as exc:
            self.rejected += 1
            log.warning("live frame from %s rejected: %s", station, exc)
            return
        if frame.station != station:
            self.rejected += 1
            return
        self.frames[station] += 1
        self.bytes[station] += len(payload)
        if len(self._queue) >= MAX_QUEUED:
            self.dropped += 1
            return
        self._queue.append(frame)

    def estimate(self, now_s: float, *, final: bool = False) -> dict[str, Any]:
        """Feed the queued frames, estimate, and return the ``telemetry/live`` body.

        ``final``: the passes are over, no frame is coming: use every frame held (flush).
        """
        with self._lock:
            queued, self._queue = self._queue, []
            for frame in queued:
                self.correlator.add(frame)
            est = self.correlator.flush() if final else self.correlator.estimate()
        w = self.window
        body: dict[str, Any] = {
            "window_id": w.id,
            "stations": list(w.stations),
            "t_utc": iso(now_s),
            "progress": max(0.0, min(1.0, (now_s - w.start_s) / max(w.duration_s, 1.0))),
            "frames": dict(self.frames),
            "bytes": dict(self.bytes),
            "rejected": self.rejected,
            "locked": False,
        }
        if est is not None:
            body.update(est.to_json())
        self.last = body
        return body
