"""Byte streams over asyncio: raw TCP and serial lines (pyserial-asyncio-fast).

Both sit on an asyncio transport feeding one small protocol object that accumulates
received bytes, so ``reset_input`` can drop exactly what has arrived and a closed peer is
seen at once. Serial lines go through ``serial_asyncio_fast.create_serial_connection``,
which takes device paths and pyserial URL handlers; it opens ``socket://`` as a native
asyncio TCP connection (protocols.md §4). TCP_NODELAY is set on every TCP socket: the
device protocols here are short request/reply exchanges that Nagle would delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import termios
from typing import Any

import serial
import serial_asyncio_fast

from drivers.errors import DeviceURLError, NotConnected
from drivers.transport.buffered import BufferedTransport
from drivers.transport.url import SerialAddress, TcpAddress

log = logging.getLogger(__name__)


class _Link(asyncio.Protocol):
    """Collects received bytes and connection state for a :class:`StreamTransport`."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.changed = asyncio.Event()  #: set when bytes arrive or the connection ends
        self.writable = asyncio.Event()  #: cleared while the transport's buffer is full
        self.writable.set()
        self.lost = asyncio.Event()
        self.error: BaseException | None = None
        self.eof = False

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.changed.set()

    def eof_received(self) -> bool | None:
        self.eof = True
        self.changed.set()
        return None  # let asyncio close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = exc
        self.eof = True
        self.changed.set()
        self.writable.set()
        self.lost.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


class StreamTransport(BufferedTransport):
    """A connected asyncio byte stream (use :func:`open_tcp` / :func:`open_serial`)."""

    def __init__(
        self, url: str, transport: asyncio.BaseTransport, link: _Link, timeout: float
    ) -> None:
        super().__init__(url, timeout)
        if not isinstance(transport, asyncio.WriteTransport):
            raise TypeError(f"{url}: expected a writable asyncio transport, got {transport!r}")
        self._transport = transport
        self._link = link

    async def _receive(self, timeout: float, *, terminator: bytes | None, want: int) -> bytes:
        link = self._link
        async with asyncio.timeout(timeout):
            while not link.received:
                if link.eof:
                    if link.error is not None:
                        raise OSError(str(link.error))
                    return b""
                link.changed.clear()
                await link.changed.wait()
        chunk = bytes(link.received)
        link.received.clear()
        return chunk

    async def _send(self, data: bytes, timeout: float) -> None:
        if self._link.eof or self._transport.is_closing():
            raise OSError("the peer closed the connection")
        self._transport.write(data)
        async with asyncio.timeout(timeout):
            await self._link.writable.wait()
        if self._link.lost.is_set():
            raise OSError(str(self._link.error or "the peer closed the connection"))

    async def _discard_pending(self) -> None:
        await asyncio.sleep(0)  # a yield, not a timed wait: lets already-readable bytes land
        self._link.received.clear()

    async def _shutdown(self) -> None:
        self._transport.close()
        # Bounded wait for connection_lost so the fd is really released before we return.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout):
                await self._link.lost.wait()


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def open_tcp(address: TcpAddress, *, timeout: float) -> StreamTransport:
    """Connect to ``address`` within ``timeout`` wall seconds."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            transport, link = await loop.create_connection(_Link, address.host, address.port)
    except TimeoutError:
        raise NotConnected(
            f"no TCP connection to {address.host}:{address.port} within {timeout:g} s",
            device=address.url,
            hint="check the address and any firewall",
        ) from None
    except OSError as exc:
        raise NotConnected(
            f"cannot connect to {address.host}:{address.port}: {exc.strerror or exc}",
            device=address.url,
            hint="is the device (or emulator) running and listening on that port?",
        ) from exc
    _set_nodelay(transport)
    log.debug("opened %s", address.url)
    return StreamTransport(address.url, transport, link, timeout)


async def open_serial(address: SerialAddress, *, timeout: float) -> StreamTransport:
    """Open a serial device path or a ``socket://``/``rfc2217://`` URL within ``timeout``."""
    loop = asyncio.get_running_loop()
    s = address.settings
    options: dict[str, Any] = {
        "baudrate": s.baud,
        "parity": s.parity,
        "bytesize": s.bytesize,
        "stopbits": int(s.stopbits) if s.stopbits.is_integer() else s.stopbits,
        "xonxoff": s.xonxoff,
        "rtscts": s.rtscts,
    }
    try:
        async with asyncio.timeout(timeout):
            transport, link = await serial_asyncio_fast.create_serial_connection(
                loop, _Link, address.port, **options
            )
    except TimeoutError:
        raise NotConnected(
            f"serial port {address.port} did not open within {timeout:g} s", device=address.url
        ) from None
    except ValueError as exc:
        raise DeviceURLError(f"{address.url!r}: pyserial rejected the settings: {exc}") from exc
    except termios.error as exc:
        # e.g. Linux ptys refuse a second tcsetattr with fewer than 8 data bits
        raise NotConnected(
            f"serial port {address.port} rejected the line settings {s}: {exc}",
            device=address.url,
            hint="check that the port supports these settings",
        ) from exc
    except (OSError, serial.SerialException) as exc:
        raise NotConnected(
            f"cannot open serial port {address.port}: {exc}",
            device=address.url,
            hint="check the device path, permissions (dialout group) and that nothing else "
            "holds the port",
        ) from exc
    _set_nodelay(transport)
    log.debug("opened %s", address.url)
    if not isinstance(link, _Link):  # pragma: no cover - the factory above made it
        raise TypeError(f"unexpected protocol object {link!r}")
    return StreamTransport(address.url, transport, link, timeout)
