"""Time-tagger emulator throughput on the world's events (issue 4: >= 20 M events/s/station).

Candidates, all on the physics world (``sim_hardware.world.World``) through the rig's own
coupling (:class:`sim_hardware.rig.WorldSource`) and the tagger model:

1. **tagger generation**: :meth:`TimeTaggerModel.detect` cutting consecutive rig-sized slices
   (``slice_s`` of the shipped rig config) of one station during the common pass, i.e. the
   full world pipeline (pair thinning by the pointing coupling, polarization outcomes, light
   time, jitter, background, dead time, afterpulses, station clock, sorting) plus the
   tagger's channel processing;
2. **tagger zmq stream**: the same model behind the IDQ server's ``--channel all`` stream,
   received by a raw zmq PAIR client.

The world is the shipped rig config's, made bright enough to need the target rate (pair rate
1e9/s, no fixed optics loss: ~15 M detections per second at Delingha, el ~45 deg); the mount
tracks perfectly (the pointing is the world's line of sight). Baseline in the same run: plain
numpy generation of the same number of events, uniform int64 times + sort + channels. The
issue's figure is absolute, so ``target_ratio`` is 20 M events/s divided by the baseline.
A reference row shows the model on a plain Poisson source (no physics).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import zmq
import zmq.asyncio

from bench.harness import Result, throughput
from drivers.clock import WarpClock
from drivers.config import load_toml
from drivers.datatypes import AltAz
from sim_hardware.devices.timetagger import PoissonSource, TimeTaggerModel
from sim_hardware.rig import WorldSource
from sim_hardware.servers.idq import IdqServer
from sim_hardware.world import World, load_world_config

RIG = Path(__file__).resolve().parents[1] / "configs" / "rig" / "delingha_lijiang.toml"
STATION = "delingha"
SPAN_S = 1.0  #: simulated seconds generated per measurement
TARGET_EVENTS_PER_S = 20e6
CHANNELS = (1, 2, 3, 4, 8)  #: H, V, D, A, PPS


class Burst:
    """A clock that starts at ``start`` and then is always ahead: every slice is due at once
    (a WarpClock at a huge rate would have run past the pass before the stream starts)."""

    rate = 1e9

    def __init__(self, start: float) -> None:
        self._start = start
        self._started = False

    def now(self) -> float:
        if not self._started:
            self._started = True
            return self._start
        return self._start + 1e9

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self._start, tz=UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    async def sleep_until(self, t: float) -> None:
        await asyncio.sleep(0)

    def to_wall(self, seconds: float) -> float:
        return 0.0


class OnTarget:
    """A perfectly tracking mount: the world's own line of sight."""

    def __init__(self, world: World, station: str) -> None:
        self.world, self.station = world, station

    def position_at(self, t: float) -> AltAz:
        return self.world.line_of_sight(self.station, t)


def _world() -> tuple[World, float]:
    table = load_toml(RIG)
    slice_s = table.table("rig").number("slice_s")
    cfg = load_world_config(table)
    stations = tuple(dataclasses.replace(s, optics_loss_db=0.0) for s in cfg.stations)
    source = dataclasses.replace(cfg.source, pair_rate_hz=1e9)
    return World(dataclasses.replace(cfg, source=source, stations=stations), seed=1), slice_s


def _model(world: World, start: float) -> TimeTaggerModel:
    clock = Burst(start)  # the stream's first slice starts at ``start``; all are due at once
    source = WorldSource(world, STATION, OnTarget(world, STATION), None)
    model = TimeTaggerModel(clock, source, n_channels=8)
    model.recording = True
    model.raw_send.update(dict.fromkeys(CHANNELS, True))
    return model


def _generate(model: TimeTaggerModel, t0: float, slice_s: float) -> int:
    n = 0
    for i in range(round(SPAN_S / slice_s)):
        n += len(model.detect(t0 + i * slice_s, t0 + (i + 1) * slice_s).t_ps)
    return n


def _baseline(n: int) -> None:
    rng = np.random.default_rng(0)
    t = rng.integers(0, int(SPAN_S * 1e12), n)
    t.sort()
    ch = rng.integers(1, 5, n, dtype=np.uint8)
    assert len(ch) == len(t) == n


async def _stream(model: TimeTaggerModel, slice_s: float) -> tuple[int, float]:
    ctx = zmq.asyncio.Context()
    # the baseline client uses `--channel all` and port 0: qgs extensions of the emulator
    async with IdqServer(model, slice_s=slice_s, extensions=True) as server:
        req = ctx.socket(zmq.REQ)
        pair = ctx.socket(zmq.PAIR)
        try:
            req.connect(f"tcp://127.0.0.1:{server.dlt_port}")
            await req.send_string("start-stream --address 127.0.0.1 --channel all --stream-port 0")
            port = json.loads(await asyncio.wait_for(req.recv(), 5))["stream_port"]
            pair.connect(f"tcp://127.0.0.1:{port}")
            n = 0
            t = time.perf_counter()
            for _ in range(round(SPAN_S / slice_s)):
                _, body = await asyncio.wait_for(pair.recv_multipart(copy=False), 30)
                n += len(body.buffer) // 16
            return n, time.perf_counter() - t
        finally:
            req.close(linger=0)
            pair.close(linger=0)
            ctx.term()


def run() -> list[Result]:
    world, slice_s = _world()
    assert world.config.start_time is not None
    t0 = world.config.start_time + 390.0  # 17:24:30, Delingha el ~45 (both stations up)
    n = _generate(_model(world, t0), t0, slice_s)
    offset = [0.0]

    def generate() -> None:  # a fresh stretch each time: no cached work to reuse
        offset[0] += SPAN_S
        _generate(_model(world, t0 + offset[0]), t0 + offset[0], slice_s)

    base = throughput(lambda: _baseline(n), n)
    gen = throughput(generate, n)
    n_stream, dt = asyncio.run(_stream(_model(world, t0 + 10.0), slice_s))
    stream = n_stream / dt
    poisson_model = TimeTaggerModel(
        WarpClock(t0, rate=1e6),
        PoissonSource({c: n / SPAN_S / 4 for c in (1, 2, 3, 4)}, origin=t0, seed=1),
    )
    poisson = throughput(lambda: _generate(poisson_model, t0, slice_s), n)
    target = TARGET_EVENTS_PER_S / base
    extra = {
        "station": STATION,
        "events_per_sim_s": n / SPAN_S,
        "slice_s": slice_s,
        "candidate_Mev_per_s": gen / 1e6,
        "target_Mev_per_s": TARGET_EVENTS_PER_S / 1e6,
    }
    return [
        Result(
            "tagger generation, world events, one station",
            "TimeTaggerModel.detect on WorldSource (rig slices)",
            gen,
            "numpy uniform int64 + sort + channels",
            base,
            "events/s",
            target_ratio=target,
            extra=extra,
        ),
        Result(
            "tagger zmq stream, world events, one station",
            "IdqServer --channel all -> raw PAIR client",
            stream,
            "numpy uniform int64 + sort + channels",
            base,
            "events/s",
            target_ratio=target,
            extra={"events": n_stream, "candidate_Mev_per_s": stream / 1e6},
        ),
        Result(
            "tagger generation, Poisson source (reference, no physics)",
            "TimeTaggerModel.detect on PoissonSource",
            poisson,
            "numpy uniform int64 + sort + channels",
            base,
            "events/s",
            extra={"candidate_Mev_per_s": poisson / 1e6},
        ),
    ]
