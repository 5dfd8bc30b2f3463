"""IDQ emulator through ZeroMQ with raw REQ and PAIR clients (protocols.md §3a)."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator

import numpy as np
import pytest
import zmq
import zmq.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.clock import WarpClock
from sim_hardware.devices.timetagger import PoissonSource, TimeTaggerModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.idq import IdqScpi, IdqServer

T0 = 1_700_000_000.0
REC = np.dtype([("t_ps", "<i8"), ("channel", "<u8")])


class Bench:
    def __init__(self, server: IdqServer, faults: FaultInjector) -> None:
        self.server, self.faults = server, faults
        self.ctx = zmq.asyncio.Context()
        self.socks: list[zmq.asyncio.Socket] = []

    def socket(self, kind: int) -> zmq.asyncio.Socket:
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        self.socks.append(s)
        return s

    def req(self, port: int) -> zmq.asyncio.Socket:
        s = self.socket(zmq.REQ)
        s.connect(f"tcp://127.0.0.1:{port}")
        return s

    async def ask(self, sock: zmq.asyncio.Socket, text: str, timeout: float = 3.0) -> str:
        await sock.send_string(text)
        return (await asyncio.wait_for(sock.recv(), timeout)).decode()

    def close(self) -> None:
        for s in self.socks:
            s.close(linger=0)
        self.ctx.term()


@pytest.fixture
async def idq() -> AsyncIterator[Bench]:
    clock = WarpClock(T0, rate=5.0)
    faults = FaultInjector(clock, "test.tagger")
    source = PoissonSource({1: 2e5, 2: 2e5, 3: 1e5, 4: 1e5}, origin=T0, seed=7)
    model = TimeTaggerModel(clock, source, faults=faults)
    # these tests cover the qgs extensions too (--channel all, port 0, status, INTE?)
    async with IdqServer(model, faults=faults, name="test.tagger", extensions=True) as server:
        bench = Bench(server, faults)
        try:
            yield bench
        finally:
            bench.close()


async def test_scpi_identity_abbreviations_chaining(idq: Bench) -> None:
    s = idq.req(idq.server.scpi_port)
    assert (await idq.ask(s, "*IDN?")).startswith("ID Quantique,ID1000")
    assert await idq.ask(s, "DEVI:RES:BWID?") == "1"
    assert await idq.ask(s, "INPU1:ENAB OFF;THRE -0.25V") == ""  # no query: empty reply
    assert await idq.ask(s, "INPUT1:ENABLE?;THRE?;:DELA1:VALU 1500;VALU?") == "OFF\n-0.25\n1500"
    assert await idq.ask(s, "inpu2:thre 300mV;thre?") == "0.3"
    assert await idq.ask(s, "REC:STAG?") == "STOPPED"
    assert await idq.ask(s, "REC:ENAB ON;STAG?") == "PLAYING"
    assert await idq.ask(s, "RAW3:SEND ON;SEND?") == "ON"


async def test_scpi_errors(idq: Bench) -> None:
    s = idq.req(idq.server.scpi_port)
    assert (await idq.ask(s, "FOO:BAR 1")).startswith("SCPI_ERR_UNDEFINED_HEADER")
    assert (await idq.ask(s, "INPU9:ENAB ON")).startswith("SCPI_ERR_HEADER_SUFFIX_OUT_OF_RANGE")
    assert (await idq.ask(s, "INPU1:THRE 5V")).startswith("SCPI_ERR_DATA_OUT_OF_RANGE")
    assert (await idq.ask(s, "INPU1:ENAB MAYBE")).startswith("SCPI_ERR_ILLEGAL_PARAMETER_VALUE")
    errors = (await idq.ask(s, "SYST:ERR?;SYST:ERR?;SYST:ERR?;SYST:ERR?;SYST:ERR?")).split("\n")
    assert [e.split(":")[0] for e in errors[:4]] == [
        "SCPI_ERR_UNDEFINED_HEADER",
        "SCPI_ERR_HEADER_SUFFIX_OUT_OF_RANGE",
        "SCPI_ERR_DATA_OUT_OF_RANGE",
        "SCPI_ERR_ILLEGAL_PARAMETER_VALUE",
    ]
    assert errors[4] == '0,"No error"'


async def test_count_rates(idq: Bench) -> None:
    s = idq.req(idq.server.scpi_port)
    await idq.ask(s, "INPU1:COUN:INTE 1000;:INPU3:ENAB OFF")
    c1 = int(await idq.ask(s, "INPU1:COUN?"))
    assert abs(c1 - 2e5) < 5 * np.sqrt(2e4) * 10  # 0.1 s sample scaled x10
    assert await idq.ask(s, "INPU3:COUN?") == "0"


async def read_block(pair: zmq.asyncio.Socket, timeout: float = 5.0) -> list[bytes]:
    return list(await asyncio.wait_for(pair.recv_multipart(), timeout))


async def test_all_channel_stream_blocks_in_order(idq: Bench) -> None:
    scpi, dlt = idq.req(idq.server.scpi_port), idq.req(idq.server.dlt_port)
    await idq.ask(scpi, "RAW1:SEND ON;:RAW2:SEND ON;:RAW4:SEND ON;:DELA2:VALU 2000;:REC:PLAY")
    reply = json.loads(
        await idq.ask(dlt, "start-stream --address 127.0.0.1 --channel all --stream-port 0")
    )
    pair = idq.socket(zmq.PAIR)
    pair.connect(f"tcp://127.0.0.1:{reply['stream_port']}")
    last_t, seqs, chans = -1, [], set()
    for _ in range(5):
        header, body = await read_block(pair)
        magic, version, _, seq, count = struct.unpack("<4sHHQQ", header)
        assert (magic, version) == (b"QGSE", 1)
        rec = np.frombuffer(body, dtype=REC)
        assert len(rec) == count > 0
        assert rec["t_ps"][0] >= last_t
        assert bool(np.all(np.diff(rec["t_ps"]) >= 0))
        last_t = int(rec["t_ps"][-1])
        seqs.append(seq)
        chans |= set(rec["channel"].tolist())
    assert seqs == list(range(5))
    assert chans == {1, 2, 4}
    stop = json.loads(await idq.ask(dlt, f"stop --id {reply['id']}"))
    assert stop == {"id": reply["id"]}
    for _ in range(50):  # bounded: drain queued blocks until the end-of-stream frame
        frames = await read_block(pair)
        if frames == [b""]:
            break
    else:
        pytest.fail("no zero-length end-of-stream frame")


async def test_single_channel_documented_format(idq: Bench) -> None:
    scpi, dlt = idq.req(idq.server.scpi_port), idq.req(idq.server.dlt_port)
    await idq.ask(scpi, "RAW1:SEND ON;:RAW2:SEND ON;:REC:ENAB ON")
    reply = json.loads(
        await idq.ask(dlt, "start-stream --address 127.0.0.1:5555 --channel 2 --stream-port 0")
    )
    pair = idq.socket(zmq.PAIR)
    pair.connect(f"tcp://127.0.0.1:{reply['stream_port']}")
    (frame,) = await read_block(pair)
    ts = np.frombuffer(frame, dtype="<u8")
    assert len(ts) > 0
    assert bool(np.all(np.diff(ts.astype(np.int64)) >= 0))
    status = json.loads(await idq.ask(dlt, f"status --id {reply['id']}"))
    assert status["timestamps_count"] >= len(ts)


async def test_dlt_errors(idq: Bench) -> None:
    dlt = idq.req(idq.server.dlt_port)
    for request, fragment in [
        ("start-stream --address 10.9.9.9 --channel 1 --stream-port 0", "no time controller"),
        ("start-stream --address 127.0.0.1 --channel 7 --stream-port 0", "--channel"),
        ("start-stream --address 127.0.0.1 --channel 1 --stream-port x", "--stream-port"),
        ("stop --id 99", "no acquisition"),
        ("frobnicate", "unknown command"),
        ("", "empty request"),
    ]:
        reply = json.loads(await idq.ask(dlt, request))
        assert fragment in reply["error"]["description"]


async def test_back_pressure_pauses_generation_without_loss(idq: Bench) -> None:
    scpi, dlt = idq.req(idq.server.scpi_port), idq.req(idq.server.dlt_port)
    await idq.ask(scpi, "RAW1:SEND ON;:REC:PLAY")
    reply = json.loads(
        await idq.ask(dlt, "start-stream --address 127.0.0.1 --channel all --stream-port 0")
    )
    pair = idq.socket(zmq.PAIR)
    pair.setsockopt(zmq.RCVHWM, 2)
    pair.setsockopt(zmq.RCVBUF, 1 << 16)
    pair.connect(f"tcp://127.0.0.1:{reply['stream_port']}")
    status = f"status --id {reply['id']}"
    await asyncio.sleep(1.0)  # 5 clock s = 250 slices, but we read nothing
    first = json.loads(await idq.ask(dlt, status))["acquisitions_count"]
    await asyncio.sleep(0.5)
    second = json.loads(await idq.ask(dlt, status))["acquisitions_count"]
    assert first < 250
    assert second == first  # generation paused at the high-water marks
    seqs, last_t = [], -1
    for _ in range(150):
        header, body = await read_block(pair)
        seqs.append(struct.unpack("<4sHHQQ", header)[3])
        rec = np.frombuffer(body, dtype=REC)
        assert rec["t_ps"][0] >= last_t
        last_t = int(rec["t_ps"][-1])
    assert seqs == list(range(150))  # nothing dropped, in order


async def test_faults_hang_error_garbage(idq: Bench) -> None:
    s = idq.req(idq.server.scpi_port)
    idq.faults.inject(FaultKind.ERROR_REPLY, duration=1.0)
    assert (await idq.ask(s, "*IDN?")).startswith("SCPI_ERR_EXECUTION_ERROR")
    idq.faults.clear()
    idq.faults.inject(FaultKind.HANG, duration=1.5)  # 0.3 s wall at rate 5
    with pytest.raises(TimeoutError):
        await idq.ask(s, "*IDN?", timeout=0.1)
    await asyncio.sleep(0.3)
    fresh = idq.req(idq.server.scpi_port)  # a timed-out REQ must be recreated (notes)
    assert (await idq.ask(fresh, "*IDN?")).startswith("ID Quantique")
    idq.faults.inject(FaultKind.GARBAGE, duration=1.0)
    await fresh.send_string("*IDN?")
    raw = await asyncio.wait_for(fresh.recv(), 3.0)
    assert not raw.startswith(b"ID Quantique")


@settings(max_examples=200, deadline=None)
@given(message=st.text(max_size=80))
def test_scpi_never_raises_on_any_text(message: str) -> None:
    clock = WarpClock(T0)
    scpi = IdqScpi(TimeTaggerModel(clock, PoissonSource({1: 10.0}, origin=T0)))
    reply = scpi.execute(message)
    assert isinstance(reply, str)
    assert scpi.execute("*IDN?").startswith("ID Quantique")
