"""ASCOM Alpaca telescope (alt-az) over HTTP: ``alpaca://host:port/<device number>``.

Members used (ITelescopeV3/V4, ascom-standards.org/newdocs/telescope.html; wire format in
:mod:`drivers.mount.alpaca_protocol`):

- connect: ``PUT connected Connected=true`` then ``GET connected`` — the synchronous
  Connected property exists in every interface version (V4's asynchronous ``connect`` +
  ``connecting`` poll is not needed by a client that accepts a blocking connect; the PUT is
  bounded by ``connect_timeout_s``); then ``interfaceversion``, ``name``, ``alignmentmode``
  (0 = algAltAz expected), ``canslewaltazasync`` (required), ``tracking`` (switched off
  if on: an alt/az goto of a tracking mount would be dragged along in RA; ⚠️ that
  ITelescope SlewToAltAz refuses to run while Tracking is True, with InvalidOperation, is
  from memory of the ITelescopeV3 remarks, not checked against the text; a mount that
  cannot switch tracking off (NotImplemented) is used as it is, with a warning);
- position: ``GET azimuth`` and ``GET altitude`` (degrees; azimuth 0..360 from north
  through east);
- go-to: ``PUT slewtoaltazasync Azimuth=… Altitude=…`` (a streamed follow sends one per
  tick; an Alpaca mount retargets a running slew); a mount that answers InvalidWhileParked
  (0x408) is unparked once (``PUT unpark``) and the goto retried, as the LX200 driver does;
- stop: ``PUT abortslew``; park: ``PUT park`` (asynchronous in V4, synchronous in V3, so
  bounded by the park move time) and ``GET atpark`` until true.

Azimuth on the wire is modulo 360 (no cable-wrap information, as LX200): a reported azimuth
is mapped to the equivalent nearest the current target (or the last reported position), so
the station's unwrapped trajectory and the reported position stay comparable. The mount
chooses its own cable-wrap side. Elevation above 90 (over the top) cannot be commanded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from drivers.clock import Clock
from drivers.datatypes import AltAz, MountCapability, MountLimits
from drivers.errors import DeviceError, DeviceFault, ProtocolError
from drivers.mount.alpaca_protocol import (
    INVALID_WHILE_PARKED,
    NOT_IMPLEMENTED,
    AlpacaClient,
    AlpacaReply,
    ascom_error,
)
from drivers.mount.common import StreamedMount, intersect_limits
from drivers.mount.options import MountOptions, default_limits, parse_mount_params
from drivers.registry import DeviceURL, read_params
from drivers.transport.base import Transport

log = logging.getLogger(__name__)

T = TypeVar("T")

#: what an Alpaca alt-az telescope can be told: azimuth any (sent modulo 360), altitude
#: -90..90 (ITelescope SlewToAltAz: InvalidValue outside)
ALPACA_RANGE = default_limits(-720.0, 720.0, -90.0, 90.0)
ALG_ALT_AZ = 0  #: AlignmentModes.algAltAz
DEFAULT_CONNECT_TIMEOUT_S = 10.0  #: wall s for PUT connected (a real mount may home)


async def _no_byte_transport() -> Transport:
    raise ProtocolError("Alpaca speaks HTTP; there is no byte transport to open")


class AlpacaMount(StreamedMount):
    """An alt-az ASCOM Alpaca telescope (``alpaca://host:port/0``).

    Args:
        host_port: ``host:port`` of the Alpaca server.
        device_number: the telescope's device number on that server.
        clock: the station clock.
        limits: soft limits and assumed dynamics (narrowed to what Alpaca can express).
        options: pacing and bounds (``io_timeout_s`` bounds each HTTP request).
        park: the park position if known (only for status; AtPark says when parked).
        client_id: our Alpaca ClientID (uint32; default random).
        connect_timeout_s: bound on ``PUT connected`` (wall s).
        url: the device URL for messages.
    """

    CAPABILITIES = MountCapability.STOP | MountCapability.PARK
    AZ_WRAPS = True

    def __init__(
        self,
        host_port: str,
        device_number: int,
        clock: Clock,
        *,
        limits: MountLimits | None = None,
        options: MountOptions | None = None,
        park: AltAz | None = None,
        client_id: int | None = None,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        url: str | None = None,
    ) -> None:
        name = url if url is not None else f"alpaca://{host_port}/{device_number}"
        soft = limits if limits is not None else ALPACA_RANGE
        opts = options if options is not None else MountOptions()
        narrowed = intersect_limits(soft, ALPACA_RANGE, where=name)
        super().__init__(
            _no_byte_transport, clock, limits=narrowed, options=opts, park=park, url=name
        )
        cid = client_id if client_id is not None else random.randint(1, 65535)
        self._client = AlpacaClient(
            host_port, device_number, client_id=cid, timeout_s=opts.io_timeout_s, device=name
        )
        self._connect_timeout_s = connect_timeout_s
        self._http_lock = asyncio.Lock()  # own lock: no byte link of the base class is used
        self._last_az: float | None = None
        self.interface_version = 0  #: ITelescope version the device reports
        self.name = ""  #: the device's Name
        self.unparks = 0  #: how often a goto found the mount parked and unparked it

    @classmethod
    def from_url(cls, url: DeviceURL, clock: Clock) -> AlpacaMount:
        """``alpaca://host:port/0?client_id=7&timeout_s=2&speed_deg_s=5&el_min=10``.

        The parameters are declared in :mod:`drivers.registry` (the common mount ones,
        ``client_id`` with 0 for random, ``connect_timeout_s``); an unknown or malformed one
        raises DeviceURLError.
        """
        host_port, _, number = url.address.partition("/")
        params = parse_mount_params(url)
        extra = read_params(url)
        return cls(
            host_port,
            int(number),
            clock,
            limits=params.limits,
            options=params.options,
            park=params.park,
            client_id=extra.integer("client_id") or None,
            connect_timeout_s=extra.number("connect_timeout_s"),
            url=url.raw,
        )

    @property
    def client(self) -> AlpacaClient:
        """The HTTP client (ClientID, last ClientTransactionID)."""
        return self._client

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_connected(self) -> bool:
        return self._client.is_open

    async def connect(self) -> None:
        """Open the HTTP session, PUT connected=true and check the mount is alt-az."""
        if self.is_connected:
            return
        await self._client.open()
        try:
            await self._handshake()
        except BaseException:
            await self._client.close()
            raise
        self._fault = None
        log.info(
            "%s: connected to %r (ITelescopeV%d)", self._url, self.name, self.interface_version
        )

    async def close(self) -> None:
        """Close the HTTP session (the device stays connected for other clients)."""
        if self._client.is_open:
            await self._client.close()
            log.info("%s: closed", self._url)

    # ------------------------------------------------------------------ requests

    async def _locked(self, fn: Callable[[AlpacaClient], Awaitable[T]]) -> T:
        """Run ``fn`` under the lock, shielded from cancellation (as the byte drivers' DeviceLink).

        HTTP requests share no byte stream, but the lock keeps commands in order: the
        AbortSlew that a cancelled slew sends in ``finally`` cannot overtake its goto. Each
        request is bounded by its timeout, so the shield cannot hang.
        """

        async def locked() -> T:
            async with self._http_lock:
                return await fn(self._client)

        task = asyncio.ensure_future(locked())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            raise

    async def _get(self, member: str) -> Any:
        return await self._locked(lambda c: c.call("GET", member))

    async def _put(self, member: str, *, timeout_s: float | None = None, **params: object) -> None:
        await self._locked(lambda c: c.call("PUT", member, params, timeout_s=timeout_s))

    def _number(self, value: Any, member: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(f"GET {member}: expected a number, got {value!r}", device=self._url)
        number = float(value)
        if not math.isfinite(number):
            raise ProtocolError(f"GET {member}: {value!r} is not finite", device=self._url)
        return number

    def _bool(self, value: Any, member: str) -> bool:
        if not isinstance(value, bool):
            raise ProtocolError(
                f"GET {member}: expected true/false, got {value!r}", device=self._url
            )
        return value

    # ------------------------------------------------------------------ wire primitives

    async def _handshake(self) -> None:
        await self._put("connected", Connected=True, timeout_s=self._connect_timeout_s)
        if not self._bool(await self._get("connected"), "connected"):
            raise DeviceFault("PUT connected=true left Connected false", device=self._url)
        version = await self._get("interfaceversion")
        self.interface_version = int(self._number(version, "interfaceversion"))
        self.name = str(await self._get("name"))
        mode = int(self._number(await self._get("alignmentmode"), "alignmentmode"))
        if mode != ALG_ALT_AZ:
            log.warning(
                "%s: alignment mode %d is not alt-az (0); gotos stay alt/az", self._url, mode
            )
        if not self._bool(await self._get("canslewaltazasync"), "canslewaltazasync"):
            raise DeviceFault(
                "the telescope cannot SlewToAltAzAsync", device=self._url, hint="use another driver"
            )
        if self._bool(await self._get("tracking"), "tracking"):
            # see the module docstring: alt/az gotos want Tracking off
            reply = await self._locked(lambda c: c.request("PUT", "tracking", {"Tracking": False}))
            if reply.error_number == NOT_IMPLEMENTED:  # CanSetTracking false: try the gotos
                log.warning("%s: tracking is on and cannot be switched off", self._url)
            elif reply.error_number != 0:
                raise self._error(reply, "tracking")

    async def _read_position(self) -> AltAz:
        az = self._number(await self._get("azimuth"), "azimuth")
        el = self._number(await self._get("altitude"), "altitude")
        return AltAz(self._unwrap(az), el)

    def _unwrap(self, az: float) -> float:
        """The equivalent of ``az`` (mod 360) nearest the target or the last position."""
        ref = self._target.az_deg if self._target is not None else self._last_az
        if ref is None:  # first reading: the middle of the azimuth range (no wrap known)
            ref = 0.5 * (self._limits.az.min_deg + self._limits.az.max_deg)
        unwrapped = ref + ((az - ref + 180.0) % 360.0 - 180.0)
        self._last_az = unwrapped
        return unwrapped

    async def _command_position(self, target: AltAz, *, streaming: bool) -> None:
        del streaming  # an Alpaca mount retargets a running slew
        args: dict[str, object] = {
            "Azimuth": target.az_deg % 360.0,
            "Altitude": target.el_deg,
        }

        async def goto(client: AlpacaClient) -> None:
            reply = await client.request("PUT", "slewtoaltazasync", args)
            if reply.error_number == INVALID_WHILE_PARKED:
                self.unparks += 1
                log.info("%s: mount is parked; unparking for the goto", self._url)
                await client.call("PUT", "unpark")
                reply = await client.request("PUT", "slewtoaltazasync", args)
            if reply.error_number != 0:
                raise self._error(reply, "slewtoaltazasync")

        await self._locked(goto)

    async def _stop_axes(self) -> None:
        reply = await self._locked(lambda c: c.request("PUT", "abortslew"))
        # A parked mount is not moving: AbortSlew's InvalidWhileParked means "stopped".
        if reply.error_number not in (0, INVALID_WHILE_PARKED):
            raise self._error(reply, "abortslew")

    def _error(self, reply: AlpacaReply, member: str) -> DeviceError:
        return ascom_error(
            reply.error_number, reply.error_message, method="PUT", member=member, device=self._url
        )

    async def _start_park(self) -> None:
        # V3 Park blocks until parked: bound the request by the longest park move.
        here = await self._read_position()
        bound = self.move_timeout_s(here, self._limits_corner_farthest_from(here))
        await self._put("park", timeout_s=self._clock.to_wall(bound) + self._opts.io_timeout_s)

    async def _park_complete(self) -> bool:
        return self._bool(await self._get("atpark"), "atpark")
