"""Framing and timeout bookkeeping shared by every byte transport.

A concrete transport only says how to send bytes and how to wait (bounded) for *more*
bytes; this base turns that into the :class:`~drivers.transport.base.Transport` contract:
line framing (``read_until``), length framing (``read_exactly``), one deadline per read
however many chunks it takes, and errors that say what was awaited, on which URL, after
how long and what had arrived so far.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable

from drivers.errors import DeviceTimeout, NotConnected, ProtocolError
from drivers.transport.base import DEFAULT_MAX_LINE

log = logging.getLogger(__name__)

PREVIEW_BYTES = 64  #: bytes of received data quoted in an error message


def preview(data: bytes | bytearray) -> str:
    """``repr`` of at most :data:`PREVIEW_BYTES` bytes, noting the full length."""
    if len(data) <= PREVIEW_BYTES:
        return repr(bytes(data))
    return f"{bytes(data[:PREVIEW_BYTES])!r}... ({len(data)} bytes)"


def check_timeout(timeout: float) -> float:
    """Validate a wall-second bound (a zero or negative bound is a caller bug)."""
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 wall seconds, got {timeout!r}")
    return float(timeout)


class BufferedTransport(ABC):
    """Base for transports that receive bytes in chunks of any size.

    Subclasses implement :meth:`_receive`, :meth:`_send`, :meth:`_discard_pending` and
    :meth:`_shutdown`. Reads are serialised by a lock so two readers never split a frame.

    Args:
        url: the transport URL (quoted in every error).
        timeout: default bound for one read or write, wall seconds.
    """

    #: what to tell the operator when a read times out
    timeout_hint = "check that the device is powered, connected and configured (baud rate)"

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = check_timeout(timeout)
        self._buffer = bytearray()
        self._closed = False
        self._read_lock = asyncio.Lock()

    # -- what a concrete transport provides -------------------------------------------

    @abstractmethod
    async def _receive(self, timeout: float, *, terminator: bytes | None, want: int) -> bytes:
        """Wait at most ``timeout`` wall seconds for more bytes and return them.

        ``terminator``/``want`` say what the read is looking for (a transport may use them
        to stop early, e.g. a VISA termination character); returning more is fine, the
        surplus stays buffered. Returns ``b""`` when the peer closed; raises
        ``TimeoutError`` when nothing arrived in time.
        """

    @abstractmethod
    async def _send(self, data: bytes, timeout: float) -> None:
        """Send all of ``data`` within ``timeout`` (raise ``TimeoutError`` otherwise)."""

    @abstractmethod
    async def _discard_pending(self) -> None:
        """Drop bytes the transport has received below this class's buffer."""

    @abstractmethod
    async def _shutdown(self) -> None:
        """Release the underlying connection (called once)."""

    # -- the Transport contract --------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    @property
    def is_open(self) -> bool:
        return not self._closed

    @property
    def default_timeout(self) -> float:
        """The bound used when a call passes ``timeout=None`` (wall seconds)."""
        return self._timeout

    async def write(self, data: bytes, *, timeout: float | None = None) -> None:
        self._require_open("write")
        bound = self._bound(timeout)
        try:
            await self._send(bytes(data), bound)
        except TimeoutError:
            raise DeviceTimeout(
                f"write of {preview(data)} not completed within {bound:g} s",
                device=self._url,
                hint="the line is blocked (flow control?) or the peer stopped reading",
            ) from None
        except OSError as exc:
            raise self._lost(f"writing {preview(data)}", exc) from exc

    async def read_until(
        self,
        terminator: bytes = b"\n",
        *,
        timeout: float | None = None,
        max_bytes: int = DEFAULT_MAX_LINE,
    ) -> bytes:
        if not terminator:
            raise ValueError("terminator must be at least one byte")
        if max_bytes < len(terminator):
            raise ValueError(f"max_bytes={max_bytes} is shorter than the terminator")
        return await self._read(
            lambda: self._take_line(terminator, max_bytes),
            f"{terminator!r}-terminated reply",
            self._bound(timeout),
            terminator=terminator,
            want=max_bytes,
        )

    async def read_exactly(self, n: int, *, timeout: float | None = None) -> bytes:
        if n < 0:
            raise ValueError(f"cannot read {n} bytes")
        return await self._read(
            lambda: self._take_exactly(n),
            f"{n} bytes",
            self._bound(timeout),
            terminator=None,
            want=n,
        )

    async def reset_input(self) -> None:
        self._require_open("reset input")
        if self._buffer:
            log.debug("%s: discarding %s", self._url, preview(self._buffer))
        self._buffer.clear()
        await self._discard_pending()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        await self._shutdown()

    # -- internals ------------------------------------------------------------------------

    def _bound(self, timeout: float | None) -> float:
        return self._timeout if timeout is None else check_timeout(timeout)

    def _require_open(self, action: str) -> None:
        if self._closed:
            raise NotConnected(
                f"cannot {action}: the transport is closed",
                device=self._url,
                hint="open it again with open_transport()",
            )

    def _lost(self, awaiting: str, exc: BaseException | None = None) -> NotConnected:
        if self._closed:
            return NotConnected(f"transport closed while {awaiting}", device=self._url)
        cause = f" ({exc})" if exc else ""
        so_far = f"; received so far {preview(self._buffer)}" if self._buffer else ""
        return NotConnected(
            f"connection lost while {awaiting}{cause}{so_far}",
            device=self._url,
            hint="check the cable/peer, then reconnect",
        )

    def _timed_out(self, what: str, bound: float) -> DeviceTimeout:
        so_far = f"received so far {preview(self._buffer)}" if self._buffer else "nothing received"
        return DeviceTimeout(
            f"no {what} within {bound:g} s ({so_far})", device=self._url, hint=self.timeout_hint
        )

    def _take_line(self, terminator: bytes, max_bytes: int) -> bytes | None:
        index = self._buffer.find(terminator, 0, max_bytes)
        if index >= 0:
            end = index + len(terminator)
            frame = bytes(self._buffer[:end])
            del self._buffer[:end]
            return frame
        if len(self._buffer) >= max_bytes:
            # Drop what was scanned so the next read starts on fresh bytes.
            garbage = bytes(self._buffer[:max_bytes])
            del self._buffer[:max_bytes]
            raise ProtocolError(
                f"no {terminator!r} terminator within {max_bytes} bytes, got {preview(garbage)}",
                device=self._url,
                hint="check the line settings (baud, parity) and that the device speaks "
                "this protocol",
            )
        return None

    def _take_exactly(self, n: int) -> bytes | None:
        if len(self._buffer) < n:
            return None
        frame = bytes(self._buffer[:n])
        del self._buffer[:n]
        return frame

    async def _read(
        self,
        take: Callable[[], bytes | None],
        what: str,
        bound: float,
        *,
        terminator: bytes | None,
        want: int,
    ) -> bytes:
        self._require_open("read")
        loop = asyncio.get_running_loop()
        async with self._read_lock:
            deadline = loop.time() + bound
            while True:
                frame = take()
                if frame is not None:
                    return frame
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise self._timed_out(what, bound)
                try:
                    chunk = await self._receive(
                        remaining, terminator=terminator, want=max(want - len(self._buffer), 1)
                    )
                except TimeoutError:
                    raise self._timed_out(what, bound) from None
                except OSError as exc:
                    raise self._lost(f"waiting for {what}", exc) from exc
                if not chunk:
                    raise self._lost(f"waiting for {what}")
                self._buffer += chunk
