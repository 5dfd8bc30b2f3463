"""Transport URL parsing: every accepted form, and errors that name the URL and the forms."""

from __future__ import annotations

import pytest

from drivers.errors import ConfigError, DeviceURLError
from drivers.registry import parse_device_url
from drivers.transport.url import (
    SerialAddress,
    SerialSettings,
    TcpAddress,
    VisaAddress,
    ZmqAddress,
    parse_transport_url,
)


def test_serial_url_with_all_settings() -> None:
    url = "serial:///dev/ttyUSB0?baud=57600&parity=e&bytesize=7&stopbits=2&xonxoff=1&rtscts=0"
    address = parse_transport_url(url)
    assert address == SerialAddress(
        url, "/dev/ttyUSB0", SerialSettings(57600, "E", 7, 2.0, xonxoff=True, rtscts=False)
    )


def test_bare_path_is_serial_with_defaults() -> None:
    address = parse_transport_url("/dev/pts/5")
    assert address == SerialAddress("/dev/pts/5", "/dev/pts/5", SerialSettings())
    assert SerialSettings() == SerialSettings(9600, "N", 8, 1.0, xonxoff=False, rtscts=False)


@pytest.mark.parametrize("scheme", ["socket", "rfc2217"])
def test_pyserial_url_handlers(scheme: str) -> None:
    address = parse_transport_url(f"{scheme}://127.0.0.1:7000?baud=115200")
    assert isinstance(address, SerialAddress)
    assert address.port == f"{scheme}://127.0.0.1:7000"
    assert address.settings.baud == 115200


def test_tcp_and_zmq() -> None:
    assert parse_transport_url("tcp://localhost:4533") == TcpAddress(
        "tcp://localhost:4533", "localhost", 4533
    )
    assert parse_transport_url("zmq+tcp://127.0.0.1:5555") == ZmqAddress(
        "zmq+tcp://127.0.0.1:5555", "tcp://127.0.0.1:5555"
    )
    assert parse_transport_url("zmq+tcp://[::1]:5555").endpoint == "tcp://[::1]:5555"  # type: ignore[union-attr]


def test_visa_serial_and_socket() -> None:
    url = "visa://ASRL/dev/pts/5::INSTR?baud=57600&read_termination=\r\n&flow=rtscts"
    address = parse_transport_url(url)
    assert isinstance(address, VisaAddress)
    assert address.resource == "ASRL/dev/pts/5::INSTR"
    assert address.settings == SerialSettings(57600, rtscts=True)
    socket_address = parse_transport_url("visa://TCPIP::127.0.0.1::5025::SOCKET")
    assert socket_address == VisaAddress(
        "visa://TCPIP::127.0.0.1::5025::SOCKET", "TCPIP::127.0.0.1::5025::SOCKET", None
    )


def test_registry_transport_urls_parse() -> None:
    """Every transport URL the device registry derives is one this module accepts."""
    for device_url in (
        "rotctld://127.0.0.1:4533",
        "lx200+serial:///dev/ttyUSB0?baud=9600",
        "lx200+socket://127.0.0.1:9999",
        "elliptec+serial:///dev/ttyUSB1?address=0",
        "smc100+visa://ASRL/dev/ttyUSB2::INSTR",
        "idq+zmq://127.0.0.1:5555",
    ):
        parse_transport_url(parse_device_url(device_url).transport_url)


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("", "empty URL"),
        ("ttyUSB0", "no scheme"),
        ("gpib://0::5::INSTR", "unknown transport scheme 'gpib'"),
        ("serial://dev/ttyUSB0", "absolute device path"),
        ("serial:///dev/ttyUSB0?baud=fast", "baud='fast' is not an integer"),
        ("serial:///dev/ttyUSB0?baud=0", "baud=0 must be > 0"),
        ("serial:///dev/ttyUSB0?parity=X", "parity='X' must be one of"),
        ("serial:///dev/ttyUSB0?bytesize=9", "bytesize=9 must be one of"),
        ("serial:///dev/ttyUSB0?stopbits=3", "stopbits=3 must be one of 1, 1.5, 2"),
        ("serial:///dev/ttyUSB0?xonxoff=yes", "xonxoff='yes' must be 0 or 1"),
        ("serial:///dev/ttyUSB0?speed=9600", r"unknown serial option\(s\) \['speed'\]"),
        ("serial:///dev/ttyUSB0?baud", "malformed query"),
        ("serial:///dev/ttyUSB0?baud=1&baud=2", "given twice"),
        ("tcp://127.0.0.1", "expected host:port"),
        ("tcp://127.0.0.1:99999", "1..65535"),
        ("tcp://127.0.0.1:port", "must be an integer"),
        ("tcp://:4533", "expected host:port"),
        ("tcp://127.0.0.1:4533?nodelay=1", "takes no options"),
        ("socket://127.0.0.1", "expected host:port"),
        ("zmq+tcp://127.0.0.1", "expected host:port"),
        ("visa://printer", "not a VISA resource name"),
        ("visa://TCPIP::1.2.3.4::5025::SOCKET?baud=9600", "only apply to ASRL"),
        ("visa://ASRL/dev/pts/1::INSTR?flow=magic", "flow='magic' must be one of"),
    ],
)
def test_malformed_urls_name_the_problem_and_the_forms(url: str, text: str) -> None:
    with pytest.raises(DeviceURLError, match=text) as info:
        parse_transport_url(url)
    message = str(info.value)
    assert repr(url) in message
    assert "expected one of" in message
    assert "zmq+tcp://host:port" in message
    assert isinstance(info.value, ConfigError)
    assert info.value.key == "url"
