"""Parse transport URLs into typed addresses (what :func:`drivers.transport.open_transport` opens).

Accepted forms (anything else raises :class:`~drivers.errors.DeviceURLError` naming the URL
and listing these)::

    serial:///dev/ttyUSB0?baud=9600&parity=N&bytesize=8&stopbits=1&xonxoff=0&rtscts=0
    /dev/ttyUSB0                                   bare absolute path = serial, 9600 8N1
    socket://host:port                             pyserial serial-over-TCP (settings ignored)
    rfc2217://host:port?baud=...                   RFC 2217 telnet COM port (settings carried)
    tcp://host:port                                raw TCP (asyncio streams, TCP_NODELAY)
    visa://ASRL/dev/pts/5::INSTR?baud=57600        pyvisa with the pyvisa-py backend
    visa://TCPIP::127.0.0.1::5025::SOCKET
    zmq+tcp://host:port                            ZeroMQ REQ socket (one message per write)
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from drivers.errors import DeviceURLError

EXPECTED_FORMS = (
    "serial:///dev/<tty>?baud=9600&parity=N&bytesize=8&stopbits=1&xonxoff=0&rtscts=0, "
    "/dev/<tty>, socket://host:port, rfc2217://host:port, tcp://host:port, "
    "visa://<VISA resource, e.g. ASRL/dev/ttyUSB0::INSTR or TCPIP::host::port::SOCKET>, "
    "zmq+tcp://host:port"
)

PARITIES = ("N", "E", "O", "M", "S")  #: pyserial parity letters
BYTESIZES = (5, 6, 7, 8)
STOPBITS = (1.0, 1.5, 2.0)
VISA_FLOW = ("none", "xonxoff", "rtscts")
#: accepted by visa:// for compatibility with pyvisa resource strings; framing is chosen
#: per read (raw byte I/O), so these do not change what a read returns.
VISA_TERMINATION_KEYS = ("read_termination", "write_termination")


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """UART line settings (ignored by ptys and by ``socket://``; see protocols.md §4)."""

    baud: int = 9600
    parity: str = "N"
    bytesize: int = 8
    stopbits: float = 1.0
    xonxoff: bool = False
    rtscts: bool = False


@dataclass(frozen=True, slots=True)
class SerialAddress:
    """A serial line opened through pyserial-asyncio-fast.

    ``port`` is what ``serial.serial_for_url`` takes: a device path or a ``socket://`` /
    ``rfc2217://`` URL.
    """

    url: str
    port: str
    settings: SerialSettings


@dataclass(frozen=True, slots=True)
class TcpAddress:
    url: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class VisaAddress:
    """A VISA resource; ``settings`` is only applied to ``ASRL`` resources."""

    url: str
    resource: str
    settings: SerialSettings | None


@dataclass(frozen=True, slots=True)
class ZmqAddress:
    url: str
    endpoint: str  #: ``tcp://host:port`` as ZeroMQ wants it


TransportAddress = SerialAddress | TcpAddress | VisaAddress | ZmqAddress


def _fail(url: str, problem: str) -> DeviceURLError:
    return DeviceURLError(f"{url!r}: {problem}; expected one of: {EXPECTED_FORMS}", key="url")


def _query(url: str, query: str) -> dict[str, str]:
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise _fail(url, f"malformed query {query!r} (key=value&...)") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise _fail(url, f"query key {key!r} given twice")
        params[key] = value
    return params


def _flag(url: str, key: str, value: str) -> bool:
    if value in ("0", "1"):
        return value == "1"
    raise _fail(url, f"{key}={value!r} must be 0 or 1")


def _serial_settings(url: str, params: dict[str, str]) -> SerialSettings:
    """Build line settings from ``baud``/``parity``/``bytesize``/``stopbits``/flow flags."""
    known = {"baud", "parity", "bytesize", "stopbits", "xonxoff", "rtscts"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise _fail(url, f"unknown serial option(s) {unknown}; allowed: {sorted(known)}")
    defaults = SerialSettings()
    try:
        baud = int(params.get("baud", defaults.baud))
    except ValueError:
        raise _fail(url, f"baud={params['baud']!r} is not an integer") from None
    if baud <= 0:
        raise _fail(url, f"baud={baud} must be > 0")
    parity = params.get("parity", defaults.parity).upper()
    if parity not in PARITIES:
        raise _fail(url, f"parity={params['parity']!r} must be one of {list(PARITIES)}")
    try:
        bytesize = int(params.get("bytesize", defaults.bytesize))
        stopbits = float(params.get("stopbits", defaults.stopbits))
    except ValueError:
        raise _fail(url, "bytesize must be an integer and stopbits a number") from None
    if bytesize not in BYTESIZES:
        raise _fail(url, f"bytesize={bytesize} must be one of {list(BYTESIZES)}")
    if stopbits not in STOPBITS:
        raise _fail(url, f"stopbits={stopbits:g} must be one of 1, 1.5, 2")
    return SerialSettings(
        baud=baud,
        parity=parity,
        bytesize=bytesize,
        stopbits=stopbits,
        xonxoff=_flag(url, "xonxoff", params.get("xonxoff", "0")),
        rtscts=_flag(url, "rtscts", params.get("rtscts", "0")),
    )


def _host_port(url: str, netloc: str) -> tuple[str, int]:
    split = urlsplit(f"//{netloc}")
    try:
        port = split.port
    except ValueError:
        raise _fail(url, f"port in {netloc!r} must be an integer in 1..65535") from None
    if not split.hostname or port is None or not 0 < port < 65536:
        raise _fail(url, f"expected host:port with a port in 1..65535, got {netloc!r}")
    return split.hostname, port


def _visa(url: str, rest: str) -> VisaAddress:
    resource, _, query = rest.partition("?")
    if "::" not in resource and not resource.upper().startswith("ASRL"):
        raise _fail(url, f"{resource!r} is not a VISA resource name")
    params = _query(url, query)
    for key in VISA_TERMINATION_KEYS:
        params.pop(key, None)
    if resource.upper().startswith("ASRL"):
        flow = params.pop("flow", "none")
        if flow not in VISA_FLOW:
            raise _fail(url, f"flow={flow!r} must be one of {list(VISA_FLOW)}")
        settings = _serial_settings(url, params)
        if flow != "none":
            settings = SerialSettings(
                settings.baud,
                settings.parity,
                settings.bytesize,
                settings.stopbits,
                xonxoff=flow == "xonxoff",
                rtscts=flow == "rtscts",
            )
        return VisaAddress(url, resource, settings)
    if params:
        raise _fail(url, f"options {sorted(params)} only apply to ASRL (serial) resources")
    return VisaAddress(url, resource, None)


def parse_transport_url(url: str) -> TransportAddress:
    """Parse ``url`` into a typed address, or raise DeviceURLError naming what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise _fail(str(url), "empty URL")
    if url.startswith("/"):
        path, _, query = url.partition("?")
        return SerialAddress(url, path, _serial_settings(url, _query(url, query)))
    if "://" not in url:
        raise _fail(url, "no scheme")
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "visa":
        return _visa(url, rest)
    address, _, query = rest.partition("?")
    params = _query(url, query)
    if scheme == "serial":
        if not address.startswith("/"):
            raise _fail(url, "a serial address is an absolute device path (serial:///dev/ttyUSB0)")
        return SerialAddress(url, address, _serial_settings(url, params))
    if scheme in ("socket", "rfc2217"):
        host, port = _host_port(url, address)
        settings = _serial_settings(url, params)
        return SerialAddress(url, f"{scheme}://{host}:{port}", settings)
    if scheme in ("tcp", "zmq+tcp"):
        host, port = _host_port(url, address)
        if params:
            raise _fail(url, f"{scheme}:// takes no options, got {sorted(params)}")
        if scheme == "tcp":
            return TcpAddress(url, host, port)
        return ZmqAddress(url, f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}")
    raise _fail(url, f"unknown transport scheme {scheme!r}")
