"""ASCOM Alpaca Device API v1 client: one request, one JSON reply, typed errors.

Wire facts (ASCOM Alpaca API Reference, ascom-standards.org/api and
ascom-standards.org/AlpacaDeveloper/ASCOMAlpacaAPIReference.html, §2):

- ``GET|PUT http://host:port/api/v1/<device type>/<device number>/<member>``, the path all in
  lower case; GET arguments in the query string, PUT arguments form-encoded in the body
  (``application/x-www-form-urlencoded``); parameter *names* are case-insensitive for the
  server; every request carries ``ClientID`` and ``ClientTransactionID`` (uint32);
- the reply is JSON ``{"Value": …, "ClientTransactionID": n, "ServerTransactionID": n,
  "ErrorNumber": 0, "ErrorMessage": ""}`` (no ``Value`` for a PUT); the server echoes our
  ClientTransactionID (0 if it was not sent);
- an ASCOM error is HTTP 200 with ``ErrorNumber`` != 0 (the numbers in :data:`ASCOM_ERRORS`,
  0x500-0xFFF driver-specific); a request the server cannot interpret (missing or unparsable
  parameter, unknown device number or member) is HTTP 400 with a plain-text message (some
  servers, e.g. the Rust ``ascom-alpaca`` crate, answer 404 for an unknown member);
- discovery (API Reference §4): a UDP datagram ``alpacadiscovery1`` to port 32227 is answered
  with ``{"AlpacaPort": <http port>}`` from the Alpaca device's address.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from drivers.errors import (
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    LimitViolation,
    NotConnected,
    ProtocolError,
)

log = logging.getLogger(__name__)

API_VERSION = 1
DISCOVERY_PORT = 32227  #: Alpaca discovery UDP port (API Reference §4)
DISCOVERY_MESSAGE = b"alpacadiscovery1"
MAX_TRANSACTION_ID = 0xFFFF_FFFF  #: ClientTransactionID is a uint32 (API Reference §2)

NOT_IMPLEMENTED = 0x400
INVALID_VALUE = 0x401
VALUE_NOT_SET = 0x402
NOT_CONNECTED = 0x407
INVALID_WHILE_PARKED = 0x408
INVALID_WHILE_SLAVED = 0x409
INVALID_OPERATION = 0x40B
ACTION_NOT_IMPLEMENTED = 0x40C
OPERATION_CANCELLED = 0x40E  #: Platform 7

#: ASCOM ErrorNumber -> (error class, name, what to do). Driver-specific numbers
#: (0x500-0xFFF) map to DeviceFault.
ASCOM_ERRORS: dict[int, tuple[type[DeviceError], str, str]] = {
    NOT_IMPLEMENTED: (DeviceFault, "NotImplemented", "the device lacks this member"),
    INVALID_VALUE: (LimitViolation, "InvalidValue", "the value is outside the device's range"),
    VALUE_NOT_SET: (DeviceFault, "ValueNotSet", "set the value before reading it"),
    NOT_CONNECTED: (NotConnected, "NotConnected", "connect the device (PUT connected)"),
    INVALID_WHILE_PARKED: (DeviceFault, "InvalidWhileParked", "unpark the mount first"),
    INVALID_WHILE_SLAVED: (DeviceFault, "InvalidWhileSlaved", "release the dome slaving"),
    INVALID_OPERATION: (DeviceFault, "InvalidOperation", "check the device's state"),
    ACTION_NOT_IMPLEMENTED: (DeviceFault, "ActionNotImplemented", "see supportedactions"),
    OPERATION_CANCELLED: (DeviceFault, "OperationCancelled", "the operation was cancelled"),
}


def ascom_error(number: int, message: str, *, method: str, member: str, device: str) -> DeviceError:
    """The typed error for an ASCOM ``ErrorNumber`` answering ``method member``."""
    cls, name, hint = ASCOM_ERRORS.get(
        number,
        (
            DeviceFault,
            "driver error" if 0x500 <= number <= 0xFFF else "unknown ASCOM error",
            "see the device's documentation for this number",
        ),
    )
    return cls(
        f"{method} {member} answered ErrorNumber 0x{number:X} ({name}): {message or '-'}",
        device=device,
        hint=hint,
    )


@dataclass(frozen=True, slots=True)
class AlpacaReply:
    """One decoded reply: ``value`` is None for a PUT; ``error_number`` 0 means success."""

    value: Any
    error_number: int
    error_message: str
    client_transaction_id: int
    server_transaction_id: int


def decode_reply(
    body: bytes, *, method: str, member: str, sent_id: int, device: str
) -> AlpacaReply:
    """Parse an HTTP-200 body; raises ProtocolError on anything but the documented JSON."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProtocolError(
            f"{method} {member}: reply is not JSON: {body[:80]!r}", device=device
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{method} {member}: reply is not a JSON object", device=device)
    # Names are matched exactly: the API Reference fixes the casing of reply keys (ConformU
    # checks "ErrorNumber is correctly cased").
    number, message = data.get("ErrorNumber"), data.get("ErrorMessage", "")
    client_id, server_id = data.get("ClientTransactionID", 0), data.get("ServerTransactionID", 0)
    if not isinstance(number, int) or isinstance(number, bool) or not isinstance(message, str):
        raise ProtocolError(
            f"{method} {member}: reply lacks an integer ErrorNumber: {body[:120]!r}", device=device
        )
    if not isinstance(client_id, int) or client_id not in (0, sent_id):
        raise ProtocolError(
            f"{method} {member}: ClientTransactionID {client_id!r} does not echo ours ({sent_id})",
            device=device,
            hint="another client's reply, or a proxy mixing up requests",
        )
    if number == 0 and method == "GET" and "Value" not in data:
        raise ProtocolError(f"{method} {member}: successful GET without a Value", device=device)
    return AlpacaReply(
        data.get("Value"),
        number,
        message,
        client_id,
        server_id if isinstance(server_id, int) else 0,
    )


def format_value(value: object) -> str:
    """An argument as Alpaca text: booleans ``true``/``false``, floats with full precision."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


class AlpacaClient:
    """Requests to one Alpaca device (``/api/v1/<device_type>/<number>``) over one session.

    Args:
        host_port: ``host:port`` of the Alpaca server.
        device_number: the device's number on that server.
        client_id: our ClientID (uint32), constant for the session.
        timeout_s: default bound on one request (wall seconds), connect included.
        device: the device URL for error messages.
        device_type: the Alpaca device type (lower case).
    """

    def __init__(
        self,
        host_port: str,
        device_number: int,
        *,
        client_id: int,
        timeout_s: float,
        device: str,
        device_type: str = "telescope",
    ) -> None:
        self.base = f"http://{host_port}/api/v{API_VERSION}/{device_type}/{device_number}"
        self.client_id = client_id
        self.timeout_s = timeout_s
        self.device = device
        self._transaction = 0
        self._session: aiohttp.ClientSession | None = None

    @property
    def is_open(self) -> bool:
        return self._session is not None and not self._session.closed

    @property
    def last_transaction_id(self) -> int:
        """The ClientTransactionID of the last request sent (0 before the first)."""
        return self._transaction

    async def open(self) -> None:
        if not self.is_open:
            self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _next_transaction(self) -> int:
        self._transaction = self._transaction % MAX_TRANSACTION_ID + 1
        return self._transaction

    async def request(
        self,
        method: str,
        member: str,
        params: Mapping[str, object] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> AlpacaReply:
        """One request; HTTP, timeout and format problems raise, ASCOM errors are returned."""
        session = self._session
        if session is None or session.closed:
            raise NotConnected("Alpaca session is closed", device=self.device, hint="connect()")
        tid = self._next_transaction()
        args = {k: format_value(v) for k, v in (params or {}).items()}
        args["ClientID"] = str(self.client_id)
        args["ClientTransactionID"] = str(tid)
        bound = timeout_s if timeout_s is not None else self.timeout_s
        url = f"{self.base}/{member}"
        try:
            async with asyncio.timeout(bound):
                if method == "GET":
                    response = await session.get(url, params=args)
                else:
                    response = await session.put(url, data=args)
                async with response:
                    body = await response.read()
                    status = response.status
        except TimeoutError:
            raise DeviceTimeout(
                f"{method} {member}: no reply within {bound:g} s",
                device=self.device,
                hint="check the Alpaca server and the network",
            ) from None
        except aiohttp.ClientConnectionError as exc:
            raise NotConnected(
                f"{method} {member}: {type(exc).__name__}: {exc}",
                device=self.device,
                hint="is the Alpaca server running at this address?",
            ) from None
        except aiohttp.ClientError as exc:
            raise ProtocolError(
                f"{method} {member}: HTTP error {exc}", device=self.device
            ) from None
        if status != 200:
            text = body[:200].decode("utf-8", "replace").strip()
            raise ProtocolError(
                f"{method} {member}: HTTP {status}: {text or '(no message)'}",
                device=self.device,
                hint="the server did not understand the request (device number, member, "
                "parameters)",
            )
        return decode_reply(body, method=method, member=member, sent_id=tid, device=self.device)

    async def call(
        self,
        method: str,
        member: str,
        params: Mapping[str, object] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Any:
        """One request; an ASCOM error raises its typed error; returns ``Value``."""
        reply = await self.request(method, member, params, timeout_s=timeout_s)
        if reply.error_number != 0:
            raise ascom_error(
                reply.error_number,
                reply.error_message,
                method=method,
                member=member,
                device=self.device,
            )
        return reply.value


class _DiscoveryProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.found: set[str] = set()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            port = json.loads(data)["AlpacaPort"]
        except (ValueError, KeyError, TypeError):
            log.debug("discovery: ignoring %r from %s", data[:64], addr)
            return
        if isinstance(port, int) and 0 < port < 65536:
            self.found.add(f"{addr[0]}:{port}")


async def discover(
    port: int = DISCOVERY_PORT, timeout: float = 1.0, *, address: str = "255.255.255.255"
) -> list[str]:
    """Alpaca servers answering a discovery datagram within ``timeout`` wall seconds.

    Returns sorted ``host:port`` strings (the HTTP endpoints). ``address`` is the broadcast
    address (or one host, e.g. ``127.0.0.1`` in tests); ``port`` the discovery port.
    """
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _DiscoveryProtocol, local_addr=("0.0.0.0", 0), family=socket.AF_INET, allow_broadcast=True
    )
    try:
        transport.sendto(DISCOVERY_MESSAGE, (address, port))
        await asyncio.sleep(timeout)
    finally:
        transport.close()
    return sorted(protocol.found)
