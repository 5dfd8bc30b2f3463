"""ZeroMQ specifics: REQ/REP requests, the REQ-timeout recreate, and receive-only streams."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator

import pytest
import zmq
import zmq.asyncio

from drivers.errors import DeviceTimeout, DeviceURLError, NotConnected
from drivers.transport import MessageStream, MessageTransport, open_transport, open_zmq_stream
from drivers.transport.zmqreq import ZmqReqTransport

from .conftest import ZmqRepPeer


@pytest.fixture
async def rep() -> AsyncIterator[ZmqRepPeer]:
    peer = ZmqRepPeer()
    yield peer
    await peer.stop()


async def test_request_round_trip_is_a_message_transport(rep: ZmqRepPeer) -> None:
    transport = await open_transport(f"zmq+tcp://127.0.0.1:{rep.port}", timeout=2.0)
    try:
        assert isinstance(transport, MessageTransport)
        assert isinstance(transport, ZmqReqTransport)
        assert await transport.request(b"ping") == b"pong\n"
        assert await transport.request(b"multi") == b"a\nb\n"
        assert rep.requests == [b"ping", b"multi"]
    finally:
        await transport.close()


async def test_request_timeout_recreates_the_req_socket(rep: ZmqRepPeer) -> None:
    # The REP answers "late" after LATE_S; the REQ gives up first. A REQ that missed its
    # reply could never send again, so it is recreated and the late reply is dropped.
    transport = await open_transport(f"zmq+tcp://127.0.0.1:{rep.port}", timeout=2.0)
    assert isinstance(transport, ZmqReqTransport)
    try:
        start = time.monotonic()
        with pytest.raises(DeviceTimeout, match=r"no reply to b'late'.*within 0\.1 s"):
            await transport.request(b"late", timeout=0.1)
        assert time.monotonic() - start < 1.0
        assert transport.recreated == 1
        assert await transport.request(b"ping", timeout=2.0) == b"pong\n"
        assert rep.requests == [b"late", b"ping"]
    finally:
        await transport.close()


async def test_two_writes_keep_req_alternation(rep: ZmqRepPeer) -> None:
    transport = await open_transport(f"zmq+tcp://127.0.0.1:{rep.port}", timeout=2.0)
    try:
        await transport.write(b"ping")
        await transport.write(b"multi")  # first collects the pong into the buffer
        assert await transport.read_until(b"\n") == b"pong\n"
        assert await transport.read_until(b"\n") == b"a\n"
        assert await transport.read_until(b"\n") == b"b\n"
    finally:
        await transport.close()


async def test_read_without_request_fails_at_once(rep: ZmqRepPeer) -> None:
    transport = await open_transport(f"zmq+tcp://127.0.0.1:{rep.port}", timeout=2.0)
    try:
        start = time.monotonic()
        with pytest.raises(DeviceTimeout, match="no request is outstanding"):
            await transport.read_until(b"\n")
        assert time.monotonic() - start < 0.5
    finally:
        await transport.close()


async def test_peer_gone_mid_request_is_not_connected(rep: ZmqRepPeer) -> None:
    transport = await open_transport(f"zmq+tcp://127.0.0.1:{rep.port}", timeout=2.0)
    assert isinstance(transport, ZmqReqTransport)
    try:
        assert await transport.request(b"ping") == b"pong\n"
        with pytest.raises(NotConnected, match="disconnected"):
            await transport.request(b"bye", timeout=2.0)
    finally:
        await transport.close()


async def test_pair_stream_receives_blocks_and_end_marker() -> None:
    context = zmq.asyncio.Context.instance()
    sender = context.socket(zmq.PAIR)
    sender.setsockopt(zmq.LINGER, 0)
    port = sender.bind_to_random_port("tcp://127.0.0.1")
    stream = await open_zmq_stream(f"zmq+tcp://127.0.0.1:{port}", socket_type="PAIR")
    try:
        assert isinstance(stream, MessageStream)
        blocks = [b"\x01" * 16, b"\x02" * 8, b""]  # an empty message ends an IDQ stream
        for block in blocks:
            await sender.send(block)
        assert [await stream.recv(timeout=2.0) for _ in blocks] == blocks
        start = time.monotonic()
        with pytest.raises(DeviceTimeout, match=r"no message within 0\.2 s"):
            await stream.recv(timeout=0.2)
        assert time.monotonic() - start < 1.5
    finally:
        await stream.close()
        await stream.close()
        sender.close(linger=0)
    with pytest.raises(NotConnected, match="closed"):
        await stream.recv()


@pytest.mark.parametrize(("ours", "theirs"), [("PULL", zmq.PUSH), ("SUB", zmq.PUB)])
async def test_bound_stream_receives_from_connecting_sender(ours: str, theirs: int) -> None:
    context = zmq.asyncio.Context.instance()
    with socket.socket() as probe:  # a free port (a plain socket releases it at once)
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    stream = await open_zmq_stream(
        f"zmq+tcp://127.0.0.1:{port}",
        socket_type=ours,  # type: ignore[arg-type]
        bind=True,
    )
    sender = context.socket(theirs)
    sender.setsockopt(zmq.LINGER, 0)
    sender.connect(f"tcp://127.0.0.1:{port}")
    try:
        got = b""
        for _ in range(50):  # PUB drops messages until the subscription propagates
            await sender.send(b"block")
            try:
                got = await stream.recv(timeout=0.05)
                break
            except DeviceTimeout:
                continue
        assert got == b"block"
    finally:
        sender.close(linger=0)
        await stream.close()


async def test_stream_rejects_bad_arguments() -> None:
    with pytest.raises(DeviceURLError, match="zmq\\+tcp://host:port"):
        await open_zmq_stream("tcp://127.0.0.1:5555")
    with pytest.raises(DeviceURLError, match="socket_type"):
        await open_zmq_stream("zmq+tcp://127.0.0.1:5555", socket_type="REQ")  # type: ignore[arg-type]
