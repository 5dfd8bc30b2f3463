"""Device selection by URL: ``<driver>[+<transport>]://<address>[?key=value&...]``.

The same station config runs against real hardware or the emulated rig; only the URLs
change (DESIGN.md). Examples::

    rotctld://127.0.0.1:4533                       Hamlib rotctld over TCP
    lx200+serial:///dev/ttyUSB0?baud=9600          LX200 (OnStep dialect) on a serial port
    lx200+socket://127.0.0.1:9999                  ... or on a serial-over-TCP bridge
    elliptec+serial:///dev/ttyUSB1?address=0       Thorlabs ELL14 on a bus address
    smc100+visa://ASRL/dev/ttyUSB2::INSTR          Newport SMC100 through pyvisa(-py)
    alpaca://127.0.0.1:11111/0                     ASCOM Alpaca telescope number 0
    idq+zmq://127.0.0.1:5555?dlt=6060              IDQ ID1000-style time controller (SCPI
                                                   port; DataLinkTarget port)

Every scheme is declared once, as a :class:`~drivers.specs.DriverSpec` in :data:`SPECS`: its
class, default transport, kind and query parameters (type, default, range, unit, doc). Each
driver's ``from_url`` reads its parameters with :func:`read_params`, and README.md's device
table is generated from the specs (``python -m drivers.registry --readme`` rewrites it).

Each driver class is registered as ``module:Class`` and imported only when its URL is
opened, so a missing optional package only matters for the devices that need it.
Driver classes provide ``from_url(url: DeviceURL, clock: Clock) -> instance``;
``open_device(url, clock, kind=Mount)`` also checks that the URL names a mount.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload
from urllib.parse import parse_qsl, urlsplit

from drivers.clock import Clock
from drivers.errors import DeviceURLError
from drivers.specs import DriverSpec, ParamSpec, ParamValues, render_device_table, spec_table
from drivers.specs import read_params as read_spec_params

D = TypeVar("D")


def _seconds(name: str, default: float, doc: str) -> ParamSpec:
    return ParamSpec(name, "float", default, min=0.0, min_open=True, unit="s", doc=doc)


def mount_params(
    az: tuple[float, float],
    el: tuple[float, float],
    *,
    speed_deg_s: float = 2.0,
    accel_deg_s2: float = 2.0,
    timeout_s: float = 2.0,
) -> tuple[ParamSpec, ...]:
    """The parameters every streamed-goto mount reads (drivers/mount/options.py).

    Neither rotctld nor LX200 reports axis speeds (and LX200 no limits), so they come from
    the URL; ``az``/``el`` are the driver's default soft limits (deg), the speeds are assumed
    (slow = safe bounds) and ``timeout_s`` bounds one request/reply (wall s).
    """
    return (
        ParamSpec(
            "speed_deg_s",
            "float",
            speed_deg_s,
            min=0.0,
            min_open=True,
            unit="deg/s",
            doc="assumed axis speed, for move bounds",
        ),
        ParamSpec(
            "accel_deg_s2",
            "float",
            accel_deg_s2,
            min=0.0,
            min_open=True,
            unit="deg/s^2",
            doc="assumed axis acceleration",
        ),
        ParamSpec("az_min", "float", az[0], unit="deg", doc="soft limit"),
        ParamSpec("az_max", "float", az[1], unit="deg", doc="soft limit"),
        ParamSpec("el_min", "float", el[0], unit="deg", doc="soft limit"),
        ParamSpec("el_max", "float", el[1], unit="deg", doc="soft limit"),
        ParamSpec("park_az", "float", unit="deg", doc="park position, with `park_el`"),
        ParamSpec("park_el", "float", unit="deg", doc="park position, with `park_az`"),
        ParamSpec(
            "follow_rate_hz",
            "float",
            10.0,
            min=0.0,
            min_open=True,
            unit="Hz",
            doc="goto commands per second while following",
        ),
        ParamSpec(
            "tolerance_deg",
            "float",
            0.02,
            min=0.0,
            min_open=True,
            unit="deg",
            doc="a move is done this close to its target",
        ),
        _seconds("timeout_s", timeout_s, "bound on one request/reply (wall)"),
    )


#: serial line settings forwarded to the transport URL (drivers/transport/url.py)
SERIAL_LINE = (
    ParamSpec("baud", "int", min=1, doc="line speed", default_doc="9600 on serial"),
    ParamSpec("parity", "str", pattern="[NEOMSneoms]", noun="a parity letter N/E/O/M/S",
              doc="parity", default_doc="N"),
    ParamSpec("bytesize", "enum", choices=("5", "6", "7", "8"), doc="data bits",
              default_doc="8"),
    ParamSpec("stopbits", "str", pattern=r"1(\.0*)?|1\.50*|2(\.0*)?", noun="1, 1.5 or 2",
              doc="stop bits", default_doc="1"),
    ParamSpec("xonxoff", "bool", doc="software flow control", default_doc="0"),
    ParamSpec("rtscts", "bool", doc="hardware flow control", default_doc="0"),
)  # fmt: skip

#: every device URL scheme, in README order
SPECS: tuple[DriverSpec, ...] = (
    DriverSpec(
        "rotctld",
        "drivers.mount.rotctld:RotctldMount",
        "tcp",
        "mount",
        mount_params(az=(-720.0, 720.0), el=(-90.0, 180.0)),
        "Hamlib `rotctld`, any rotator/mount Hamlib drives; soft limits are intersected "
        "with the daemon's `dump_state`",
        example="rotctld://host:4533",
    ),
    DriverSpec(
        "lx200",
        "drivers.mount.lx200:LX200Mount",
        "serial",
        "mount",
        mount_params(az=(0.0, 360.0), el=(0.0, 90.0)) + SERIAL_LINE,
        "LX200, OnStep alt-az dialect, high precision",
        transports=("serial", "socket", "rfc2217"),
        example="lx200+serial:///dev/ttyUSB0",
        notes="line settings apply to serial only",
    ),
    DriverSpec(
        "alpaca",
        "drivers.mount.alpaca:AlpacaMount",
        "http",
        "mount",
        # drivers/mount/alpaca.py is another engineer's: it reads these itself for now
        (
            *mount_params(az=(-720.0, 720.0), el=(-90.0, 90.0), timeout_s=5.0),
            ParamSpec("client_id", "int", 0, min=0, max=4294967295, doc="ASCOM ClientID"),
            _seconds("connect_timeout_s", 10.0, "bound on `PUT connected` (wall)"),
        ),
        "ASCOM Alpaca telescope (REST); the path is the device number",
        example="alpaca://127.0.0.1:11111/0",
    ),
    DriverSpec(
        "elliptec",
        "drivers.polarization.elliptec:ElliptecRotator",
        "serial",
        "rotator",
        (
            ParamSpec(
                "address", "int", 0, min=0, max=15, base=16, noun="one hex digit", doc="bus address"
            ),
            ParamSpec(
                "speed",
                "float",
                45.0,
                min=0.0,
                min_open=True,
                unit="deg/s",
                doc="speed used for move bounds",
            ),
            _seconds("timeout_s", 2.0, "bound on one reply (wall)"),
        ),
        "Thorlabs Elliptec ELL14 rotation mount (9600 8N1)",
        example="elliptec+serial:///dev/ttyUSB1?address=0",
    ),
    DriverSpec(
        "smc100",
        "drivers.polarization.smc100:SMC100Rotator",
        "visa",
        "rotator",
        (
            ParamSpec("address", "int", 1, min=1, max=31, doc="controller address"),
            _seconds("timeout_s", 2.0, "bound on one reply (wall)"),
            ParamSpec("baud", "int", min=1, doc="line speed", default_doc="57600 on ASRL"),
            ParamSpec(
                "flow",
                "enum",
                choices=("none", "xonxoff", "rtscts"),
                doc="flow control",
                default_doc="xonxoff on ASRL",
            ),
            *SERIAL_LINE[1:4],
        ),
        "Newport SMC100 through pyvisa-py",
        example="smc100+visa://ASRL/dev/ttyUSB2::INSTR",
        notes="line settings apply to ASRL resources only (not `TCPIP::host::port::SOCKET`)",
    ),
    DriverSpec(
        "idq",
        "drivers.timetagger.idq:IDQTimeTagger",
        "zmq",
        "timetagger",
        (
            ParamSpec(
                "dlt", "int", 6060, min=1, max=65535, noun="a port", doc="DataLinkTarget port"
            ),
            ParamSpec(
                "dlt_host",
                "str",
                pattern=r"[^/:@ ]+",
                noun="a host",
                doc="DataLinkTarget host",
                default_doc="the SCPI host",
            ),
            ParamSpec(
                "stream",
                "int",
                0,
                min=0,
                max=65535,
                noun="a port",
                doc="base of the PAIR ports, input n on base + n; 0: free local ports",
            ),
            ParamSpec(
                "channels",
                "int",
                min=1,
                max=255,
                noun="the number of inputs",
                doc="inputs, numbered from 1",
                default_doc="asked of the device",
            ),
            _seconds("timeout_s", 2.0, "bound on one SCPI or DLT request (wall)"),
            _seconds("idle_s", 10.0, "quiet stream before a `REC:STAG?` check"),
            _seconds("stall_s", 0.25, "a silent input may hold the time-ordered merge"),
            ParamSpec(
                "hold",
                "int",
                1 << 18,
                min=1,
                noun="a whole number",
                doc="events one input may hold back",
            ),
        ),
        "IDQ ID1000-style: SCPI over ZeroMQ REQ/REP + DataLinkTarget timestamp streams",
        example="idq+zmq://host:5555?dlt=6060",
        notes="only the documented DataLinkTarget commands: one `start-stream` per enabled "
        "input, merged in time order ([docs/devices/idq-emulator.md]"
        "(docs/devices/idq-emulator.md): documented vs emulator extensions)",
    ),
    DriverSpec(
        "swabian",
        "drivers.timetagger.swabian:SwabianTimeTagger",
        "sdk",
        "timetagger",
        (),
        "Swabian Time Tagger via the vendor SDK, when installed; the address is the serial",
        example="swabian://",
    ),
)

#: scheme -> spec
DRIVER_SPECS: dict[str, DriverSpec] = spec_table(SPECS)

#: driver name -> (``module:Class``, default transport, kind); derived from :data:`SPECS`
DRIVERS: dict[str, tuple[str, str, str]] = {
    s.scheme: (s.target, s.default_transport, s.kind) for s in SPECS
}

#: transport name -> what the address part looks like (for error messages)
TRANSPORTS: dict[str, str] = {
    "tcp": "host:port",
    "serial": "/dev/<device path>",
    "socket": "host:port (pyserial socket:// serial-over-TCP)",
    "rfc2217": "host:port (RFC 2217 telnet COM port)",
    "visa": "a VISA resource name, e.g. ASRL/dev/ttyUSB0::INSTR or TCPIP::host::port::SOCKET",
    "zmq": "host:port (ZeroMQ over TCP)",
    "http": "host:port/<device number> (ASCOM Alpaca REST)",
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
        return DRIVER_SPECS[self.driver].kind

    @property
    def spec(self) -> DriverSpec:
        """The declared spec of this URL's driver."""
        return DRIVER_SPECS[self.driver]

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
    if transport == "http":
        # ASCOM Alpaca: host:port/<device number> (Alpaca API v1 §2, device number >= 0)
        host_port, slash, number = address.partition("/")
        if not slash or not number.isdigit():
            raise DeviceURLError(
                f"{url!r}: expected {TRANSPORTS[transport]}, e.g. {driver}://127.0.0.1:11111/0",
                key="url",
            )
        DeviceURL(url, driver, "tcp", host_port).host_port()
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


def read_params(url: DeviceURL, spec: DriverSpec | None = None) -> ParamValues:
    """The query parameters of ``url`` read against ``spec`` (default: its driver's spec).

    Raises DeviceURLError naming the key, the value and what is expected
    (:func:`drivers.specs.read_params`).
    """
    return read_spec_params(url, spec if spec is not None else DRIVER_SPECS[url.driver])


def _kind_name(kind: Callable[..., Any]) -> str:
    from drivers import interfaces

    names: dict[object, str] = {
        interfaces.Mount: "mount",
        interfaces.Rotator: "rotator",
        interfaces.TimeTagger: "timetagger",
    }
    if kind not in names:
        raise ValueError(f"kind must be Mount, Rotator or TimeTagger, got {kind!r}")
    return names[kind]


@overload
def open_device(url: str, clock: Clock) -> Any: ...


@overload
def open_device(url: str, clock: Clock, kind: Callable[..., D]) -> D: ...


def open_device(url: str, clock: Clock, kind: Callable[..., Any] | None = None) -> Any:
    """Create (not connect) the driver for ``url``; the caller awaits ``connect()``.

    ``kind`` (:class:`~drivers.interfaces.Mount`, ``Rotator`` or ``TimeTagger``) types the
    result and is checked against the URL's driver: a rotator URL given where a mount is
    expected raises DeviceURLError before anything is imported or opened.
    """
    parsed = parse_device_url(url)
    if kind is not None:
        expected = _kind_name(kind)
        if parsed.kind != expected:
            raise DeviceURLError(
                f"{url!r}: {parsed.driver!r} is a {parsed.kind} driver; expected a {expected} "
                f"({', '.join(s.scheme for s in SPECS if s.kind == expected)})",
                key="url",
            )
    return driver_class(parsed).from_url(parsed, clock)


# -- README device table --------------------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"
TABLE_BEGIN = "<!-- devices:begin -->"
TABLE_END = "<!-- devices:end -->"
REGENERATE = "python -m drivers.registry --readme"


def device_table() -> str:
    """The README's markdown device table, rendered from :data:`SPECS`."""
    return render_device_table(SPECS, TRANSPORTS)


def readme_with_table(text: str) -> str:
    """``text`` (README.md) with the block between the device-table markers regenerated."""
    begin, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if begin < 0 or end < begin:
        raise ValueError(f"README.md lacks the {TABLE_BEGIN} ... {TABLE_END} block")
    note = f"<!-- generated from drivers/registry.py SPECS; regenerate: {REGENERATE} -->\n"
    head = text[: begin + len(TABLE_BEGIN)]
    return f"{head}\n{note}{device_table()}{text[end:]}"


def main(argv: list[str] | None = None) -> int:
    """``python -m drivers.registry [--readme]``: print the table, or rewrite README.md."""
    parser = argparse.ArgumentParser(prog="python -m drivers.registry", description=main.__doc__)
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's table block")
    args = parser.parse_args(argv)
    if not args.readme:
        sys.stdout.write(device_table())
        return 0
    text = README.read_text(encoding="utf-8")
    updated = readme_with_table(text)
    if updated != text:
        README.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
