"""Device selection by URL: ``<driver>[+<transport>]://<address>[?key=value&...]``.

The same station config runs against real hardware or the emulated rig; only the URLs
change (DESIGN.md). Examples::

    rotctld://127.0.0.1:4533                       Hamlib rotctld over TCP
    lx200+serial:///dev/ttyUSB0?baud=9600          LX200 (OnStep dialect) on a serial port
    lx200+socket://127.0.0.1:9999                  ... or on a serial-over-TCP bridge
    elliptec+serial:///dev/ttyUSB1?address=0       Thorlabs ELL14 on a bus address
    smc100+visa://ASRL/dev/ttyUSB2::INSTR          Newport SMC100 through pyvisa(-py)
    idq+zmq://127.0.0.1:5555?dlt=6060              IDQ ID1000-style time controller (SCPI
                                                   port; DataLinkTarget port)

Each driver's ``from_url`` documents its query parameters; README.md has the table.

Each driver class is registered as ``module:Class`` and imported only when its URL is
opened, so a missing optional package only matters for the devices that need it.
Driver classes provide ``from_url(url: DeviceURL, clock: Clock) -> instance``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from drivers.clock import Clock
from drivers.errors import DeviceURLError

#: driver name -> (``module:Class``, default transport, kind)
DRIVERS: dict[str, tuple[str, str, str]] = {
    "rotctld": ("drivers.mount.rotctld:RotctldMount", "tcp", "mount"),
    "lx200": ("drivers.mount.lx200:LX200Mount", "serial", "mount"),
    "elliptec": ("drivers.polarization.elliptec:ElliptecRotator", "serial", "rotator"),
    "smc100": ("drivers.polarization.smc100:SMC100Rotator", "visa", "rotator"),
    "idq": ("drivers.timetagger.idq:IDQTimeTagger", "zmq", "timetagger"),
    "swabian": ("drivers.timetagger.swabian:SwabianTimeTagger", "sdk", "timetagger"),
}

#: transport name -> what the address part looks like (for error messages)
TRANSPORTS: dict[str, str] = {
    "tcp": "host:port",
    "serial": "/dev/<device path>",
    "socket": "host:port (pyserial socket:// serial-over-TCP)",
    "rfc2217": "host:port (RFC 2217 telnet COM port)",
    "visa": "a VISA resource name, e.g. ASRL/dev/ttyUSB0::INSTR or TCPIP::host::port::SOCKET",
    "zmq": "host:port (ZeroMQ over TCP)",
    "sdk": "a vendor-SDK device serial or empty",
}


@dataclass(frozen=True)
class DeviceURL:
    """A parsed device URL."""

    raw: str
    driver: str
    transport: str
    address: str  #: host:port, device path or VISA resource name
    params: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``mount``, ``rotator`` or ``timetagger``."""
        return DRIVERS[self.driver][2]

    @property
    def transport_url(self) -> str:
        """The URL for :func:`drivers.transport.open_transport` (without driver params)."""
        if self.transport == "serial":
            return f"serial://{self.address}"
        if self.transport == "visa":
            return f"visa://{self.address}"
        if self.transport == "zmq":
            return f"zmq+tcp://{self.address}"
        return f"{self.transport}://{self.address}"

    def host_port(self) -> tuple[str, int]:
        """Split a ``host:port`` address; raises DeviceURLError when it is not one."""
        host, sep, port = self.address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise DeviceURLError(
                f"{self.raw!r}: expected host:port with a port in 1..65535, got {self.address!r}",
                key="url",
            )
        return host.strip("[]"), int(port)


def parse_device_url(url: str) -> DeviceURL:
    """Parse and validate a device URL; raises DeviceURLError naming what is wrong."""
    if "://" not in url:
        raise DeviceURLError(
            f"{url!r} is not a device URL; expected <driver>[+<transport>]://<address>, "
            f"drivers: {sorted(DRIVERS)}",
            key="url",
        )
    scheme, _, rest = url.partition("://")
    driver, plus, transport = scheme.lower().partition("+")
    if driver not in DRIVERS:
        raise DeviceURLError(
            f"{url!r}: unknown device driver {driver!r}; known drivers: {sorted(DRIVERS)}",
            key="url",
        )
    if not plus:
        transport = DRIVERS[driver][1]
    if transport not in TRANSPORTS:
        raise DeviceURLError(
            f"{url!r}: unknown transport {transport!r}; known transports: {sorted(TRANSPORTS)}",
            key="url",
        )
    address, _, query = rest.partition("?")
    if transport == "serial" and not address.startswith("/"):
        # urlsplit would take the first path element for a host; serial URLs are paths.
        raise DeviceURLError(
            f"{url!r}: serial address must be an absolute device path like /dev/ttyUSB0 "
            f"(write {driver}+serial:///dev/ttyUSB0)",
            key="url",
        )
    if transport in ("tcp", "zmq", "socket", "rfc2217"):
        split = urlsplit(f"//{address}")
        if split.path or not split.hostname:
            raise DeviceURLError(f"{url!r}: expected {TRANSPORTS[transport]}", key="url")
    if not address and transport != "sdk":
        raise DeviceURLError(
            f"{url!r}: missing address; expected {TRANSPORTS[transport]}", key="url"
        )
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise DeviceURLError(
            f"{url!r}: malformed query {query!r}; expected key=value&...", key="url"
        ) from None
    parsed = DeviceURL(url, driver, transport, address, params)
    if transport in ("tcp", "zmq", "socket", "rfc2217"):
        parsed.host_port()
    return parsed


def driver_class(url: DeviceURL) -> Any:
    """Import and return the driver class for ``url``."""
    target = DRIVERS[url.driver][0]
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DeviceURLError(
            f"{url.raw!r}: driver {url.driver!r} cannot be loaded ({exc})", key="url"
        ) from exc
    return getattr(module, class_name)


def open_device(url: str, clock: Clock) -> Any:
    """Create (not connect) the driver for ``url``; the caller awaits ``connect()``."""
    parsed = parse_device_url(url)
    return driver_class(parsed).from_url(parsed, clock)
