"""The IDQ driver against a strict stand-in: the emulator serving only protocols.md §3a.

Issue 14: the driver used to depend on what only our emulator does (``list``, ``--channel
all``, ``--stream-port 0``, ``status --id``, ``INPU<n>:COUN:INTE?``, recording without
``REC:ENAB ON``). The emulator's default is now the documented protocol; these tests show
that the stand-in refuses every one of those extensions, and that the driver connects,
configures, streams, counts and stops through it. A last test runs the driver beside a
``--channel all`` client (extensions on) to check that the per-input merge yields exactly
the device's event record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest
import zmq
import zmq.asyncio

from drivers.clock import WarpClock
from drivers.datatypes import ChannelConfig, EventBlock
from drivers.registry import open_device
from drivers.timetagger.idq import IDQTimeTagger
from sim_hardware.devices.timetagger import PoissonSource, TimeTaggerModel
from sim_hardware.servers.idq import IdqServer
from tests.conftest import free_tcp_port

T0 = 1_700_000_000.0
RATE = 5.0  #: clock seconds per wall second
RATES = {1: 3e4, 2: 3e4, 3: 1e4, 4: 0.5}  #: events per clock s; input 4 nearly silent


@contextlib.asynccontextmanager
async def serve(*, extensions: bool = False) -> AsyncIterator[tuple[WarpClock, IdqServer]]:
    clock = WarpClock(T0, rate=RATE)
    model = TimeTaggerModel(clock, PoissonSource(RATES, origin=T0, seed=5), name="doc.tagger")
    server = IdqServer(model, name="doc.tagger", extensions=extensions)
    await server.start()
    try:
        yield clock, server
    finally:
        await server.close()


class Raw:
    """Plain REQ clients on the SCPI and DLT ports (an outside tool's view)."""

    def __init__(self, server: IdqServer) -> None:
        self.ctx = zmq.asyncio.Context()
        self.scpi = self._req(server.scpi_port)
        self.dlt = self._req(server.dlt_port)

    def _req(self, port: int) -> zmq.asyncio.Socket:
        sock = self.ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{port}")
        return sock

    async def ask(self, sock: zmq.asyncio.Socket, text: str) -> str:
        await sock.send_string(text)
        return (await asyncio.wait_for(sock.recv(), 5.0)).decode()

    async def dlt_json(self, text: str) -> dict[str, object]:
        reply = json.loads(await self.ask(self.dlt, text))
        assert isinstance(reply, dict)
        return reply

    def close(self) -> None:
        self.scpi.close(linger=0)
        self.dlt.close(linger=0)
        self.ctx.term()


async def test_the_stand_in_refuses_every_qgs_extension() -> None:
    async with serve() as (_, server):
        raw = Raw(server)
        try:
            for request in (
                "list",
                "status --id 1",
                "start-stream --address 127.0.0.1 --channel all --stream-port 40000",
                "start-stream --address 127.0.0.1 --channel 1 --stream-port 0",
            ):
                assert "error" in await raw.dlt_json(request), request
            assert "SCPI_ERR_" in await raw.ask(raw.scpi, "INPU1:COUN:INTE?")
            # §3a's sequence: PLAY alone does not record; ENAB ON then PLAY does
            assert await raw.ask(raw.scpi, "REC:PLAY;:REC:STAG?") == "STOPPED"
            assert await raw.ask(raw.scpi, "REC:ENAB ON;:REC:PLAY;:REC:STAG?") == "PLAYING"
            assert await raw.ask(raw.scpi, "REC:STOP;:REC:STAG?") == "STOPPED"
            # the documented start-stream answers the id only
            port = free_tcp_port()
            reply = await raw.dlt_json(
                f"start-stream --address 127.0.0.1 --channel 2 --stream-port {port}"
            )
            assert set(reply) == {"id"}
            assert await raw.dlt_json(f"stop --id {reply['id']}") == {"id": reply["id"]}
        finally:
            raw.close()


def recording(server: IdqServer) -> bool:
    return server.model.recording


async def collect(device: IDQTimeTagger, events: int, *, timeout: float = 20.0) -> list[EventBlock]:
    """Blocks until at least ``events`` events came (wall-bounded), then stop and drain."""
    blocks: list[EventBlock] = []
    stream = device.stream()
    async with asyncio.timeout(timeout):
        async for block in stream:
            blocks.append(block)
            if sum(len(b) for b in blocks) >= events:
                break
    await stream.aclose()  # type: ignore[attr-defined]
    await device.stop()
    async with asyncio.timeout(timeout):
        blocks.extend([b async for b in device.stream()])
    return blocks


async def test_the_driver_works_with_the_documented_protocol_alone() -> None:
    async with serve() as (clock, server):
        device = open_device(server.url, clock)
        assert isinstance(device, IDQTimeTagger)
        await device.connect()  # the DLT refuses "list": logged, not fatal
        try:
            await device.configure(
                {1: ChannelConfig(), 2: ChannelConfig(delay_ps=5_000), 4: ChannelConfig()}
            )
            rates = await device.count_rates()  # INTE? refused: 1 s assumed
            assert set(rates) == {1, 2, 4}
            assert rates[1] > 1e3
            await device.start()
            ids = device.stream_ids
            assert set(ids) == {1, 2, 4}  # one documented stream per enabled input
            assert recording(server)
            blocks = await collect(device, 20_000)
            assert not recording(server)  # REC:STOP reached the device
            assert not any(server.model.raw_send.values())
        finally:
            await device.close()
    assert [b.seq for b in blocks] == list(range(len(blocks)))
    t = np.concatenate([b.t_ps for b in blocks])
    ch = np.concatenate([b.channel for b in blocks])
    assert bool(np.all(np.diff(t) >= 0))  # time order across every block boundary
    assert set(np.unique(ch).tolist()) <= {1, 2, 4}
    assert device.late_events == 0
    sent = [server.stream_stats(sid) for sid in ids.values()]
    # every timestamp the emulator sent on the three streams came out once
    assert sum(s[1] for s in sent if s is not None) == len(t)


async def test_the_merge_equals_the_device_record() -> None:
    """Beside the driver, a ``--channel all`` client (EXTENSION) sees the same slices."""
    async with serve(extensions=True) as (clock, server):
        raw = Raw(server)
        device = open_device(server.url, clock)
        assert isinstance(device, IDQTimeTagger)
        pair = raw.ctx.socket(zmq.PAIR)
        pair.setsockopt(zmq.LINGER, 0)
        try:
            await device.connect()
            await device.configure({c: ChannelConfig() for c in (1, 2, 3, 4)})
            reply = await raw.dlt_json(
                "start-stream --address 127.0.0.1 --channel all --stream-port 0"
            )
            pair.connect(f"tcp://127.0.0.1:{reply['stream_port']}")
            all_t: list[np.ndarray] = []
            all_ch: list[np.ndarray] = []

            async def read_all() -> None:
                while True:
                    frames = await pair.recv_multipart()
                    if len(frames) == 1 and not frames[0]:
                        return
                    rec = np.frombuffer(frames[1], [("t", "<i8"), ("c", "<u8")])
                    all_t.append(rec["t"].copy())
                    all_ch.append(rec["c"].astype(np.uint8))

            reader = asyncio.create_task(read_all())
            await device.start()
            blocks = await collect(device, 10_000)
            assert (await raw.dlt_json(f"stop --id {reply['id']}")) == {"id": reply["id"]}
            async with asyncio.timeout(10.0):
                await reader
            await device.close()
        finally:
            pair.close(linger=0)
            raw.close()
    got_t = np.concatenate([b.t_ps for b in blocks])
    got_ch = np.concatenate([b.channel for b in blocks])
    want_t, want_ch = np.concatenate(all_t), np.concatenate(all_ch)
    assert len(got_t) == len(want_t) > 10_000
    order = np.lexsort((want_ch, want_t))  # the merge breaks ties by input number
    assert np.array_equal(got_t, want_t[order])
    assert np.array_equal(got_ch, want_ch[order])


@pytest.mark.parametrize("extensions", [False, True])
async def test_a_nearly_silent_input_does_not_stall_the_stream(extensions: bool) -> None:
    async with serve(extensions=extensions) as (clock, server):
        device = open_device(server.url + "&stall_s=0.1", clock)
        assert isinstance(device, IDQTimeTagger)
        await device.connect()
        try:
            await device.configure({3: ChannelConfig(), 4: ChannelConfig()})  # 4: ~5 /s
            await device.start()
            blocks = await collect(device, 2_000)
        finally:
            await device.close()
    t = np.concatenate([b.t_ps for b in blocks])
    assert len(t) >= 2_000
    assert device.last_merge is not None
    assert device.last_merge.merge.events_in == len(t) + device.last_merge.merge.total_pending
