"""Timestamp stream over a real ZeroMQ PAIR pair: decoding, gaps, back-pressure, end of stream.

The receive side is the driver's: :mod:`drivers.transport.zmqstream` -> QgsBlockSource ->
BlockStream; blocks are in the qgs format of docs/devices/idq-emulator.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import pytest
import zmq
import zmq.asyncio

from drivers.errors import DeviceFault, DeviceTimeout, ProtocolError
from drivers.timetagger.blockstream import BlockStream, Gap
from drivers.timetagger.idqformat import HEADER, QgsBlockSource, decode_block, encode_block
from drivers.transport.zmqstream import open_zmq_stream

Frames = list[bytes]


def block(seq: int, n: int = 100) -> Frames:
    t = np.arange(n, dtype=np.int64) * 1000 + seq * 1_000_000
    ch = (np.arange(n) % 4 + 1).astype(np.uint8)
    return encode_block(seq, t, ch)


class Sender:
    """The device side: a bound PAIR socket on 127.0.0.1."""

    def __init__(self, sndhwm: int = 1000) -> None:
        self.sock = zmq.asyncio.Context.instance().socket(zmq.PAIR)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")

    async def send(self, frames: Frames) -> None:
        async with asyncio.timeout(10.0):
            await self.sock.send_multipart(frames)

    def close(self) -> None:
        self.sock.close(linger=0)


async def stream_for(sender: Sender, **kw: Any) -> BlockStream:
    pair = await open_zmq_stream(f"zmq+tcp://127.0.0.1:{sender.port}", timeout=1.0, rcvhwm=2)
    return BlockStream(QgsBlockSource(pair, device="idq://test"), device="idq://test", **kw)


async def collect(stream: BlockStream) -> list[int]:
    seqs: list[int] = []
    async with asyncio.timeout(20.0):
        async for b in stream.blocks():
            seqs.append(b.seq)
    return seqs


def test_decode_round_trip_and_types() -> None:
    b = decode_block(block(7, 10), device="d")
    assert b.seq == 7
    assert b.t_ps.dtype == np.int64
    assert b.channel.dtype == np.uint8
    assert b.t_ps[3] == 7_003_000
    assert b.channel.tolist() == [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]


def test_header_layout_matches_the_emulator_doc() -> None:
    header, body = encode_block(5, np.array([7, 9]), np.array([1, 64]))

    def le(value: int, size: int) -> bytes:
        return value.to_bytes(size, "little")

    assert header == b"QGSE" + le(1, 2) + le(0, 2) + le(5, 8) + le(2, 8)
    assert body == le(7, 8) + le(1, 8) + le(9, 8) + le(64, 8)


def _header(magic: bytes = b"QGSE", version: int = 1, seq: int = 1, count: int = 3) -> bytes:
    return HEADER.pack(magic, version, 0, seq, count)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([b"\x01\x02"], "1 frame"),
        ([_header(), b"", b""], "3 frame"),
        ([b"\x01\x02", b""], "header of 2 bytes"),
        ([_header(magic=b"XXXX"), b""], "magic"),
        ([_header(version=2), b""], "version 2"),
        ([block(1, 3)[0], block(1, 3)[1][:-5]], "announces 3 events"),
        (encode_block(1, np.array([5]), np.array([300])), "channel 300"),
        (encode_block(1, np.array([5]), np.array([0])), "channel 0"),
        (encode_block(1, np.array([5, 4]), np.array([1, 1])), "decrease"),
    ],
)
def test_malformed_blocks(frames: Frames, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_block(frames, device="d")


async def test_gaps_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    sender = Sender()
    stream = await stream_for(sender)
    try:
        with caplog.at_level(logging.WARNING):
            for seq in (0, 1, 4, 5, 6):
                await sender.send(block(seq))
            await sender.send([b""])
            assert await collect(stream) == [0, 1, 4, 5, 6]
        assert stream.gaps == [Gap(2, 4)]
        assert stream.missing_blocks == 2
        assert stream.ended
        assert any("blocks 2..3 missing" in r.getMessage() for r in caplog.records)
    finally:
        await stream.close()
        sender.close()


async def test_slow_consumer_back_pressure_loses_nothing() -> None:
    sender = Sender(sndhwm=2)
    stream = await stream_for(sender, queue_blocks=4)
    n_blocks, per_block = 200, 8000  # 25 MB: far more than the kernel socket buffers
    try:
        producer = asyncio.create_task(
            asyncio.wait_for(_produce(sender, n_blocks, per_block), 30.0)
        )
        # Nobody consumes yet: the reader fills its bounded queue and then stops reading.
        async with asyncio.timeout(10.0):
            while stream.blocks_received < 5:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert stream.blocks_received <= 5  # queue bound + the one waiting in put()
        assert not producer.done()  # and the sender is held back, not dropping
        seqs: list[int] = []
        events = 0
        async with asyncio.timeout(30.0):
            async for b in stream.blocks():
                seqs.append(b.seq)
                events += len(b)
                if len(seqs) % 50 == 0:
                    await asyncio.sleep(0.01)  # a slow consumer
        await producer
        assert seqs == list(range(n_blocks))
        assert events == n_blocks * per_block
        assert stream.gaps == []
    finally:
        await stream.close()
        sender.close()


async def _produce(sender: Sender, n_blocks: int, per_block: int) -> None:
    for seq in range(n_blocks):
        await sender.send(block(seq, per_block))
    await sender.send([b""])


async def test_malformed_block_fails_the_stream() -> None:
    sender = Sender()
    stream = await stream_for(sender)
    try:
        await sender.send(block(0))
        await sender.send([b"garbage!"])
        with pytest.raises(ProtocolError, match="1 frame"):
            await collect(stream)
    finally:
        await stream.close()
        sender.close()


async def test_silent_stream_times_out() -> None:
    sender = Sender()
    stream = await stream_for(sender, idle_timeout_s=0.3)
    try:
        with pytest.raises(DeviceTimeout, match="no timestamp block"):
            await collect(stream)
    finally:
        await stream.close()
        sender.close()


async def test_close_ends_a_waiting_consumer() -> None:
    sender = Sender()
    stream = await stream_for(sender)
    try:
        await sender.send(block(0))
        consumer = asyncio.create_task(collect(stream))
        await asyncio.sleep(0.2)
        assert await stream.wait_end(0.2) is False  # no end marker was sent
        await stream.close()
        assert await asyncio.wait_for(consumer, 5.0) == [0]
    finally:
        sender.close()


async def test_quiet_stream_asks_the_device_and_keeps_going_while_it_answers() -> None:
    sender = Sender()
    checks: list[int] = []

    async def alive() -> None:
        checks.append(1)
        if len(checks) == 3:  # the third liveness check finds the device gone
            raise DeviceFault("DataLinkTarget refused 'status --id 1': no acquisition")

    stream = await stream_for(sender, idle_timeout_s=0.1, on_idle=alive)
    try:
        await sender.send(block(0))
        with pytest.raises(DeviceFault, match="no acquisition"):
            await collect(stream)
        assert stream.idle_checks == 3
        assert stream.blocks_received == 1
    finally:
        await stream.close()
        sender.close()
