"""IDQTimeTagger against the IDQ emulator (sim_hardware.servers.idq) over real ZeroMQ sockets.

Two independent implementations of docs/devices/idq-emulator.md meet here: the driver's SCPI,
DataLinkTarget and block decoding against the emulator's. The emulator runs in-process on a
warped clock; the driver opens it by the URL the rig would print.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest

from drivers.clock import WarpClock
from drivers.datatypes import ChannelConfig, EventBlock
from drivers.errors import (
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    LimitViolation,
    NotConnected,
    ProtocolError,
)
from drivers.registry import open_device
from drivers.testing.conformance import timetagger_conformance
from drivers.timetagger.idq import IDQTimeTagger
from sim_hardware.devices.timetagger import PoissonSource, TimeTaggerModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.idq import IdqServer

T0 = 1_700_000_000.0
RATE = 5.0  #: clock seconds per wall second
RATES = {1: 4e4, 2: 4e4, 3: 2e4, 4: 2e4}  #: events per clock second per input
PS = 10**12


@dataclass
class Rig:
    clock: WarpClock
    model: TimeTaggerModel
    server: IdqServer
    faults: FaultInjector

    def url(self, extra: str = "") -> str:
        return self.server.url + extra

    def open(self, extra: str = "") -> IDQTimeTagger:
        device = open_device(self.url(extra), self.clock)
        assert isinstance(device, IDQTimeTagger)
        return device


@contextlib.asynccontextmanager
async def serve_idq(rates: dict[int, float] = RATES) -> AsyncIterator[Rig]:
    clock = WarpClock(T0, rate=RATE)
    faults = FaultInjector(clock, "it.tagger")
    model = TimeTaggerModel(
        clock, PoissonSource(rates, origin=T0, seed=11), faults=faults, name="it.tagger"
    )
    server = IdqServer(model, faults=faults, name="it.tagger")
    await server.start()
    try:
        yield Rig(clock, model, server, faults)
    finally:
        await server.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with serve_idq() as served:
        yield served


async def take(device: IDQTimeTagger, n: int, *, timeout: float = 10.0) -> list[EventBlock]:
    """The first ``n`` blocks of the running stream (wall-bounded)."""
    out: list[EventBlock] = []
    stream = device.stream()
    try:
        async with asyncio.timeout(timeout):
            async for block in stream:
                out.append(block)
                if len(out) >= n:
                    break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return out


async def drain(device: IDQTimeTagger, *, timeout: float = 10.0) -> list[EventBlock]:
    """Every remaining block until the stream ends (wall-bounded)."""
    async with asyncio.timeout(timeout):
        return [block async for block in device.stream()]


async def test_conformance_over_zeromq(rig: Rig) -> None:
    device = rig.open()
    await timetagger_conformance(device, clock=rig.clock)
    assert device.last_stream is not None
    assert device.last_stream.gaps == []
    assert rig.model.recording is False  # stop() stopped the recording
    assert not any(rig.model.raw_send.values())  # and the raw outputs


async def test_configuration_reaches_the_device_and_shapes_the_stream(rig: Rig) -> None:
    device = rig.open()
    await device.connect()
    try:
        assert device.identity.startswith("ID Quantique,ID1000")
        assert device.bin_width_ps == 1.0
        await device.configure(
            {
                1: ChannelConfig(threshold_v=-0.3),
                2: ChannelConfig(threshold_v=-0.9),  # below the -0.8 V pulses: never fires
                4: ChannelConfig(delay_ps=2_000_000),
            }
        )
        assert rig.model.channels[1].threshold_v == pytest.approx(-0.3)
        assert rig.model.channels[3].enabled is False
        assert rig.model.channels[4].delay_ps == 2_000_000
        rates = await device.count_rates()
        assert set(rates) == {1, 2, 4}
        assert rates[1] == pytest.approx(RATES[1], rel=0.1)  # 0.1 clock s sample, scaled
        assert rates[2] == 0.0
        assert rates[4] == pytest.approx(RATES[4], rel=0.2)
        await device.start()
        blocks = await take(device, 10)
        await device.stop()
    finally:
        await device.close()
    channels = np.concatenate([b.channel for b in blocks])
    t = np.concatenate([b.t_ps for b in blocks])
    assert set(np.unique(channels).tolist()) == {1, 4}  # 1-based inputs, 2 and 3 silent
    assert bool(np.all(np.diff(t) >= 0))
    # times are ps on the tagger's timescale (origin = clock epoch): near the clock now
    assert 0 < int(t[0]) < int((rig.clock.now() - T0) * PS)
    assert [b.seq for b in blocks] == list(range(10))


async def test_back_pressure_pauses_the_emulator_and_loses_nothing(rig: Rig) -> None:
    device = rig.open("&hold=2000")  # the merge holds back <= 2000 events per input
    await device.connect()
    try:
        await device.configure({c: ChannelConfig() for c in (1, 2, 3, 4)})
        started = rig.clock.now()
        await device.start()
        state = device.stream_state
        assert state is not None

        def sent() -> int:  # messages the emulator sent on the four input streams
            stats = [rig.server.stream_stats(sid) for sid in device.stream_ids.values()]
            return sum(s[0] for s in stats if s is not None)

        await asyncio.sleep(1.0)  # nobody consumes; 5 clock s = 250 slices fall due
        first = sent()
        due = 4 * (rig.clock.now() - started) / rig.server.slice_s  # one message per input
        await asyncio.sleep(0.2)
        assert sent() == first  # generation paused ...
        assert first < 0.7 * due  # ... well behind the clock: held back, not dropping
        assert state.blocks_received <= 17  # the driver's queue (16) + the one in put()
        blocks = await take(device, 200, timeout=20.0)
        await device.stop()
    finally:
        await device.close()
    assert [b.seq for b in blocks] == list(range(200))
    t = np.concatenate([b.t_ps for b in blocks])
    assert bool(np.all(np.diff(t) >= 0))
    # a lost 20 ms slice would leave a hole of >= 20 ms among ~1 us Poisson gaps
    assert int(np.diff(t).max()) < PS // 200
    assert device.gaps == []


async def test_stop_ends_a_consumer_with_everything_sent(rig: Rig) -> None:
    device = rig.open()
    await device.connect()
    try:
        await device.configure({1: ChannelConfig(), 3: ChannelConfig()})
        await device.start()
        consumer = asyncio.create_task(drain(device))
        await asyncio.sleep(0.2)
        await device.stop()
        blocks = await consumer
    finally:
        await device.close()
    assert len(blocks) >= 3
    assert [b.seq for b in blocks] == list(range(len(blocks)))
    assert device.last_stream is not None
    assert device.last_stream.ended


async def test_stop_with_a_backlog_delivers_it_then_the_end_marker() -> None:
    # 1.6 MB blocks (100 k events) and a slow consumer: at stop the backlog and then the end
    # marker still sit in the emulator's send queue, and must all arrive.
    async with serve_idq(dict.fromkeys((1, 2, 3, 4), 2.5e5)) as rig:
        device = rig.open()
        await device.connect()
        try:
            await device.configure({c: ChannelConfig() for c in (1, 2, 3, 4)})
            await device.start()
            await asyncio.sleep(0.3)  # nobody reads: queues and socket buffers fill up

            async def slow_drain() -> list[EventBlock]:
                out = []
                async with asyncio.timeout(10.0):
                    async for block in device.stream():
                        out.append(block)
                        await asyncio.sleep(0.01)
                return out

            consumer = asyncio.create_task(slow_drain())
            await device.stop()  # while the backlog is still in flight
            blocks = await consumer
        finally:
            await device.close()
    assert device.last_stream is not None
    assert device.last_stream.ended  # the end marker came after the whole backlog
    assert [b.seq for b in blocks] == list(range(len(blocks)))
    assert len(blocks) > 17  # more than the driver's own queue: the sockets' share came too


async def test_quiet_but_alive_device_keeps_the_stream_open(rig: Rig) -> None:
    device = rig.open("&idle_s=0.1")
    await device.connect()
    try:
        # thresholds above 0 V never fire: no blocks at all (the emulator sends none empty)
        await device.configure({1: ChannelConfig(threshold_v=0.5)})
        await device.start()
        consumer = asyncio.create_task(drain(device))
        await asyncio.sleep(0.5)
        state = device.stream_state
        assert state is not None
        assert state.idle_checks >= 2
        assert not consumer.done()
        await device.stop()
        assert await consumer == []
    finally:
        await device.close()


async def test_hung_device_times_out_on_every_path(rig: Rig) -> None:
    device = rig.open("&timeout_s=0.2")
    await device.connect()
    try:
        await device.configure({1: ChannelConfig()})
        await device.start()
        rig.faults.inject(FaultKind.HANG)  # SCPI and DLT read requests and never answer
        with pytest.raises(DeviceTimeout, match="INPU1:COUN"):
            await device.count_rates()
        with pytest.raises(DeviceTimeout):
            await device.stop()  # bounded, and the stream is closed anyway
        assert not device.acquiring
        rig.faults.clear(FaultKind.HANG)
        # the REQ sockets were recreated: the same driver talks again
        assert (await device.scpi("REC:STAG?")).strip() in ("PLAYING", "STOPPED")
    finally:
        await device.close()


async def test_hang_on_connect_is_bounded(rig: Rig) -> None:
    rig.faults.inject(FaultKind.HANG)
    device = rig.open("&timeout_s=0.2")
    with pytest.raises(DeviceTimeout, match=r"\*IDN\?"):
        await device.connect()
    with pytest.raises(NotConnected):
        await device.count_rates()


async def test_dead_device_fails_the_stream_with_a_typed_error(rig: Rig) -> None:
    device = rig.open("&timeout_s=0.2&idle_s=0.2")
    await device.connect()
    try:
        await device.configure({1: ChannelConfig()})
        await device.start()
        assert len(await take(device, 2)) == 2
        await rig.server.close()  # the device dies: no blocks, no replies
        with pytest.raises((DeviceTimeout, NotConnected)):
            await drain(device)
    finally:
        with contextlib.suppress(DeviceError):
            await device.stop()
        await device.close()


@pytest.mark.parametrize(
    ("kind", "error", "text"),
    [
        (FaultKind.ERROR_REPLY, DeviceFault, "SCPI_ERR_EXECUTION_ERROR"),
        (FaultKind.GARBAGE, ProtocolError, None),
    ],
)
async def test_reply_faults_are_typed(
    rig: Rig, kind: FaultKind, error: type[DeviceError], text: str | None
) -> None:
    device = rig.open("&timeout_s=0.5")
    await device.connect()
    try:
        rig.faults.inject(kind)
        with pytest.raises(error, match=text):
            await device.scpi("INPU1:ENAB ON")
        rig.faults.clear(kind)
        await device.scpi("INPU1:ENAB ON")
    finally:
        await device.close()


async def test_an_input_the_device_lacks_is_a_limit_violation(rig: Rig) -> None:
    device = rig.open("&channels=6")  # the URL claims 6 inputs; the emulated tagger has 4
    await device.connect()
    try:
        with pytest.raises(LimitViolation, match="channels="):
            await device.configure({5: ChannelConfig()})  # the device refuses INPU5
    finally:
        await device.close()


async def test_two_runs_on_one_connection(rig: Rig) -> None:
    device = rig.open()
    await device.connect()
    try:
        await device.configure({2: ChannelConfig()})
        runs = []
        for _ in range(2):
            await device.start()
            runs.append(await take(device, 3))
            await device.stop()
    finally:
        await device.close()
    for blocks in runs:
        assert [b.seq for b in blocks] == [0, 1, 2]  # a new DLT stream numbers from 0
        assert set(np.concatenate([b.channel for b in blocks]).tolist()) == {2}
    assert int(runs[1][0].t_ps[0]) > int(runs[0][-1].t_ps[-1])  # the tagger's time goes on


async def test_start_twice_is_refused(rig: Rig) -> None:
    device = rig.open()
    await device.connect()
    try:
        await device.configure({1: ChannelConfig()})
        await device.start()
        with pytest.raises(DeviceFault, match="already acquiring"):
            await device.start()
        assert device.acquiring  # the running acquisition is untouched
        await device.stop()
    finally:
        await device.close()
