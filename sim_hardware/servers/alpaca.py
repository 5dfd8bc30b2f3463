"""ASCOM Alpaca front-end (HTTP) for the emulated mount: an alt-az ITelescopeV4.

Implemented from the ASCOM Alpaca API Reference (ascom-standards.org/api,
ascom-standards.org/AlpacaDeveloper/ASCOMAlpacaAPIReference.html) and the ITelescopeV4
interface definition (ascom-standards.org/newdocs/telescope.html):

- ``GET|PUT /api/v1/telescope/<n>/<member>``; GET arguments from the query string, PUT
  arguments from the form-encoded body; parameter names case-insensitive (API Reference
  §2.1); every JSON reply carries ``ClientTransactionID`` (echoed, 0 if absent or not a
  uint32 — tolerant, Postel's law, API Reference §1.7), ``ServerTransactionID`` (counting
  from 1), ``ErrorNumber`` and ``ErrorMessage``, plus ``Value`` for a GET;
- ASCOM errors are HTTP 200 with ErrorNumber != 0 (0x400 NotImplemented, 0x401 InvalidValue,
  0x407 NotConnected, 0x408 InvalidWhileParked, 0x40B InvalidOperation, 0x500 + for this
  device's own faults); a request that cannot be interpreted — device number not configured,
  member not known, a required parameter missing or not parsable — is HTTP 400 with a
  plain-text message (API Reference §2, HTTP status codes; ⚠️ the section numbers here
  are from memory; some servers, e.g. the Rust ``ascom-alpaca`` crate, answer 404 for an
  unknown device or member, so clients must accept both);
- management API: ``/management/apiversions`` (``[1]``), ``/management/v1/description``,
  ``/management/v1/configureddevices`` (API Reference §3); discovery in
  :mod:`sim_hardware.servers.alpaca_discovery`.

Faults (``model.faults``): ``hang`` (no reply until it clears), ``slow`` (reply delayed by
``delay_s`` clock seconds), ``disconnect`` (the connection is closed without a reply),
``garbage`` (random bytes instead of JSON), ``error_reply`` (ErrorNumber 0x500 on every
device request); a motor ``stall`` makes motion commands answer 0x501.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sim_hardware.devices.mount import MountModel
from sim_hardware.faults import FaultKind
from sim_hardware.servers.alpaca_discovery import DiscoveryResponder
from sim_hardware.servers.alpaca_telescope import (
    DRIVER_VERSION,
    ERROR_CONTROLLER,
    UINT32_MAX,
    AlpacaTelescope,
    AscomError,
    BadRequest,
    Params,
    Site,
)

__all__ = ["AlpacaServer", "AlpacaTelescope", "Site", "serve_alpaca"]

log = logging.getLogger(__name__)

#: wall seconds between checks while a ``hang`` fault holds a request
HANG_POLL_WALL_S = 0.05


class AlpacaServer:
    """A running Alpaca emulator: :attr:`port`, :attr:`url`, :attr:`discovery`, :meth:`close`."""

    def __init__(
        self,
        telescope: AlpacaTelescope,
        *,
        device_number: int,
        host: str,
        port: int,
        seed: int = 0,
    ) -> None:
        self.telescope = telescope
        self.device_number = device_number
        self.host = host
        self._port = port
        self._server_tid = 0
        self._rng = random.Random(seed)
        self._runner: web.AppRunner | None = None
        self.discovery: DiscoveryResponder | None = None
        self.unique_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"qgs:{telescope.model.name}"))
        self._closing = False

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Device URL for the station config, e.g. ``alpaca://127.0.0.1:11111/0``."""
        return f"alpaca://{self.host}:{self._port}/{self.device_number}"

    async def start(self, *, discovery_port: int | None = None) -> None:
        app = web.Application(middlewares=[self._faults])
        app.router.add_route("*", "/api/v1/{device_type}/{number}/{member}", self._device)
        app.router.add_get("/management/apiversions", self._api_versions)
        app.router.add_get("/management/v1/description", self._description)
        app.router.add_get("/management/v1/configureddevices", self._configured)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        self._runner = runner
        # Bind the socket here so port 0 gives the chosen port without aiohttp internals.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError:
            sock.close()
            raise
        self._port = int(sock.getsockname()[1])
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            raise
        if discovery_port is not None:
            self.discovery = DiscoveryResponder(self._port, host=self.host, port=discovery_port)
            await self.discovery.start()
        log.info("alpaca telescope %s at %s", self.telescope.model.name, self.url)

    async def close(self) -> None:
        self._closing = True
        if self.discovery is not None:
            await self.discovery.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> AlpacaServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ replies

    def _reply(
        self,
        params: Params,
        *,
        value: Any = None,
        has_value: bool,
        number: int = 0,
        message: str = "",
    ) -> web.Response:
        self._server_tid = self._server_tid % UINT32_MAX + 1
        body: dict[str, Any] = {}
        if has_value:
            body["Value"] = value
        body.update(
            ClientTransactionID=params.transaction_id(),
            ServerTransactionID=self._server_tid,
            ErrorNumber=number,
            ErrorMessage=message,
        )
        return web.json_response(body)

    async def _params(self, request: web.Request) -> Params:
        if request.method == "PUT":
            form = await request.post()
            return Params({k: v for k, v in form.items() if isinstance(v, str)})
        return Params(dict(request.query))

    def _active(self, kind: FaultKind) -> float | None:
        faults = self.telescope.model.faults
        fault = faults.active(kind) if faults is not None else None
        if fault is None:
            return None
        return float(fault.params.get("delay_s", 1.0))

    @web.middleware
    async def _faults(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Transport faults, where a real device or its network would misbehave."""
        while True:  # hang: the device is silent until the fault clears (polled, wall s)
            if self._active(FaultKind.HANG) is None or self._closing:
                break
            await asyncio.sleep(HANG_POLL_WALL_S)
        if self._active(FaultKind.DISCONNECT) is not None and request.transport is not None:
            request.transport.close()  # the cable is pulled: no reply at all
            raise web.HTTPServiceUnavailable()
        delay = self._active(FaultKind.SLOW)
        if delay is not None and delay > 0:
            await self.telescope.model.clock.sleep(delay)
        response = await handler(request)
        if self._active(FaultKind.GARBAGE) is not None and isinstance(response, web.Response):
            size = len(response.body) if isinstance(response.body, bytes) else 64
            return web.Response(body=self._rng.randbytes(size), content_type="application/json")
        return response

    async def _device(self, request: web.Request) -> web.Response:
        device_type = request.match_info["device_type"]
        number = request.match_info["number"]
        member = request.match_info["member"]
        if request.method not in ("GET", "PUT"):
            return web.Response(status=405, text=f"method {request.method} is not GET or PUT")
        if device_type != "telescope" or number != str(self.device_number):
            return web.Response(
                status=400, text=f"device {device_type}/{number} is not configured on this server"
            )
        try:
            params = await self._params(request)
        except ValueError as exc:
            return web.Response(status=400, text=f"cannot read the request body: {exc}")
        scope = self.telescope
        if not scope.known(member):
            return web.Response(status=400, text=f"{member!r} is not a telescope member")
        faults = scope.model.faults
        if faults is not None and faults.active(FaultKind.ERROR_REPLY) is not None:
            return self._reply(
                params,
                has_value=request.method == "GET",
                number=ERROR_CONTROLLER,
                message="the mount controller did not answer",
            )
        try:
            value = await scope.handle(request.method, member, params)
        except BadRequest as exc:
            return web.Response(status=400, text=str(exc))
        except AscomError as exc:
            log.info("alpaca: %s %s -> 0x%X %s", request.method, member, exc.number, exc.message)
            return self._reply(
                params, has_value=request.method == "GET", number=exc.number, message=exc.message
            )
        return self._reply(params, value=value, has_value=request.method == "GET")

    async def _api_versions(self, request: web.Request) -> web.Response:
        return self._reply(Params(dict(request.query)), value=[1], has_value=True)

    async def _description(self, request: web.Request) -> web.Response:
        value = {
            "ServerName": "qgs sim_hardware Alpaca",
            "Manufacturer": "qgs",
            "ManufacturerVersion": DRIVER_VERSION,
            "Location": "emulated plant",
        }
        return self._reply(Params(dict(request.query)), value=value, has_value=True)

    async def _configured(self, request: web.Request) -> web.Response:
        value = [
            {
                "DeviceName": self.telescope.getters["name"](Params({})),
                "DeviceType": "Telescope",
                "DeviceNumber": self.device_number,
                "UniqueID": self.unique_id,
            }
        ]
        return self._reply(Params(dict(request.query)), value=value, has_value=True)


async def serve_alpaca(
    model: MountModel,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    device_number: int = 0,
    discovery_port: int | None = None,
    site: Site | None = None,
) -> AlpacaServer:
    """Start an Alpaca telescope emulator for ``model`` on ``host:port`` (0: a free port).

    ``discovery_port``: also answer Alpaca discovery on this UDP port (0: a free one; None:
    no discovery). Faults come from ``model.faults`` and are timed on ``model.clock``.
    """
    telescope = AlpacaTelescope(model, site=site if site is not None else Site())
    server = AlpacaServer(telescope, device_number=device_number, host=host, port=port)
    try:
        await server.start(discovery_port=discovery_port)
    except BaseException:
        await server.close()
        raise
    return server
