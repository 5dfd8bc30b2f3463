"""A one-way ZeroMQ message stream (PAIR, PULL or SUB) for timestamp blocks.

The IDQ DataLinkTarget pushes binary timestamp blocks on a PAIR socket and marks the end of
a stream with a zero-length message (protocols.md §3a); ``recv`` returns single-frame messages
as they are, empty ones included, ``recv_multipart`` every frame of one (multi-frame) message,
and both leave their meaning to the driver. ``rcvhwm`` bounds the messages queued on the
receive side, so that a reader that stops reading soon makes the sender wait (a PAIR sender
blocks at its high-water mark; it never drops).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

import zmq
import zmq.asyncio

from drivers.errors import DeviceTimeout, DeviceURLError, NotConnected
from drivers.transport.base import DEFAULT_TIMEOUT_S
from drivers.transport.buffered import check_timeout
from drivers.transport.url import ZmqAddress, parse_transport_url

log = logging.getLogger(__name__)

StreamSocketType = Literal["PAIR", "PULL", "SUB"]
_TYPES: dict[str, int] = {"PAIR": zmq.PAIR, "PULL": zmq.PULL, "SUB": zmq.SUB}


class ZmqStream:
    """Receive-only ZeroMQ socket; every ``recv`` is bounded (use :func:`open_zmq_stream`)."""

    def __init__(
        self,
        address: ZmqAddress,
        socket_type: StreamSocketType,
        bind: bool,
        timeout: float,
        rcvhwm: int | None = None,
    ) -> None:
        self._url = address.url
        self._timeout = check_timeout(timeout)
        self._socket = zmq.asyncio.Context.instance().socket(_TYPES[socket_type])
        self._socket.setsockopt(zmq.LINGER, 0)
        if rcvhwm is not None:  # before connect/bind: a pipe copies the mark when created
            self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        if socket_type == "SUB":
            self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            if bind:
                self._socket.bind(address.endpoint)
            else:
                self._socket.connect(address.endpoint)
        except zmq.ZMQError:
            self._socket.close(linger=0)
            raise
        self._closed = False

    @property
    def url(self) -> str:
        return self._url

    @property
    def is_open(self) -> bool:
        return not self._closed

    async def recv(self, timeout: float | None = None) -> bytes:
        """Next message (may be empty); DeviceTimeout after ``timeout`` wall seconds."""
        if self._closed:
            raise NotConnected("cannot receive: the stream is closed", device=self._url)
        bound = self._timeout if timeout is None else check_timeout(timeout)
        try:
            async with asyncio.timeout(bound):
                return bytes(await self._socket.recv())
        except TimeoutError:
            raise DeviceTimeout(
                f"no message within {bound:g} s",
                device=self._url,
                hint="check that the sender is running and streaming",
            ) from None
        except zmq.ZMQError as exc:
            raise NotConnected(f"stream socket failed: {exc}", device=self._url) from exc

    async def recv_multipart(self, timeout: float | None = None) -> list[bytes]:
        """Every frame of the next message; DeviceTimeout after ``timeout`` wall seconds."""
        if self._closed:
            raise NotConnected("cannot receive: the stream is closed", device=self._url)
        bound = self._timeout if timeout is None else check_timeout(timeout)
        try:
            async with asyncio.timeout(bound):
                return [bytes(f) for f in await self._socket.recv_multipart()]
        except TimeoutError:
            raise DeviceTimeout(
                f"no message within {bound:g} s",
                device=self._url,
                hint="check that the sender is running and streaming",
            ) from None
        except zmq.ZMQError as exc:
            raise NotConnected(f"stream socket failed: {exc}", device=self._url) from exc

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._socket.close(linger=0)


async def open_zmq_stream(
    url: str,
    *,
    socket_type: StreamSocketType = "PAIR",
    bind: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
    rcvhwm: int | None = None,
) -> ZmqStream:
    """Open a receive-only stream on ``zmq+tcp://host:port`` (connect, or bind if asked).

    ``rcvhwm``: messages queued on the receive side (ZeroMQ's default 1000 when None).
    """
    if socket_type not in _TYPES:
        raise DeviceURLError(
            f"{url!r}: socket_type {socket_type!r} must be one of {sorted(_TYPES)}", key="url"
        )
    address = parse_transport_url(url)
    if not isinstance(address, ZmqAddress):
        raise DeviceURLError(f"{url!r}: a ZeroMQ stream needs a zmq+tcp://host:port URL", key="url")
    try:
        stream = ZmqStream(address, socket_type, bind, timeout, rcvhwm)
    except zmq.ZMQError as exc:
        verb = "bind" if bind else "connect"
        raise NotConnected(
            f"cannot {verb} a {socket_type} socket on {address.endpoint}: {exc}", device=url
        ) from exc
    log.debug("opened %s stream on %s (bind=%s)", socket_type, url, bind)
    return stream
