"""Alpaca discovery responder (UDP) for the emulated Alpaca telescope.

ASCOM Alpaca API Reference §4 (Discovery) and the reference implementations in
github.com/DanielVanNoord/AlpacaDiscoveryTests:

- a client sends the datagram ``alpacadiscovery1`` (``alpacadiscovery`` + protocol version
  ``1``) to the broadcast address, port 32227;
- each Alpaca device answers the sender directly with the JSON ``{"AlpacaPort": <port>}``,
  the port of its HTTP API;
- devices open 32227 with address reuse so several servers on one host can answer.

The rig listens on loopback and, in tests, on a free port rather than 32227. Anything other
than a datagram starting with ``alpacadiscovery`` is ignored (no reply), as the reference
responders do; we answer any version digit (⚠️ the reference answers version 1 only; a
newer client version is answered as version 1 would be).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import cast

log = logging.getLogger(__name__)

DISCOVERY_PORT = 32227
DISCOVERY_PREFIX = b"alpacadiscovery"


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, http_port: int) -> None:
        self.reply = json.dumps({"AlpacaPort": http_port}).encode()
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        if not data.startswith(DISCOVERY_PREFIX) or self.transport is None:
            log.debug("alpaca discovery: ignoring %r from %s", data[:32], addr)
            return
        self.answered += 1
        self.transport.sendto(self.reply, addr)


class DiscoveryResponder:
    """Answers Alpaca discovery on ``host:port`` (port 0: a free port, see :attr:`port`)."""

    def __init__(self, http_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._http_port = http_port
        self.host = host
        self._port = port
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _Responder | None = None

    @property
    def port(self) -> int:
        """The bound UDP port (valid after :meth:`start`)."""
        return self._port

    @property
    def answered(self) -> int:
        """How many discovery requests were answered."""
        return self._protocol.answered if self._protocol is not None else 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Responder(self._http_port),
            local_addr=(self.host, self._port),
            family=socket.AF_INET,
            reuse_port=True,  # several Alpaca servers share 32227 (API Reference §4)
            allow_broadcast=True,
        )
        self._transport, self._protocol = transport, protocol
        self._port = int(transport.get_extra_info("sockname")[1])
        log.info(
            "alpaca discovery on udp %s:%d -> http port %d", self.host, self._port, self._http_port
        )

    async def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
