"""The live classical channel: bytes per second per station, and the correlator's CPU cost.

Scenarios (synthetic passes of :mod:`station.network.live_synthetic`, Micius over Delingha
and Lijiang, cut into 1 s frames by the daemon's own builder):

* Micius-like, key mode: 100 kcps singles per station (the rig's upper figure), 50 pairs/s;
* Micius-like, Bell mode: 10 kcps singles, 20 pairs/s;
* lab: 1 M pairs/s (1.5 M singles/s at A, 1.2 M at B), key mode.

Bytes: the encoded frames of station A per second of data (candidate) against the tagger's
own stream encoding for the same events (baseline: the ``QGSE`` block format of
``drivers/timetagger/idqformat.py``, 16 B per event + 24 B per block, blocks of 0.1 s);
the ratio is the compression factor (higher is better). The 9 B/event bundle format is in
``extra`` too. Reference: qcrypto's type-2 stream is ~2.25 B/event at 17+1 bits
(reference/timetag.md §(d)).

CPU: :meth:`LiveCorrelator.estimate` called once per second of data after the offset lock
(frames decoded as they arrive, as the coordinator does), Micius-like key mode at 100 kcps
on both stations: CPU seconds per second of data against the 1 s real-time budget (ratio =
how many times faster than real time; target ≥ 5, i.e. ≤ 20 % of a core at 1 Hz).
"""

from __future__ import annotations

import itertools
import time
from typing import Literal

import numpy as np

from bench.harness import Result
from drivers.timetagger.idqformat import encode_block
from station.network import live_synthetic as ls
from station.network.channel import LiveFrame, decode_frame, encode_frame
from station.network.live import LiveCorrelator

PS = 10**12


def _raw_bytes(st: ls.StationStream, block_s: float = 0.1) -> int:
    t, c = st.merged()
    step = round(block_s * PS)
    cuts = np.searchsorted(t, np.arange(int(t[0]), int(t[-1]) + step, step))
    total = 0
    for seq, (lo, hi) in enumerate(itertools.pairwise(cuts)):
        total += sum(len(p) for p in encode_block(seq, t[lo:hi], c[lo:hi]))
    return total


def _bytes(
    name: str,
    mode: Literal["bell", "key"],
    *,
    singles_hz: float,
    pair_rate_hz: float,
    duration_s: float,
) -> Result:
    p = ls.make_pass(
        21, mode=mode, duration_s=duration_s, pair_rate_hz=pair_rate_hz, singles_hz=singles_hz
    )
    frames = ls.frames_of(p.a, mode)
    t0 = time.perf_counter()
    payloads = [encode_frame(f) for f in frames]
    encode_s = time.perf_counter() - t0
    chan = sum(len(b) for b in payloads) / duration_s
    raw = _raw_bytes(p.a) / duration_s
    events = p.a.t_ps.size / duration_s
    return Result(
        name=f"live channel bytes/s per station, {name}",
        candidate="live frames (delta-coded time, basis, revealed outcomes)",
        candidate_value=chan,
        baseline="tagger stream (QGSE blocks, 16 B/event)",
        baseline_value=raw,
        unit="B/s",
        higher_is_better=False,
        extra={
            "events_per_s": events,
            "channel_bytes_per_event": chan / events,
            "raw_bytes_per_event": raw / events,
            "bundle_soa_bytes_per_s": 9.0 * events,
            "ratio_vs_bundle_soa": 9.0 * events / chan,
            "encode_cpu_s_per_s": encode_s / duration_s,
        },
    )


def _cpu() -> Result:
    duration = 30.0
    p = ls.make_pass(22, mode="key", duration_s=duration, pair_rate_hz=50.0, singles_hz=100_000.0)
    wire_a = [encode_frame(f) for f in ls.frames_of(p.a, "key")]
    wire_b = [encode_frame(f) for f in ls.frames_of(p.b, "key")]
    c = LiveCorrelator("key", ls.tle(), (p.a.site, p.b.site))
    costs: list[float] = []
    locked_at = None
    for i in range(max(len(wire_a), len(wire_b))):
        t0 = time.process_time()
        frames: list[LiveFrame] = [decode_frame(w[i]) for w in (wire_a, wire_b) if i < len(w)]
        for f in frames:
            c.add(f)
        est = c.estimate()
        cost = time.process_time() - t0
        if est is not None:
            if locked_at is None:
                locked_at = i
            else:
                costs.append(cost)
    if not costs:
        raise RuntimeError("the correlator never locked: the bench measures nothing")
    per_s = float(np.mean(costs))
    return Result(
        name="live correlator CPU per second of data, Micius-like key mode, 100 kcps x 2",
        candidate="decode 2 frames + LiveCorrelator.estimate() (after lock)",
        candidate_value=per_s,
        baseline="real-time budget (1 s of data per second)",
        baseline_value=1.0,
        unit="CPU s per s",
        higher_is_better=False,
        target_ratio=5.0,
        extra={
            "max_cpu_s": float(np.max(costs)),
            "locked_after_s": locked_at,
            "calls": len(costs),
        },
    )


def run() -> list[Result]:
    return [
        _bytes(
            "Micius-like key, 100 kcps", "key", singles_hz=1e5, pair_rate_hz=50.0, duration_s=10
        ),
        _bytes(
            "Micius-like Bell, 10 kcps", "bell", singles_hz=1e4, pair_rate_hz=20.0, duration_s=20
        ),
        _bytes("lab key, 1 M pairs/s", "key", singles_hz=1.5e6, pair_rate_hz=1e6, duration_s=2),
        _cpu(),
    ]


if __name__ == "__main__":
    for r in run():
        print(
            r.name,
            f"{r.candidate_value:.4g} vs {r.baseline_value:.4g} {r.unit}",
            f"ratio {r.ratio:.3g}",
            r.extra,
        )
