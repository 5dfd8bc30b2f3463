"""IDQ driver: the documented DataLinkTarget exchange, byte-exact (protocols.md §3a).

Scripted peers (ZeroMQ ROUTER sockets checking every request in order) play the device's
SCPI port and the DLT; the test binds the per-input PAIR sockets, as the DLT would, on the
ports the driver asks for (``stream=<base>``: input n on base + n, as IDQ's example uses
4241 + n). The scripts contain only commands §3a documents, plus the optional ``list``
probe answered with a refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import numpy as np
import pytest
import zmq
import zmq.asyncio

from drivers.datatypes import EventBlock
from drivers.errors import DeviceFault
from drivers.registry import parse_device_url
from drivers.timetagger.idq import IDQTimeTagger
from drivers.timetagger.idqformat import encode_timestamps
from tests.support.clocks import StepClock
from tests.unit.drivers.timetagger.zmqpeer import Script, ScriptedPeer

IDN = b"ID Quantique,ID1000,1234,1.0"
CONNECT: Script = [(b"*IDN?", IDN), (b"DEVI:RES:BWID?", b"1")]  # inputs from the URL
REFUSED = b'{"error": {"description": "unknown command list"}}'


def free_base(inputs: int) -> int:
    """A port base such that base + 1 .. base + inputs are free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1]) - 1
        if base + inputs >= 65536:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for n in range(1, inputs + 1):
                    probe = stack.enter_context(socket.socket())
                    probe.bind(("127.0.0.1", base + n))
            return base
        except OSError:
            continue
    raise RuntimeError("no run of free ports")


class FakeDltStreams:
    """The DLT's side of the per-input PAIR streams (bound, as the DLT binds them)."""

    def __init__(self, base: int, inputs: list[int]) -> None:
        ctx = zmq.asyncio.Context.instance()
        self.pairs: dict[int, zmq.asyncio.Socket] = {}
        for n in inputs:
            pair = ctx.socket(zmq.PAIR)
            pair.setsockopt(zmq.LINGER, 0)
            pair.bind(f"tcp://127.0.0.1:{base + n}")
            self.pairs[n] = pair

    async def send(self, channel: int, *t_ps: int) -> None:
        await self.pairs[channel].send(encode_timestamps(np.array(t_ps, dtype=np.int64)))

    async def end(self) -> None:
        for pair in self.pairs.values():
            await pair.send(b"")

    def close(self) -> None:
        for pair in self.pairs.values():
            pair.close(linger=0)


@contextlib.asynccontextmanager
async def scripted(
    scpi: Script, dlt: Script, *, query: str = ""
) -> AsyncIterator[tuple[IDQTimeTagger, ScriptedPeer, ScriptedPeer]]:
    peer = ScriptedPeer([*CONNECT, *scpi])
    dlt_peer = ScriptedPeer([(b"list", REFUSED), *dlt])
    url = f"idq+zmq://127.0.0.1:{peer.port}?dlt={dlt_peer.port}&timeout_s=1&channels=4{query}"
    device = IDQTimeTagger.from_url(parse_device_url(url), StepClock.still())
    try:
        await device.connect()
        yield device, peer, dlt_peer
    finally:
        await device.close()
        await peer.finish()
        await dlt_peer.finish()


def events(blocks: list[EventBlock]) -> list[tuple[int, int]]:
    t = np.concatenate([b.t_ps for b in blocks]).tolist()
    ch = np.concatenate([b.channel for b in blocks]).tolist()
    return list(zip(t, ch, strict=True))


async def test_documented_start_stream_stop_exchange() -> None:
    base = free_base(4)
    dlt_side = FakeDltStreams(base, [1, 3])
    scpi: Script = [
        (b"RAW1:SEND ON", b""),
        (b"RAW2:SEND OFF", b""),
        (b"RAW3:SEND ON", b""),
        (b"RAW4:SEND OFF", b""),
        (b"REC:ENAB ON", b""),  # §3a: enable before play
        (b"REC:PLAY", b""),
        (b"REC:STAG?", b"PLAYING"),
        (b"REC:STOP", b""),
        (b"RAW1:SEND OFF", b""),
        (b"RAW3:SEND OFF", b""),
    ]
    dlt: Script = [
        (
            f"start-stream --address 127.0.0.1 --channel 1 --stream-port {base + 1}".encode(),
            b'{"id": "7"}',  # §3a: the reply carries the id only
        ),
        (
            f"start-stream --address 127.0.0.1 --channel 3 --stream-port {base + 3}".encode(),
            b'{"id": "8"}',
        ),
        (b"stop --id 7", b'{"id": "7"}'),
        (b"stop --id 8", b'{"id": "8"}'),
    ]
    try:
        async with scripted(scpi, dlt, query=f"&stream={base}") as (device, _, _):
            device._enabled = [1, 3]  # as after configure({1: ..., 3: ...})
            await device.start()
            assert device.stream_ids == {1: "7", 3: "8"}
            await dlt_side.send(3, 20, 30)
            await dlt_side.send(1, 10, 30)
            await dlt_side.send(1, 50)  # input 1 runs ahead: 50 waits for input 3
            await dlt_side.send(3, 30, 60)
            await dlt_side.end()
            async with asyncio.timeout(5.0):
                blocks = [b async for b in device.stream()]
            await device.stop()
            assert not device.acquiring
    finally:
        dlt_side.close()
    assert events(blocks) == [(10, 1), (20, 3), (30, 1), (30, 3), (30, 3), (50, 1), (60, 3)]
    assert [b.seq for b in blocks] == list(range(len(blocks)))
    assert device.late_events == 0


async def test_a_silent_input_does_not_hold_the_others_back() -> None:
    base = free_base(2)
    dlt_side = FakeDltStreams(base, [1, 2])
    scpi: Script = [
        (b"RAW1:SEND ON", b""),
        (b"RAW2:SEND ON", b""),
        (b"RAW3:SEND OFF", b""),
        (b"RAW4:SEND OFF", b""),
        (b"REC:ENAB ON", b""),
        (b"REC:PLAY", b""),
        (b"REC:STAG?", b"PLAYING"),
        (b"REC:STOP", b""),
        (b"RAW1:SEND OFF", b""),
        (b"RAW2:SEND OFF", b""),
    ]
    dlt: Script = []
    for n in (1, 2):
        start = f"start-stream --address 127.0.0.1 --channel {n} --stream-port {base + n}"
        dlt.append((start.encode(), f'{{"id": "{n}"}}'.encode()))
    for n in (1, 2):
        dlt.append((f"stop --id {n}".encode(), f'{{"id": "{n}"}}'.encode()))
    try:
        async with scripted(scpi, dlt, query=f"&stream={base}&stall_s=0.05") as (device, _, _):
            device._enabled = [1, 2]
            await device.start()
            await dlt_side.send(1, 5, 6, 7)  # input 2 (a dark detector) says nothing
            stream = device.stream()
            async with asyncio.timeout(5.0):
                first = await anext(stream)
            assert first.t_ps.tolist() == [5, 6, 7]  # released by the stall rule
            await dlt_side.send(2, 3)  # it speaks after all, late: kept, counted
            await dlt_side.send(1, 9)
            await dlt_side.end()
            async with asyncio.timeout(5.0):
                rest = [b async for b in stream]
            await device.stop()
    finally:
        dlt_side.close()
    assert events(rest) == [(3, 2), (9, 1)]
    assert device.late_events == 1


async def test_a_refused_stream_stops_what_was_started() -> None:
    base = free_base(4)
    scpi: Script = [
        (b"RAW1:SEND ON", b""),
        (b"RAW2:SEND ON", b""),
        (b"RAW3:SEND OFF", b""),
        (b"RAW4:SEND OFF", b""),
        (b"REC:STOP", b""),
        (b"RAW1:SEND OFF", b""),
        (b"RAW2:SEND OFF", b""),
    ]
    dlt: Script = [
        (
            f"start-stream --address 127.0.0.1 --channel 1 --stream-port {base + 1}".encode(),
            b'{"id": "1"}',
        ),
        (
            f"start-stream --address 127.0.0.1 --channel 2 --stream-port {base + 2}".encode(),
            b'{"error": {"description": "cannot listen on that port"}}',
        ),
        (b"stop --id 1", b'{"id": "1"}'),
    ]
    async with scripted(scpi, dlt, query=f"&stream={base}") as (device, _, _):
        device._enabled = [1, 2]
        with pytest.raises(DeviceFault, match="cannot listen"):
            await device.start()
        assert not device.acquiring
        assert device.stream_ids == {}


async def test_a_play_that_does_not_play_is_a_fault() -> None:
    base = free_base(4)
    scpi: Script = [
        (b"RAW1:SEND ON", b""),
        (b"RAW2:SEND OFF", b""),
        (b"RAW3:SEND OFF", b""),
        (b"RAW4:SEND OFF", b""),
        (b"REC:ENAB ON", b""),
        (b"REC:PLAY", b""),
        (b"REC:STAG?", b"STOPPED"),
        (b"REC:STOP", b""),
        (b"RAW1:SEND OFF", b""),
    ]
    dlt: Script = [
        (
            f"start-stream --address 127.0.0.1 --channel 1 --stream-port {base + 1}".encode(),
            b'{"id": "1"}',
        ),
        (b"stop --id 1", b'{"id": "1"}'),
    ]
    async with scripted(scpi, dlt, query=f"&stream={base}") as (device, _, _):
        device._enabled = [1]
        with pytest.raises(DeviceFault, match="STOPPED"):
            await device.start()
        assert not device.acquiring
