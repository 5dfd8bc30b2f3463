"""Async byte transports to devices: serial, TCP, VISA and ZeroMQ, selected by URL.

``await open_transport(url)`` returns a connected :class:`Transport`; see
:mod:`drivers.transport.url` for the accepted URL forms. ZeroMQ ``zmq+tcp://`` transports
also implement :class:`MessageTransport` (``request``); :func:`open_zmq_stream` gives a
receive-only PAIR/PULL/SUB stream for timestamp blocks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from drivers.transport.base import DEFAULT_MAX_LINE, DEFAULT_TIMEOUT_S, Transport
from drivers.transport.buffered import check_timeout
from drivers.transport.message import MessageStream, MessageTransport
from drivers.transport.url import (
    SerialAddress,
    TcpAddress,
    VisaAddress,
    ZmqAddress,
    parse_transport_url,
)

if TYPE_CHECKING:
    from drivers.transport.zmqstream import StreamSocketType, ZmqStream

__all__ = [
    "DEFAULT_MAX_LINE",
    "DEFAULT_TIMEOUT_S",
    "MessageStream",
    "MessageTransport",
    "Transport",
    "open_transport",
    "open_zmq_stream",
    "parse_transport_url",
]


async def open_transport(url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> Transport:
    """Open ``url`` and return a connected transport.

    Args:
        url: a transport URL (``serial://``, a bare ``/dev/...`` path, ``socket://``,
            ``rfc2217://``, ``tcp://``, ``visa://``, ``zmq+tcp://``).
        timeout: bound for opening and the default bound for each read and write (wall s).

    Raises:
        DeviceURLError: unknown scheme or malformed URL (the message lists the forms).
        NotConnected: the device could not be opened or reached.
    """
    check_timeout(timeout)
    address = parse_transport_url(url)
    # Backends are imported on use so that, e.g., a serial-only station does not need pyvisa.
    if isinstance(address, SerialAddress):
        from drivers.transport.stream import open_serial

        return await open_serial(address, timeout=timeout)
    if isinstance(address, TcpAddress):
        from drivers.transport.stream import open_tcp

        return await open_tcp(address, timeout=timeout)
    if isinstance(address, VisaAddress):
        from drivers.transport.visa import open_visa

        return await open_visa(address, timeout=timeout)
    if isinstance(address, ZmqAddress):
        from drivers.transport.zmqreq import open_zmq_req

        return await open_zmq_req(address, timeout=timeout)
    raise AssertionError(f"unhandled transport address {address!r}")


async def open_zmq_stream(
    url: str,
    *,
    socket_type: StreamSocketType = "PAIR",
    bind: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
    rcvhwm: int | None = None,
) -> ZmqStream:
    """Receive-only ZeroMQ stream (see :func:`drivers.transport.zmqstream.open_zmq_stream`)."""
    from drivers.transport import zmqstream

    return await zmqstream.open_zmq_stream(
        url, socket_type=socket_type, bind=bind, timeout=timeout, rcvhwm=rcvhwm
    )
