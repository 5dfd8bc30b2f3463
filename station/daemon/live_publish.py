"""The station's end of the live classical channel: tagger blocks → 1 s frames → MQTT.

:class:`FrameBuilder` cuts the recorded event stream into frames of one tagger second
([k·1 s, (k+1)·1 s) on the tagger's own timescale, so the cut does not depend on how the
tagger batches its blocks), keeps the analyzer outputs (basis and outcome from the channel
map) and the PPS edges, and in key mode applies the reveal rule of
:mod:`station.analysis.key.reveal`. :class:`LivePublisher` wraps it for the daemon:

- :meth:`LivePublisher.feed` is called from the recording loop with every block; it only
  queues the block's arrays (bounded: beyond :data:`MAX_QUEUED_EVENTS` the block is dropped
  for the live channel and counted — the bundle has it anyway);
- :meth:`LivePublisher.pump` runs beside the recording: it builds and encodes frames in a
  worker thread (numpy releases the GIL; the event loop never waits on it) and hands each
  frame to the sink (``StationBus.publish_raw`` on ``live/events``, QoS 0) with a bounded
  outbox: when the broker is slow or gone, the oldest frames are dropped and counted.

Publishing never blocks or endangers recording: nothing here raises into the recording
loop, and the bundle is written whatever happens to the frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from drivers.datatypes import ChannelMap, EventBlock
from station.analysis.key.reveal import LightTime, RevealParams, RuleAnchor, revealed_mask
from station.network.channel import DEFAULT_TICK_PS, FrameAnchor, LiveFrame, encode_frame
from station.recording.timescale import TimescaleTracker

if TYPE_CHECKING:
    from station.config import StationConfig
    from station.tracking.elements import OrbitElements

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
PS = 10**12
TOPIC_SUFFIX = "live/events"
MAX_QUEUED_EVENTS = 20_000_000  #: events waiting for the builder (~180 MB at 9 B each)
MAX_OUTBOX = 8  #: encoded frames waiting for the broker
MAX_EDGES = 100_000  #: PPS edges kept for the reveal rule (a day at 1 Hz)
SEND_TIMEOUT_S = 2.0  #: wall bound on one publish

Sink = Callable[[bytes], Awaitable[bool]]


@dataclass
class FrameBuilder:
    """Cuts one station's stream into :class:`LiveFrame` s of one tagger second."""

    station: str
    run_id: str
    mode: Literal["bell", "key"]
    channels: ChannelMap
    pps_channel: int | None
    source_state: Literal["phi+", "psi+"]
    angles_deg: tuple[float, float]
    params: RevealParams = field(default_factory=RevealParams)
    light: LightTime | None = None
    tick_ps: int = DEFAULT_TICK_PS
    rule_anchor: RuleAnchor | None = None
    frames_dropped: int = 0
    _t: list[I64] = field(default_factory=list, repr=False)
    _c: list[U8] = field(default_factory=list, repr=False)
    _second: int | None = None
    _first_second: int | None = None
    _edges: list[int] = field(default_factory=list, repr=False)
    _lookup: U8 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lookup = np.full(256, 255, np.uint8)
        for code, ch in enumerate(
            (self.channels.h, self.channels.v, self.channels.d, self.channels.a)
        ):
            self._lookup[ch] = code
        if self.pps_channel is not None:
            self._lookup[self.pps_channel] = 8

    def feed(self, t_ps: I64, channel: U8, anchor: FrameAnchor | None) -> list[LiveFrame]:
        """Add events (time-ordered); returns the frames their arrival completed."""
        out: list[LiveFrame] = []
        code = self._lookup[channel]
        keep = code != 255
        t, code = t_ps[keep], code[keep]
        while t.size:
            sec = int(t[0] // PS)
            if self._second is None:
                self._second = self._first_second = sec
            if sec < self._second:  # a step back (restarted stream): into the current frame
                sec = self._second
            if sec > self._second:
                out.append(self._close(anchor))
                self._second = sec
            cut = int(np.searchsorted(t, (self._second + 1) * PS))
            self._t.append(t[:cut])
            self._c.append(code[:cut])
            t, code = t[cut:], code[cut:]
        return out

    def finish(self, anchor: FrameAnchor | None) -> list[LiveFrame]:
        """The last (partial) frame, if any events are held."""
        if self._second is None or not self._t:
            return []
        return [self._close(anchor)]

    def _close(self, anchor: FrameAnchor | None) -> LiveFrame:
        assert self._second is not None
        assert self._first_second is not None
        t = np.concatenate(self._t) if self._t else np.zeros(0, np.int64)
        c = np.concatenate(self._c) if self._c else np.zeros(0, np.uint8)
        self._t, self._c = [], []
        if t.size > 1 and bool(np.any(np.diff(t) < 0)):
            order = np.argsort(t, kind="stable")
            t, c = t[order], c[order]
        pps = c == 8
        edges, t, c = t[pps], t[~pps], c[~pps]
        if len(self._edges) < MAX_EDGES:
            self._edges.extend(int(e) for e in edges)
        start = self._second * PS
        if t.size:  # a restarted stream can put events before the frame's second
            start = min(start, int(t[0]))
        revealed = self._reveal(t, edges, anchor)
        basis = (c >> 1).astype(np.uint8)
        outcome = np.where(revealed, c & 1, 0).astype(np.uint8)
        return LiveFrame(
            station=self.station,
            run_id=self.run_id,
            seq=self._second - self._first_second,
            mode=self.mode,
            t_start_ps=start,
            t_end_ps=(self._second + 1) * PS,
            anchor=anchor,
            channels=(self.channels.h, self.channels.v, self.channels.d, self.channels.a),
            pps_channel=self.pps_channel,
            source_state=self.source_state,
            angles_deg=self.angles_deg,
            t_ps=t,
            basis=basis,
            outcome=outcome,
            revealed=revealed,
            pps_ps=edges[:64],
            fraction=self.params.fraction if self.mode == "key" else 1.0,
            seed=self.params.seed,
            slot_ps=self.params.slot_ps,
            tick_ps=self.tick_ps,
            frames_dropped=self.frames_dropped,
        )

    def _reveal(self, t: I64, edges: I64, anchor: FrameAnchor | None) -> npt.NDArray[np.bool_]:
        if self.mode == "bell":
            return np.ones(t.size, bool)
        if self.light is None:
            return np.zeros(t.size, bool)
        if (
            self.rule_anchor is None
            and edges.size
            and anchor is not None
            and anchor.source == "pps"
        ):
            e0 = int(edges[0])
            sec = round(anchor.posix_s + (e0 - anchor.tagger_ps) / PS)
            self.rule_anchor = RuleAnchor(e0, int(sec))
        if self.rule_anchor is None:
            return np.zeros(t.size, bool)
        return revealed_mask(
            t, np.asarray(self._edges, np.int64), self.rule_anchor, self.light, self.params
        )

    def annotation(self) -> dict[str, Any]:
        """The manifest's ``analyzer.live_channel`` section: what the offline key must drop."""
        return {
            "mode": self.mode,
            **self.params.to_json(),
            "rule_anchor": None if self.rule_anchor is None else self.rule_anchor.to_json(),
            "rule": "station.analysis.key.reveal (docs/analysis.md, Live classical channel)",
        }


class LivePublisher:
    """Feeds a :class:`FrameBuilder` from the recording loop and publishes its frames."""

    def __init__(self, builder: FrameBuilder, timescale: TimescaleTracker) -> None:
        self.builder = builder
        self.timescale = timescale
        self._queue: deque[tuple[I64, U8, FrameAnchor | None]] = deque()
        self._queued_events = 0
        self._outbox: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._anchor: FrameAnchor | None = None
        self._anchor_at = -1.0
        self._busy = False
        self.frames_sent = 0
        self.frames_dropped = 0
        self.blocks_dropped = 0
        self.build_errors = 0

    def feed(self, block: EventBlock, received_s: float) -> None:
        """Queue one recorded block (cheap, never raises into the recording loop)."""
        try:
            if received_s - self._anchor_at >= 1.0:  # the tracker's anchor, once a second
                a = self.timescale.section().get("anchor")
                if isinstance(a, dict):
                    self._anchor = FrameAnchor(
                        int(a["tagger_ps"]),
                        float(a["posix_s"]),
                        float(a["uncertainty_s"]),
                        str(a["source"]),
                    )
                self._anchor_at = received_s
            n = len(block)
            if self._queued_events + n > MAX_QUEUED_EVENTS:
                self.blocks_dropped += 1
                return
            self._queue.append((block.t_ps, block.channel, self._anchor))
            self._queued_events += n
            self._wake.set()
        except Exception:  # the live channel must never stop the recording
            log.exception("live channel: could not queue a block")
            self.build_errors += 1

    @property
    def idle(self) -> bool:
        """Nothing queued, being built or waiting for the broker."""
        return not (self._queue or self._outbox or self._busy)

    def _build(self, items: list[tuple[I64, U8, FrameAnchor | None]]) -> list[bytes]:
        out: list[bytes] = []
        for t, c, anchor in items:
            for frame in self.builder.feed(t, c, anchor):
                out.append(encode_frame(frame))
        return out

    def _enqueue(self, frames: list[bytes]) -> None:
        for f in frames:
            if len(self._outbox) >= MAX_OUTBOX:
                self._outbox.popleft()
                self.frames_dropped += 1
                self.builder.frames_dropped = self.frames_dropped
            self._outbox.append(f)

    async def pump(self, send: Sink) -> None:
        """Build, encode and publish frames until cancelled (run beside the recording)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._busy = True
            try:
                await self._publish_queued(send)
            finally:
                self._busy = False

    async def _publish_queued(self, send: Sink) -> None:
        items = list(self._queue)
        self._queue.clear()
        self._queued_events = 0
        try:
            frames = await asyncio.to_thread(self._build, items)
        except Exception:
            log.exception("live channel: building a frame failed")
            self.build_errors += 1
            return
        self._enqueue(frames)
        while self._outbox:
            payload = self._outbox.popleft()
            try:
                ok = await asyncio.wait_for(send(payload), SEND_TIMEOUT_S)
            except (TimeoutError, OSError):
                ok = False
            if ok:
                self.frames_sent += 1
            else:
                self.frames_dropped += 1
                self.builder.frames_dropped = self.frames_dropped

    def annotation(self) -> dict[str, Any]:
        """``live_channel`` for the manifest, with the frame counters."""
        return {
            **self.builder.annotation(),
            "frames_sent": self.frames_sent,
            "frames_dropped": self.frames_dropped,
            "blocks_dropped": self.blocks_dropped,
        }


def live_publisher(
    cfg: StationConfig,
    run_id: str,
    elements: OrbitElements,
    timescale: TimescaleTracker,
    analyzer: dict[str, Any],
) -> LivePublisher | None:
    """The pass's publisher from the station config (None when ``[live] enabled = false``).

    ``analyzer`` is the manifest's ``analyzer`` section (source-frame angles, state, mode).
    """
    from station.daemon.pass_run import tle_lines  # pass_run imports this module

    live = cfg.daemon.live
    if not live.enabled:
        return None
    tle = tle_lines(elements)
    mode: Literal["bell", "key"] = "bell" if analyzer["mode"] == "bell" else "key"
    angles = analyzer["source_frame_angles_deg"]
    state: Literal["phi+", "psi+"] = "psi+" if analyzer["source_state"] == "psi+" else "phi+"
    builder = FrameBuilder(
        station=cfg.name,
        run_id=run_id,
        mode=mode,
        channels=cfg.daemon.analyzer.channels,
        pps_channel=cfg.daemon.timetagger.pps_channel,
        source_state=state,
        angles_deg=(float(angles["H"]), float(angles["D"])),
        params=RevealParams(
            fraction=live.sample_fraction, seed=live.seed, slot_ps=round(live.slot_s * PS)
        ),
        light=LightTime(tle, cfg.site) if tle else None,
    )
    return LivePublisher(builder, timescale)
