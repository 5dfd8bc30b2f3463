"""Every transport against a real endpoint: round trip, framing, timeout, disconnect, garbage."""

from __future__ import annotations

import asyncio
import time

import pytest

from drivers.errors import DeviceTimeout, NotConnected, ProtocolError
from drivers.transport import Transport, open_transport

from .conftest import BIN, KINDS, LATE_S, Endpoint, endpoint_for

TIMEOUT = 0.4  #: wall seconds for the reads that are expected to time out
SLACK = 4 * TIMEOUT + 0.5  #: generous bound on how long a timed-out read may take


async def test_round_trip_and_framing(endpoint: Endpoint) -> None:
    transport = await open_transport(endpoint.url, timeout=2.0)
    try:
        assert isinstance(transport, Transport)
        assert transport.url == endpoint.url
        assert transport.is_open
        await transport.write(b"ping\n")
        assert await transport.read_until(b"\n") == b"pong\n"
        await transport.write(b"multi\n")
        assert await transport.read_until(b"\n") == b"a\n"
        assert await transport.read_exactly(2) == b"b\n"
        await transport.write(b"bin\n")
        assert await transport.read_exactly(3) == BIN[:3]
        assert await transport.read_exactly(5) == BIN[3:]
        assert endpoint.requests == [b"ping", b"multi", b"bin"]
    finally:
        await transport.close()


async def test_silent_peer_times_out_within_bound(endpoint: Endpoint) -> None:
    transport = await open_transport(endpoint.url, timeout=2.0)
    try:
        await transport.write(b"silent\n")
        start = time.monotonic()
        with pytest.raises(DeviceTimeout) as info:
            await transport.read_until(b"\n", timeout=TIMEOUT)
        elapsed = time.monotonic() - start
        assert TIMEOUT * 0.9 <= elapsed <= SLACK
        message = str(info.value)
        assert endpoint.url in message
        assert f"within {TIMEOUT:g} s" in message
        assert "nothing received" in message
    finally:
        await transport.close()


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "zmq"])  # zmq: whole messages only
async def test_timeout_reports_partial_bytes(kind: str) -> None:
    async with endpoint_for(kind) as endpoint:
        await _partial_bytes_survive_a_timeout(endpoint)


async def _partial_bytes_survive_a_timeout(endpoint: Endpoint) -> None:
    transport = await open_transport(endpoint.url, timeout=2.0)
    try:
        await transport.write(b"bin\n")
        with pytest.raises(DeviceTimeout, match=r"received so far b'\\x00\\x01"):
            await transport.read_exactly(9, timeout=TIMEOUT)
        # The eight bytes are still there: a timeout does not lose data.
        assert await transport.read_exactly(8) == BIN
    finally:
        await transport.close()


async def test_peer_disconnect_is_not_connected(endpoint: Endpoint) -> None:
    transport = await open_transport(endpoint.url, timeout=2.0)
    try:
        await transport.write(b"bye\n")
        start = time.monotonic()
        with pytest.raises(NotConnected, match="lost"):
            await transport.read_until(b"\n", timeout=TIMEOUT * 2)
        assert time.monotonic() - start <= 2 * SLACK
    finally:
        await transport.close()


async def test_garbage_without_terminator_is_protocol_error(endpoint: Endpoint) -> None:
    transport = await open_transport(endpoint.url, timeout=2.0)
    try:
        await transport.write(b"garbage\n")
        with pytest.raises(ProtocolError, match=r"no b'\\n' terminator within 100 bytes") as info:
            await transport.read_until(b"\n", max_bytes=100)
        assert "xxxx" in str(info.value)
        assert endpoint.url in str(info.value)
    finally:
        await transport.close()


async def test_late_reply_is_discarded_by_reset_input(endpoint: Endpoint) -> None:
    transport = await open_transport(endpoint.url, timeout=2.0)
    try:
        await transport.write(b"late\n")
        with pytest.raises(DeviceTimeout):
            await transport.read_until(b"\n", timeout=LATE_S / 3)
        await asyncio.sleep(LATE_S * 1.5)  # test pacing: let the late reply arrive
        await transport.reset_input()
        await transport.write(b"ping\n")
        assert await transport.read_until(b"\n") == b"pong\n"
    finally:
        await transport.close()


async def test_close_is_idempotent_and_blocks_io(endpoint: Endpoint) -> None:
    transport = await open_transport(endpoint.url, timeout=2.0)
    await transport.write(b"ping\n")
    assert await transport.read_until(b"\n") == b"pong\n"
    await transport.close()
    await transport.close()
    assert not transport.is_open
    with pytest.raises(NotConnected, match="closed"):
        await transport.write(b"ping\n")
    with pytest.raises(NotConnected, match="closed"):
        await transport.read_until(b"\n")
    with pytest.raises(NotConnected, match="closed"):
        await transport.reset_input()


async def test_close_fails_a_pending_read(endpoint: Endpoint) -> None:
    transport = await open_transport(endpoint.url, timeout=2.0)
    await transport.write(b"silent\n")
    reader = asyncio.create_task(transport.read_until(b"\n", timeout=1.0))
    await asyncio.sleep(0.1)  # test pacing: let the read start waiting
    start = time.monotonic()
    await transport.close()
    with pytest.raises((NotConnected, DeviceTimeout)):
        await reader
    # Stream and ZeroMQ reads end at once; a VISA read ends when its VISA timeout fires.
    assert time.monotonic() - start <= 1.0 + SLACK
