"""The ASCOM ITelescopeV4 members of the emulated alt-az mount, over :class:`MountModel`.

No HTTP here: :mod:`sim_hardware.servers.alpaca` serves these members under
``/api/v1/telescope/<n>/<member>``. Member semantics: the ITelescopeV4 interface definition
(ascom-standards.org/newdocs/telescope.html); error numbers: ASCOM Alpaca API Reference
(ascom-standards.org/api).

What the emulated telescope answers (docs/devices/alpaca.md has the member table):

- it is alt-az (AlignmentMode 0), slews by SlewToAltAz(Async), MoveAxis on axes 0 (azimuth)
  and 1 (altitude) up to the axis speed (AxisRates), AbortSlew, Park/Unpark (asynchronous as
  in V4: Slewing until there, then AtPark), FindHome (asynchronous);
- Azimuth is reported modulo 360 (ITelescope: 0 <= Azimuth < 360); a goto's azimuth is
  taken onto the cable-wrap side nearest the current position inside the firmware limits,
  as an alt-az controller with a wrap does (⚠️ an emulator choice: ASCOM says nothing about
  wrap); a target outside the limits is InvalidValue (0x401) and nothing moves;
- it cannot track sidereally (no RA/Dec model): CanSetTracking false, Tracking false,
  writing Tracking NotImplemented; RA/Dec, sidereal time, pier side, guiding, sync,
  refraction, optics and Action/Command* members answer NotImplemented (0x400), never a
  made-up value;
- site latitude/longitude/elevation are settable (validated ranges); UTCDate is the rig
  clock (ISO 8601, UTC) and cannot be set (NotImplemented);
- Connected is per device, not per client (as ASCOM drivers); V4 Connect/Disconnect are
  instant, so Connecting is always false.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drivers.datatypes import AltAz, MountState
from drivers.errors import DeviceFault, LimitViolation
from sim_hardware.devices.mount import MountModel

log = logging.getLogger(__name__)

NOT_IMPLEMENTED = 0x400
INVALID_VALUE = 0x401
NOT_CONNECTED = 0x407
INVALID_WHILE_PARKED = 0x408
INVALID_OPERATION = 0x40B
ACTION_NOT_IMPLEMENTED = 0x40C
ERROR_CONTROLLER = 0x500  #: this device: the mount controller did not answer (error_reply)
ERROR_STALL = 0x501  #: this device: motor stall, motion refused

INTERFACE_VERSION = 4  #: ITelescopeV4 (ASCOM Platform 7)
DRIVER_VERSION = "1.0"
UINT32_MAX = 0xFFFF_FFFF

#: ITelescopeV4 members this emulator does not model: NotImplemented (0x400), never faked
NOT_MODELLED = frozenset(
    {
        "aperturearea",
        "aperturediameter",
        "declination",
        "declinationrate",
        "destinationsideofpier",
        "doesrefraction",
        "equatorialsystem",
        "focallength",
        "guideratedeclination",
        "guideraterightascension",
        "ispulseguiding",
        "pulseguide",
        "rightascension",
        "rightascensionrate",
        "setpark",
        "sideofpier",
        "siderealtime",
        "slewsettletime",
        "slewtocoordinates",
        "slewtocoordinatesasync",
        "slewtotarget",
        "slewtotargetasync",
        "synctoaltaz",
        "synctocoordinates",
        "synctotarget",
        "targetdeclination",
        "targetrightascension",
        "commandblind",
        "commandbool",
        "commandstring",
    }
)
#: members answered without a connection (ASCOM: informational members work disconnected)
NO_CONNECTION_NEEDED = frozenset(
    {
        "connected",
        "connect",
        "connecting",
        "disconnect",
        "description",
        "driverinfo",
        "driverversion",
        "interfaceversion",
        "name",
        "supportedactions",
    }
)


class AscomError(Exception):
    """An ASCOM error reply (HTTP 200, ErrorNumber != 0)."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(message)
        self.number = number
        self.message = message


class BadRequest(Exception):
    """An uninterpretable request: HTTP 400 with a plain-text message."""


@dataclass
class Site:
    """Site the telescope was told (deg, deg east, m); ITelescope Site* properties."""

    latitude_deg: float = 0.0
    longitude_deg: float = 0.0
    elevation_m: float = 0.0


class Params:
    """Request parameters by lower-case name (Alpaca parameter names are case-insensitive)."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self._values = {k.lower(): v for k, v in raw.items()}

    def text(self, name: str) -> str:
        value = self._values.get(name.lower())
        if value is None:
            raise BadRequest(f"missing parameter {name}")
        return value

    def number(self, name: str) -> float:
        text = self.text(name)
        try:
            value = float(text)
        except ValueError:
            raise BadRequest(f"parameter {name}={text!r} is not a number") from None
        if not math.isfinite(value):
            raise AscomError(INVALID_VALUE, f"{name}={text} is not finite")
        return value

    def integer(self, name: str) -> int:
        text = self.text(name)
        try:
            return int(text)
        except ValueError:
            raise BadRequest(f"parameter {name}={text!r} is not an integer") from None

    def boolean(self, name: str) -> bool:
        text = self.text(name).strip().lower()
        if text not in ("true", "false"):
            raise BadRequest(f"parameter {name}={text!r} is not true or false")
        return text == "true"

    def transaction_id(self) -> int:
        text = self._values.get("clienttransactionid", "")
        return int(text) if text.isdigit() and int(text) <= UINT32_MAX else 0


Getter = Callable[[Params], Any]
Putter = Callable[[Params], Awaitable[None] | None]


@dataclass
class AlpacaTelescope:
    """The ITelescopeV4 members over a :class:`MountModel` (no HTTP inside)."""

    model: MountModel
    site: Site = field(default_factory=Site)
    connected: bool = False
    move_rates: dict[int, float] = field(default_factory=lambda: {0: 0.0, 1: 0.0})

    def __post_init__(self) -> None:
        self.getters: dict[str, Getter] = {
            "connected": lambda p: self.connected,
            "connecting": lambda p: False,
            "name": lambda p: f"qgs emulated mount {self.model.name}",
            "description": lambda p: "qgs emulated alt-az mount (ASCOM Alpaca ITelescopeV4)",
            "driverinfo": lambda p: "qgs sim_hardware Alpaca telescope emulator",
            "driverversion": lambda p: DRIVER_VERSION,
            "interfaceversion": lambda p: INTERFACE_VERSION,
            "supportedactions": lambda p: [],
            "alignmentmode": lambda p: 0,  # algAltAz
            "altitude": lambda p: self.model.encoder_position().el_deg,
            "azimuth": lambda p: self.model.encoder_position().az_deg % 360.0,
            "slewing": lambda p: self.model.is_moving(),
            "atpark": lambda p: self.model.state is MountState.PARKED,
            "athome": lambda p: self._at_home(),
            "tracking": lambda p: False,
            "trackingrate": lambda p: 0,  # driveSidereal (the only rate listed)
            "trackingrates": lambda p: [0],
            "utcdate": lambda p: _iso(self.model.clock.now_datetime()),
            "sitelatitude": lambda p: self.site.latitude_deg,
            "sitelongitude": lambda p: self.site.longitude_deg,
            "siteelevation": lambda p: self.site.elevation_m,
            "canmoveaxis": lambda p: self._axis(p) in (0, 1),
            "axisrates": self._axis_rates,
            "devicestate": lambda p: self._device_state(),
        }
        for flag, value in {
            "canslewaltaz": True,
            "canslewaltazasync": True,
            "canpark": True,
            "canunpark": True,
            "canfindhome": True,
            "canslew": False,
            "canslewasync": False,
            "cansetpark": False,
            "cansettracking": False,
            "cansync": False,
            "cansyncaltaz": False,
            "canpulseguide": False,
            "cansetpierside": False,
            "cansetguiderates": False,
            "cansetdeclinationrate": False,
            "cansetrightascensionrate": False,
        }.items():
            self.getters[flag] = _constant(value)
        self.putters: dict[str, Putter] = {
            "connected": self._put_connected,
            "connect": lambda p: self._set_connected(True),
            "disconnect": lambda p: self._set_connected(False),
            "slewtoaltazasync": self._slew_async,
            "slewtoaltaz": self._slew_sync,
            "abortslew": lambda p: self._abort(),
            "park": lambda p: self._motion(self.model.park),
            "unpark": lambda p: self.model.unpark(),
            "findhome": lambda p: self._motion(self.model.home, parked_ok=False),
            "moveaxis": self._move_axis,
            "tracking": self._put_tracking,
            "trackingrate": self._put_tracking_rate,
            "sitelatitude": lambda p: self._set_site(p, "SiteLatitude", -90.0, 90.0),
            "sitelongitude": lambda p: self._set_site(p, "SiteLongitude", -180.0, 180.0),
            "siteelevation": lambda p: self._set_site(p, "SiteElevation", -300.0, 10000.0),
            "action": self._action,
        }

    # ------------------------------------------------------------------ helpers

    def known(self, member: str) -> bool:
        return member in self.getters or member in self.putters or member in NOT_MODELLED

    def _at_home(self) -> bool:
        here, home = self.model.encoder_position(), self.model.home_position
        near = abs(here.az_deg - home.az_deg) < 0.01 and abs(here.el_deg - home.el_deg) < 0.01
        return near and not self.model.is_moving()

    def _axis(self, p: Params) -> int:
        axis = p.integer("Axis")
        if axis not in (0, 1, 2):  # TelescopeAxes: primary, secondary, tertiary
            raise AscomError(INVALID_VALUE, f"Axis {axis} is not 0, 1 or 2")
        return axis

    def _axis_speed(self, axis: int) -> float:
        lim = self.model.limits
        return (lim.az if axis == 0 else lim.el).max_speed_deg_s

    def _axis_rates(self, p: Params) -> list[dict[str, float]]:
        axis = self._axis(p)
        if axis == 2:
            return []  # ITelescope AxisRates: an empty collection for an axis that cannot move
        return [{"Minimum": 0.0, "Maximum": self._axis_speed(axis)}]

    def _device_state(self) -> list[dict[str, Any]]:
        """ITelescopeV4 DeviceState: the operational properties this emulator implements."""
        pos = self.model.encoder_position()
        now = self.model.clock.now_datetime()
        state = {
            "Altitude": pos.el_deg,
            "AtHome": self._at_home(),
            "AtPark": self.model.state is MountState.PARKED,
            "Azimuth": pos.az_deg % 360.0,
            "Slewing": self.model.is_moving(),
            "Tracking": False,
            "UTCDate": _iso(now),
            "TimeStamp": _iso(now),
        }
        return [{"Name": k, "Value": v} for k, v in state.items()]

    def _set_connected(self, value: bool) -> None:
        self.connected = value

    def _put_connected(self, p: Params) -> None:
        self.connected = p.boolean("Connected")

    def _refuse_if_parked(self, what: str) -> None:
        if self.model.state is MountState.PARKED:
            raise AscomError(INVALID_WHILE_PARKED, f"{what} is invalid while parked")

    def _motion(self, command: Callable[[], None], *, parked_ok: bool = True) -> None:
        if not parked_ok:
            self._refuse_if_parked("this command")
        try:
            command()
        except DeviceFault as exc:
            raise AscomError(ERROR_STALL, exc.message) from None
        self.move_rates = {0: 0.0, 1: 0.0}

    def _wrap(self, az: float) -> float:
        """The cable-wrap equivalent of ``az`` inside the limits nearest the current axis."""
        lim = self.model.limits.az
        here = self.model.encoder_position().az_deg
        choices = [az + 360.0 * k for k in range(-3, 4)]
        inside = [c for c in choices if lim.min_deg <= c <= lim.max_deg]
        if not inside:
            raise AscomError(INVALID_VALUE, f"Azimuth {az} is outside the mount's azimuth range")
        return min(inside, key=lambda c: abs(c - here))

    def _start_slew(self, p: Params) -> None:
        az, alt = p.number("Azimuth"), p.number("Altitude")
        self._refuse_if_parked("SlewToAltAz")
        # ITelescope SlewToAltAz: Azimuth 0..360, Altitude -90..90, else InvalidValue
        if not 0.0 <= az <= 360.0:
            raise AscomError(INVALID_VALUE, f"Azimuth {az} is outside 0..360")
        if not -90.0 <= alt <= 90.0:
            raise AscomError(INVALID_VALUE, f"Altitude {alt} is outside -90..90")
        try:
            self.model.command(AltAz(self._wrap(az % 360.0), alt))
        except LimitViolation as exc:
            raise AscomError(INVALID_VALUE, exc.message) from None
        except DeviceFault as exc:
            raise AscomError(ERROR_STALL, exc.message) from None
        self.move_rates = {0: 0.0, 1: 0.0}

    def _slew_async(self, p: Params) -> None:
        self._start_slew(p)

    async def _slew_sync(self, p: Params) -> None:
        """Synchronous SlewToAltAz: returns once the axes have arrived (deprecated in V4)."""
        self._start_slew(p)
        while self.model.is_moving():
            await self.model.clock.sleep(min(0.1, max(self.model.time_to_arrive(), 0.01)))

    def _abort(self) -> None:
        self._refuse_if_parked("AbortSlew")  # ITelescope AbortSlew: InvalidWhileParked
        self.model.stop()
        self.move_rates = {0: 0.0, 1: 0.0}

    def _move_axis(self, p: Params) -> None:
        axis, rate = self._axis(p), p.number("Rate")
        if axis == 2:
            raise AscomError(INVALID_VALUE, "axis 2 (tertiary) cannot move")
        speed = self._axis_speed(axis)
        if abs(rate) > speed:
            raise AscomError(INVALID_VALUE, f"Rate {rate} exceeds AxisRates maximum {speed}")
        self._refuse_if_parked("MoveAxis")
        rates = dict(self.move_rates)
        rates[axis] = rate
        try:
            if all(r == 0.0 for r in rates.values()):
                self.model.stop()
            else:
                if rate == 0.0:
                    self.model.stop()  # then restart the other axis at its rate
                for ax, r in rates.items():
                    if r != 0.0:
                        direction = 1 if r > 0 else -1
                        d_az, d_el = (direction, 0) if ax == 0 else (0, direction)
                        self.model.jog(d_az, d_el, abs(r) / self._axis_speed(ax))
        except DeviceFault as exc:
            raise AscomError(ERROR_STALL, exc.message) from None
        self.move_rates = rates

    def _put_tracking(self, p: Params) -> None:
        p.boolean("Tracking")
        raise AscomError(NOT_IMPLEMENTED, "CanSetTracking is false: no sidereal tracking")

    def _put_tracking_rate(self, p: Params) -> None:
        rate = p.integer("TrackingRate")
        if rate != 0:
            raise AscomError(INVALID_VALUE, f"TrackingRate {rate} is not in TrackingRates [0]")

    def _set_site(self, p: Params, name: str, lo: float, hi: float) -> None:
        value = p.number(name)
        if not lo <= value <= hi:
            raise AscomError(INVALID_VALUE, f"{name} {value} is outside {lo:g}..{hi:g}")
        attr = {"SiteLatitude": "latitude_deg", "SiteLongitude": "longitude_deg"}
        setattr(self.site, attr.get(name, "elevation_m"), value)

    def _action(self, p: Params) -> None:
        name = p.text("Action")
        raise AscomError(ACTION_NOT_IMPLEMENTED, f"action {name!r} is not supported")

    # ------------------------------------------------------------------ dispatch

    async def handle(self, method: str, member: str, p: Params) -> Any:
        """Run ``method member``; returns the Value (None for PUT) or raises."""
        if member in NOT_MODELLED:
            raise AscomError(NOT_IMPLEMENTED, f"{member} is not implemented by this telescope")
        table: Mapping[str, Any] = self.getters if method == "GET" else self.putters
        fn = table.get(member)
        if fn is None:
            raise BadRequest(f"{method} {member} is not a telescope member")
        if not self.connected and member not in NO_CONNECTION_NEEDED:
            raise AscomError(NOT_CONNECTED, "the telescope is not connected")
        result = fn(p)
        if asyncio.iscoroutine(result):
            result = await result
        return result if method == "GET" else None


def _constant(value: bool) -> Getter:
    return lambda p: value


def _iso(t: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z (ITelescope UTCDate on the wire)."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
