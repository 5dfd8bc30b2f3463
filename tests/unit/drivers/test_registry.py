"""Device URLs: every documented form parses; unknown or malformed ones say what is expected."""

from __future__ import annotations

import pytest

from drivers.errors import ConfigError, DeviceURLError
from drivers.registry import DRIVERS, parse_device_url


@pytest.mark.parametrize(
    ("url", "driver", "transport", "address", "transport_url", "params"),
    [
        (
            "rotctld://127.0.0.1:4533",
            "rotctld",
            "tcp",
            "127.0.0.1:4533",
            "tcp://127.0.0.1:4533",
            {},
        ),
        (
            "lx200+serial:///dev/ttyUSB0?baud=9600",
            "lx200",
            "serial",
            "/dev/ttyUSB0",
            "serial:///dev/ttyUSB0",
            {"baud": "9600"},
        ),
        (
            "lx200+socket://127.0.0.1:9999",
            "lx200",
            "socket",
            "127.0.0.1:9999",
            "socket://127.0.0.1:9999",
            {},
        ),
        (
            "elliptec+serial:///dev/ttyUSB1?address=0",
            "elliptec",
            "serial",
            "/dev/ttyUSB1",
            "serial:///dev/ttyUSB1",
            {"address": "0"},
        ),
        (
            "smc100+visa://ASRL/dev/ttyUSB2::INSTR",
            "smc100",
            "visa",
            "ASRL/dev/ttyUSB2::INSTR",
            "visa://ASRL/dev/ttyUSB2::INSTR",
            {},
        ),
        (
            "idq+zmq://127.0.0.1:5555",
            "idq",
            "zmq",
            "127.0.0.1:5555",
            "zmq+tcp://127.0.0.1:5555",
            {},
        ),
    ],
)
def test_documented_urls_parse(
    url: str, driver: str, transport: str, address: str, transport_url: str, params: dict[str, str]
) -> None:
    parsed = parse_device_url(url)
    assert (parsed.driver, parsed.transport, parsed.address) == (driver, transport, address)
    assert parsed.transport_url == transport_url
    assert parsed.params == params
    assert parsed.kind == DRIVERS[driver][2]


def test_host_port_split() -> None:
    assert parse_device_url("rotctld://localhost:4533").host_port() == ("localhost", 4533)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("telescope://1.2.3.4:1", "unknown device driver 'telescope'; known drivers"),
        ("lx200+carrier-pigeon:///dev/x", "unknown transport 'carrier-pigeon'"),
        ("/dev/ttyUSB0", "not a device URL"),
        ("rotctld://127.0.0.1", "expected host:port"),
        ("rotctld://127.0.0.1:99999", "expected host:port"),
        ("rotctld://127.0.0.1:http", "expected host:port"),
        ("lx200+serial://dev/ttyUSB0", "absolute device path"),
        ("smc100+visa://", "missing address"),
        ("elliptec+serial:///dev/ttyUSB1?address", "malformed query"),
    ],
)
def test_bad_urls_raise_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(DeviceURLError, match=message) as info:
        parse_device_url(url)
    assert isinstance(info.value, ConfigError)
    assert info.value.key == "url"
