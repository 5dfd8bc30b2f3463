"""Time-tagger emulator throughput: event generation and the zmq stream, vs plain numpy.

Baseline (issue 4): generate the same number of uniform random timestamps with numpy and sort
them. Candidates: (1) the tagger model cutting slices from a :class:`PoissonSource` (channel
processing included); (2) the same through the IDQ server's ``--channel all`` stream into a
raw zmq PAIR client. The issue asks for >= 20 M events/s per station; the ratio shows how the
emulator compares with the numpy floor on this machine.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import zmq
import zmq.asyncio

from bench.harness import Result, throughput
from drivers.clock import WarpClock
from sim_hardware.devices.timetagger import PoissonSource, TimeTaggerModel
from sim_hardware.servers.idq import IdqServer

RATE = 20e6  #: events per clock second (the issue's target), 4 channels
SLICE_S = 0.02
N_SLICES = 50  #: 1 clock second = 20 M events
EPOCH = 1_700_000_000.0


def _baseline(n: int) -> None:
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 1e12, n).astype(np.int64)
    t.sort()
    rng.integers(1, 5, n, dtype=np.uint8)


def _model() -> TimeTaggerModel:
    clock = WarpClock(EPOCH, rate=1e6)  # slices are generated as fast as possible
    src = PoissonSource({c: RATE / 4 for c in (1, 2, 3, 4)}, origin=clock.epoch, seed=1)
    return TimeTaggerModel(clock, src)


def _generate(model: TimeTaggerModel) -> int:
    t0 = EPOCH
    n = 0
    for i in range(N_SLICES):
        n += len(model.detect(t0 + i * SLICE_S, t0 + (i + 1) * SLICE_S).t_ps)
    return n


async def _stream(n_blocks: int) -> tuple[int, float]:
    model = _model()
    model.recording = True
    model.raw_send.update(dict.fromkeys(model.channels, True))
    ctx = zmq.asyncio.Context()
    async with IdqServer(model, slice_s=SLICE_S) as server:
        req = ctx.socket(zmq.REQ)
        pair = ctx.socket(zmq.PAIR)
        try:
            req.connect(f"tcp://127.0.0.1:{server.dlt_port}")
            await req.send_string("start-stream --address 127.0.0.1 --channel all --stream-port 0")
            port = json.loads(await asyncio.wait_for(req.recv(), 5))["stream_port"]
            pair.connect(f"tcp://127.0.0.1:{port}")
            n = 0
            t = time.perf_counter()
            for _ in range(n_blocks):
                _, body = await asyncio.wait_for(pair.recv_multipart(copy=False), 30)
                n += len(body.buffer) // 16
            return n, time.perf_counter() - t
        finally:
            req.close(linger=0)
            pair.close(linger=0)
            ctx.term()


def run() -> list[Result]:
    model = _model()
    n = _generate(model)
    base = throughput(lambda: _baseline(n), n)
    gen = throughput(lambda: _generate(model), n)
    n_stream, dt = asyncio.run(_stream(N_SLICES))
    stream = n_stream / dt
    extra = {"events": n, "target_events_per_s": RATE}
    return [
        Result(
            "tagger generation",
            "TimeTaggerModel.detect",
            gen,
            "numpy uniform+sort",
            base,
            "events/s",
            target_ratio=None,
            extra=extra,
        ),
        Result(
            "tagger zmq stream",
            "IdqServer --channel all -> PAIR",
            stream,
            "numpy uniform+sort",
            base,
            "events/s",
            extra={"events": n_stream},
        ),
    ]
