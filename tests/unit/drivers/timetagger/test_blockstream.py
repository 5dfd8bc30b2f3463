"""Timestamp stream over a real ZeroMQ PAIR pair: decoding, gaps, back-pressure, end of stream."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
import zmq
import zmq.asyncio

from drivers.errors import DeviceTimeout, ProtocolError
from drivers.timetagger.blockstream import BlockStream, Gap
from drivers.timetagger.idqformat import decode_block, encode_block
from drivers.timetagger.zmqlink import ZmqReceiver


def block(seq: int, n: int = 100) -> bytes:
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

    async def send(self, payload: bytes) -> None:
        async with asyncio.timeout(10.0):
            await self.sock.send(payload)

    def close(self) -> None:
        self.sock.close(linger=0)


def stream_for(sender: Sender, **kw: float) -> BlockStream:
    source = ZmqReceiver(f"tcp://127.0.0.1:{sender.port}", device="idq://test", rcvhwm=2)
    return BlockStream(
        source, lambda p: decode_block(p, device="idq://test"), device="idq://test", **kw
    )  # type: ignore[arg-type]


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


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x01\x02", "shorter than its 16-byte header"),
        (block(1, 3)[:-5], "announces 3 events"),
        (encode_block(1, np.array([5]), np.array([300])), "channel above 255"),
    ],
)
def test_malformed_blocks(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_block(payload, device="d")


async def test_gaps_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    sender = Sender()
    stream = stream_for(sender)
    try:
        with caplog.at_level(logging.WARNING):
            for seq in (0, 1, 4, 5, 6):
                await sender.send(block(seq))
            await sender.send(b"")
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
    stream = stream_for(sender, queue_blocks=4)
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
    await sender.send(b"")


async def test_malformed_block_fails_the_stream() -> None:
    sender = Sender()
    stream = stream_for(sender)
    try:
        await sender.send(block(0))
        await sender.send(b"garbage!")
        with pytest.raises(ProtocolError, match="shorter than"):
            await collect(stream)
    finally:
        await stream.close()
        sender.close()


async def test_silent_stream_times_out() -> None:
    sender = Sender()
    stream = stream_for(sender, idle_timeout_s=0.3)
    try:
        with pytest.raises(DeviceTimeout, match="no timestamp block"):
            await collect(stream)
    finally:
        await stream.close()
        sender.close()


async def test_close_ends_a_waiting_consumer() -> None:
    sender = Sender()
    stream = stream_for(sender)
    try:
        await sender.send(block(0))
        consumer = asyncio.create_task(collect(stream))
        await asyncio.sleep(0.2)
        assert await stream.wait_end(0.2) is False  # no end marker was sent
        await stream.close()
        assert await asyncio.wait_for(consumer, 5.0) == [0]
    finally:
        sender.close()
