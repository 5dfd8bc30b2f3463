"""Opening transports: line settings reach the port, unreachable devices say so."""

from __future__ import annotations

import socket
import termios

import pytest

from drivers.errors import DeviceURLError, NotConnected
from drivers.transport import open_transport

from .conftest import PtyPeer


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens once the socket is closed


async def test_serial_settings_reach_the_tty() -> None:
    peer = PtyPeer()
    try:
        url = f"serial://{peer.path}?baud=19200&stopbits=2&parity=N&bytesize=8"
        transport = await open_transport(url, timeout=2.0)
        try:
            # The pty ignores line settings on the wire, but its termios shows what was set.
            attrs = termios.tcgetattr(peer.slave)
            cflag, ospeed = attrs[2], attrs[5]
            assert ospeed == termios.B19200
            assert cflag & termios.CSTOPB
            assert not cflag & termios.PARENB
            await transport.write(b"ping\n")
            assert await transport.read_until(b"\n") == b"pong\n"
        finally:
            await transport.close()
    finally:
        peer.stop()


async def test_settings_the_port_refuses_are_not_connected() -> None:
    peer = PtyPeer()  # a Linux pty refuses 7 data bits once pyserial reconfigures it
    try:
        with pytest.raises(NotConnected, match="rejected the line settings"):
            await open_transport(f"serial://{peer.path}?bytesize=7&parity=E", timeout=2.0)
    finally:
        peer.stop()


async def test_bare_path_opens_as_serial() -> None:
    peer = PtyPeer()
    try:
        transport = await open_transport(peer.path, timeout=2.0)
        try:
            await transport.write(b"ping\n")
            assert await transport.read_until(b"\n") == b"pong\n"
        finally:
            await transport.close()
    finally:
        peer.stop()


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("serial:///dev/qgs-no-such-tty", "cannot open serial port /dev/qgs-no-such-tty"),
        ("tcp://127.0.0.1:{port}", "cannot connect to 127.0.0.1:{port}"),
        ("socket://127.0.0.1:{port}", "cannot open serial port socket://127.0.0.1:{port}"),
        ("visa://TCPIP::127.0.0.1::{port}::SOCKET", "cannot open VISA resource"),
        ("visa://ASRL/dev/qgs-no-such-tty::INSTR", "cannot open VISA resource"),
    ],
)
async def test_unreachable_device_is_not_connected(url: str, text: str) -> None:
    port = _closed_port()
    with pytest.raises(NotConnected, match=text.format(port=port)):
        await open_transport(url.format(port=port), timeout=1.0)


async def test_bad_url_is_rejected_before_any_io() -> None:
    with pytest.raises(DeviceURLError, match="unknown transport scheme 'gpib'"):
        await open_transport("gpib://0::5")
    with pytest.raises(ValueError, match="timeout must be > 0"):
        await open_transport("tcp://127.0.0.1:1", timeout=0)
