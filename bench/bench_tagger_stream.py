"""Time-tagger event streaming: ZeroMQ PAIR stream -> IDQ driver decoding -> EventBlocks.

Issue 5 asks for >= 10 M events/s sustained. The sender runs in its own process and pushes
pre-encoded blocks (the documented IDQ stream format) as fast as the socket takes them; that
rate, measured in the same run into a raw receiver that decodes nothing, is the baseline
("what the source can generate and the link can carry"). The candidate is the driver's path:
:class:`~drivers.timetagger.zmqlink.ZmqReceiver` -> :class:`BlockStream` (decode, gap
accounting, bounded queue) -> consumer. Ratio = driver / source; absolute Mev/s in ``extra``.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time

import numpy as np
import zmq
import zmq.asyncio

from bench.harness import Result
from drivers.timetagger.blockstream import BlockStream
from drivers.timetagger.idqformat import decode_block, encode_block
from drivers.timetagger.zmqlink import ZmqReceiver

EVENTS_PER_BLOCK = 65_536
BLOCKS = 400  #: 26 M events per run
TARGET_EVENTS_S = 10e6


def _sender(ports: mp.Queue[int], blocks: int, per_block: int) -> None:
    """Device side (own process): bind a PAIR socket, report its port, send ``blocks``."""
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.integers(1, 200_000, per_block)).astype(np.int64)
    ch = rng.integers(1, 5, per_block).astype(np.uint8)
    template = bytearray(encode_block(0, t, ch))
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PAIR)
    sock.setsockopt(zmq.SNDHWM, 8)
    ports.put(sock.bind_to_random_port("tcp://127.0.0.1"))
    for seq in range(blocks):
        template[0:8] = seq.to_bytes(8, "little")  # the header's sequence number
        sock.send(template)
    sock.send(b"")  # end of stream
    sock.close(linger=10_000)
    ctx.term()


async def _raw_count(endpoint: str) -> int:
    sock = zmq.asyncio.Context.instance().socket(zmq.PAIR)
    sock.connect(endpoint)
    total = 0
    try:
        while True:
            frame = await sock.recv(copy=False)
            size = len(frame.buffer)
            if not size:
                return total
            total += (size - 16) // 16
    finally:
        sock.close(linger=0)


async def _driver_count(endpoint: str) -> int:
    stream = BlockStream(
        ZmqReceiver(endpoint, device="bench"),
        lambda p: decode_block(p, device="bench"),
        device="bench",
    )
    events = 0
    try:
        async for block in stream.blocks():
            events += len(block)
    finally:
        await stream.close()
    if stream.gaps:
        raise RuntimeError(f"bench stream had gaps: {stream.gaps}")
    return events


def _measure(use_driver: bool) -> tuple[int, float]:
    ctx = mp.get_context("spawn")
    ports: mp.Queue[int] = ctx.Queue()
    proc = ctx.Process(target=_sender, args=(ports, BLOCKS, EVENTS_PER_BLOCK))
    proc.start()
    try:
        endpoint = f"tcp://127.0.0.1:{ports.get(timeout=60)}"
        counter = _driver_count if use_driver else _raw_count
        t0 = time.perf_counter()
        events = asyncio.run(asyncio.wait_for(counter(endpoint), 120.0))
        return events, time.perf_counter() - t0
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def run() -> list[Result]:
    events_b, secs_b = _measure(False)
    events_c, secs_c = _measure(True)
    source = events_b / secs_b
    driver = events_c / secs_c
    return [
        Result(
            name="tagger stream: events/s into EventBlocks (IDQ driver) vs source+link",
            candidate="IDQ driver (ZmqReceiver -> BlockStream -> EventBlock)",
            candidate_value=driver,
            baseline="raw PAIR receive of the same blocks, no decoding",
            baseline_value=source,
            unit="events/s",
            target_ratio=0.8,
            extra={
                "driver_Mev_s": driver / 1e6,
                "source_Mev_s": source / 1e6,
                "issue_target_Mev_s": TARGET_EVENTS_S / 1e6,
                "meets_issue_target": driver >= TARGET_EVENTS_S,
                "events": events_c,
                "events_per_block": EVENTS_PER_BLOCK,
            },
        )
    ]
