"""A one-way ZeroMQ message stream (PAIR, PULL or SUB) for timestamp blocks.

The IDQ DataLinkTarget pushes binary timestamp blocks on a PAIR socket and marks the end of
a stream with a zero-length message (protocols.md §3a); ``recv`` returns single-frame messages
as they are, empty ones included, ``recv_multipart`` every frame of one (multi-frame) message,
and both leave their meaning to the driver. ``rcvhwm`` bounds the messages queued on the
receive side, so that a reader that stops reading soon makes the sender wait (a PAIR sender
blocks at its high-water mark; it never drops).

Receives are cancel-safe: a timeout or a cancellation never loses a message. pyzmq's asyncio
``recv``/``recv_multipart`` return a Future that the socket's reader callback resolves by
*taking the message off the socket*; if the awaiting task is cancelled after that callback
ran but before the task resumed, the message leaves with the discarded result (pyzmq itself
warns "A message has been dropped!" for the same race in its deserialising receives). asyncio
runs I/O callbacks before the timers that fell due in the same loop iteration, so a message
and an ``asyncio.timeout`` (or a caller's cancel) that coincide -- after any stall of the
loop: a paused daemon, CPU load -- lost the message (issue 10: 7 blocks in one TRACK pass).

So a receive here only *waits for readability* (``Socket.poll``, whose cancellation consumes
nothing: the message stays queued in ZeroMQ) and then takes the message with a synchronous
``NOBLOCK`` receive on a plain shadow of the socket; between taking the message and returning
it there is no ``await``, hence no point at which a cancellation can be delivered. (The other
safe pattern, one shielded receive Future kept across calls, needs a place to park a result
nobody may ever collect; polling keeps the message where it belongs, in the socket's queue.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal, TypeVar

import zmq
import zmq.asyncio

from drivers.errors import DeviceTimeout, DeviceURLError, NotConnected
from drivers.transport.base import DEFAULT_TIMEOUT_S
from drivers.transport.buffered import check_timeout
from drivers.transport.url import ZmqAddress, parse_transport_url

log = logging.getLogger(__name__)

T = TypeVar("T")

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
        # The same libzmq socket through the blocking API, for synchronous NOBLOCK receives;
        # it knows nothing of close(), so it is used only right after an is-open check.
        self._sync: zmq.Socket[bytes] = zmq.Socket.shadow(self._socket)
        self._closed = False

    @property
    def url(self) -> str:
        return self._url

    @property
    def is_open(self) -> bool:
        return not self._closed

    async def recv(self, timeout: float | None = None) -> bytes:
        """Next message (may be empty); DeviceTimeout after ``timeout`` wall seconds."""
        return await self._receive(lambda: bytes(self._sync.recv(zmq.NOBLOCK)), timeout)

    async def recv_multipart(self, timeout: float | None = None) -> list[bytes]:
        """Every frame of the next message; DeviceTimeout after ``timeout`` wall seconds."""
        return await self._receive(
            lambda: [bytes(f) for f in self._sync.recv_multipart(zmq.NOBLOCK)], timeout
        )

    async def _receive(self, take: Callable[[], T], timeout: float | None) -> T:
        """``take()`` (a NOBLOCK receive) once the socket is readable, within the bound.

        Cancel-safe (module doc): the only ``await`` is the readability poll; a message is
        taken and returned synchronously, so a timeout or cancellation leaves it queued.
        """
        if self._closed:
            raise NotConnected("cannot receive: the stream is closed", device=self._url)
        bound = self._timeout if timeout is None else check_timeout(timeout)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(loop.time() + bound):
                while True:  # ends by return, by the timeout or by an error
                    try:
                        return take()  # already queued: no await, nothing to cancel
                    except zmq.Again:
                        pass
                    await self._socket.poll()  # POLLIN, no timeout; consumes nothing
                    if not self.is_open:
                        raise NotConnected("stream closed while receiving", device=self._url)
        except TimeoutError:
            raise DeviceTimeout(
                f"no message within {bound:g} s",
                device=self._url,
                hint="check that the sender is running and streaming",
            ) from None
        except zmq.ZMQError as exc:
            raise NotConnected(f"stream socket failed: {exc}", device=self._url) from exc
        except asyncio.CancelledError:
            # close() from elsewhere cancels the pending poll; nobody cancelled this task.
            task = asyncio.current_task()
            if not self.is_open and task is not None and not task.cancelling():
                raise NotConnected("stream closed while receiving", device=self._url) from None
            raise

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
