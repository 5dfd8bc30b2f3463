"""The byte-transport contract every driver talks through.

A transport moves bytes to and from one device over serial, TCP, VISA or ZeroMQ. Every
read and write is bounded: ``timeout`` is in wall seconds (``None`` = the transport's
default, set at open time); running out raises :class:`~drivers.errors.DeviceTimeout`,
a closed or lost peer raises :class:`~drivers.errors.NotConnected`, and a framing problem
(terminator not found within ``max_bytes``) raises :class:`~drivers.errors.ProtocolError`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

DEFAULT_TIMEOUT_S = 2.0  #: default bound for one read or write (wall seconds)
DEFAULT_MAX_LINE = 65536  #: bytes a framed read may consume before giving up


@runtime_checkable
class Transport(Protocol):
    """Async byte I/O to one device."""

    @property
    def url(self) -> str:
        """The transport URL (for error messages)."""
        ...

    @property
    def is_open(self) -> bool: ...

    async def write(self, data: bytes, *, timeout: float | None = None) -> None:
        """Send ``data`` completely (drained) or raise."""
        ...

    async def read_until(
        self,
        terminator: bytes = b"\n",
        *,
        timeout: float | None = None,
        max_bytes: int = DEFAULT_MAX_LINE,
    ) -> bytes:
        """Read up to and including ``terminator`` (line framing)."""
        ...

    async def read_exactly(self, n: int, *, timeout: float | None = None) -> bytes:
        """Read exactly ``n`` bytes (length framing)."""
        ...

    async def reset_input(self) -> None:
        """Discard any bytes received but not yet read (e.g. a late reply after a timeout)."""
        ...

    async def close(self) -> None:
        """Close; idempotent. Pending reads fail with NotConnected."""
        ...
