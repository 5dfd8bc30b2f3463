"""Message-oriented transport contracts (ZeroMQ), next to the byte ``Transport``.

ZeroMQ delivers whole messages, not byte streams. Drivers that think in messages (SCPI
over REQ/REP, timestamp blocks over PAIR/PULL/SUB) use these instead of framing bytes.
Bounds are wall seconds; ``None`` means the default set at open time.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class MessageTransport(Protocol):
    """One request, one reply (ZeroMQ REQ/REP)."""

    @property
    def url(self) -> str: ...

    @property
    def is_open(self) -> bool: ...

    async def request(self, payload: bytes, *, timeout: float | None = None) -> bytes:
        """Send ``payload`` as one message and return the one-message reply."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class MessageStream(Protocol):
    """A one-way stream of messages (ZeroMQ PAIR, PULL or SUB)."""

    @property
    def url(self) -> str: ...

    async def recv(self, timeout: float | None = None) -> bytes:
        """Wait for the next message; DeviceTimeout when none arrives within the bound."""
        ...

    async def close(self) -> None: ...
