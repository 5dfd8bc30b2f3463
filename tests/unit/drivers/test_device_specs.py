"""Declarative driver specs: the one URL-parameter reader, typed open_device, README table."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from drivers.errors import ConfigError, DeviceURLError
from drivers.interfaces import Mount, Rotator, TimeTagger
from drivers.registry import (
    DRIVER_SPECS,
    DRIVERS,
    REGENERATE,
    SPECS,
    TABLE_BEGIN,
    TABLE_END,
    open_device,
    parse_device_url,
    read_params,
    readme_with_table,
)
from drivers.specs import DriverSpec, ParamSpec, read_query

README = Path(__file__).resolve().parents[3] / "README.md"

SPEC = DriverSpec(
    "demo",
    "tests.nowhere:Demo",
    "tcp",
    "rotator",
    (
        ParamSpec("speed", "float", 45.0, min=0.0, min_open=True, unit="deg/s"),
        ParamSpec("address", "int", 0, min=0, max=15, base=16, noun="one hex digit"),
        ParamSpec("port", "int", 6060, min=1, max=65535, noun="a port"),
        ParamSpec("flow", "enum", "none", choices=("none", "xonxoff")),
        ParamSpec("rtscts", "bool", False),
        ParamSpec("host", "str", pattern=r"[^/:@ ]+", noun="a host"),
        ParamSpec("park", "float", unit="deg"),
    ),
    "a demo device",
)


def read(query: dict[str, str]) -> dict[str, object]:
    return dict(read_query("demo://h:1", query, SPEC.params))


def test_defaults_are_filled_and_values_typed() -> None:
    assert read({}) == {
        "speed": 45.0,
        "address": 0,
        "port": 6060,
        "flow": "none",
        "rtscts": False,
        "host": None,
        "park": None,
    }
    values = read({"speed": "90", "address": "b", "flow": "xonxoff", "rtscts": "1", "park": "-3"})
    assert (values["speed"], values["address"], values["flow"]) == (90.0, 11, "xonxoff")
    assert (values["rtscts"], values["park"]) == (True, -3.0)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"sped": "1"}, ["unknown parameter(s) ['sped']", "allowed: ['address', "]),
        (
            {"speed": "fast"},
            ["speed='fast' is not a number", "speed must be a number of deg/s > 0"],
        ),
        ({"speed": "nan"}, ["speed='nan' must be finite"]),
        ({"speed": "inf"}, ["speed='inf' must be finite"]),
        ({"speed": "0"}, ["speed='0' is out of range", "> 0"]),
        ({"address": "16"}, ["address='16' is out of range", "one hex digit 0..F"]),
        ({"address": "x"}, ["address='x' is not a hex digit"]),
        ({"port": "70000"}, ["port='70000' is out of range", "port must be a port in 1..65535"]),
        ({"port": "-1"}, ["port='-1' is not a whole number"]),
        ({"flow": "rts"}, ["flow='rts' is not one of the choices", "['none', 'xonxoff']"]),
        ({"rtscts": "yes"}, ["rtscts='yes' is not 0 or 1"]),
        ({"host": "a/b"}, ["host='a/b' is not a host"]),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_expected(
    query: dict[str, str], words: list[str]
) -> None:
    with pytest.raises(DeviceURLError) as info:
        read(query)
    assert isinstance(info.value, ConfigError)
    assert info.value.key == "url"
    assert "demo://h:1" in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_a_spec_rejects_bad_declarations() -> None:
    with pytest.raises(ValueError, match="choices"):
        ParamSpec("flow", "enum")
    with pytest.raises(ValueError, match="out of range"):
        ParamSpec("speed", "float", 0.0, min=0.0, min_open=True)
    with pytest.raises(ValueError, match="kind"):
        DriverSpec("x", "m:C", "tcp", "laser", (), "")
    with pytest.raises(ValueError, match="twice"):
        DriverSpec("x", "m:C", "tcp", "mount", (SPEC.params[0], SPEC.params[0]), "")


def test_drivers_mapping_is_derived_from_the_specs() -> None:
    assert {s.scheme: (s.target, s.default_transport, s.kind) for s in SPECS} == DRIVERS
    assert set(DRIVER_SPECS) == {"rotctld", "lx200", "alpaca", "elliptec", "smc100", "idq"} | {
        "swabian"
    }


@pytest.mark.parametrize("spec", [s for s in SPECS if s.scheme != "alpaca"], ids=str)
def test_every_driver_class_exists_and_reads_its_defaults(spec: DriverSpec) -> None:
    module, _, name = spec.target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert callable(cls.from_url)


def test_spec_defaults_match_the_driver_constants() -> None:
    from drivers.mount import options
    from drivers.polarization import elliptec, smc100
    from drivers.timetagger import idq, idqstreams

    def default(scheme: str, name: str) -> object:
        return DRIVER_SPECS[scheme].param(name).default

    assert default("elliptec", "speed") == elliptec.DEFAULT_SPEED_DEG_S
    assert default("elliptec", "timeout_s") == elliptec.REPLY_TIMEOUT_S
    assert default("smc100", "timeout_s") == smc100.REPLY_TIMEOUT_S
    assert default("idq", "dlt") == idq.DEFAULT_DLT_PORT
    assert default("idq", "timeout_s") == idq.REQUEST_TIMEOUT_S
    assert default("idq", "idle_s") == idq.IDLE_TIMEOUT_S
    assert default("idq", "stall_s") == idqstreams.STALL_S
    assert default("idq", "hold") == idqstreams.MAX_PENDING
    for scheme in ("rotctld", "lx200"):
        opts = options.MountOptions()
        assert default(scheme, "follow_rate_hz") == opts.follow_rate_hz
        assert default(scheme, "tolerance_deg") == opts.tolerance_deg
        assert default(scheme, "timeout_s") == opts.io_timeout_s
        assert default(scheme, "speed_deg_s") == options.DEFAULT_SPEED_DEG_S
        assert default(scheme, "accel_deg_s2") == options.DEFAULT_ACCEL_DEG_S2


def test_read_params_uses_the_urls_spec() -> None:
    url = parse_device_url("elliptec+serial:///dev/ttyUSB1?address=B&speed=90")
    values = read_params(url)
    assert (values.integer("address"), values.number("speed")) == (11, 90.0)
    assert values.number("timeout_s") == 2.0
    assert url.spec is DRIVER_SPECS["elliptec"]


def test_open_device_checks_the_kind() -> None:
    clock = SystemClock()
    rotator = open_device("elliptec+serial:///dev/ttyUSB1?address=0", clock, Rotator)
    assert isinstance(rotator, Rotator)
    mount = open_device("rotctld://127.0.0.1:4533", clock, kind=Mount)
    assert isinstance(mount, Mount)
    with pytest.raises(DeviceURLError, match="'elliptec' is a rotator driver; expected a mount"):
        open_device("elliptec+serial:///dev/ttyUSB1", clock, kind=Mount)
    with pytest.raises(DeviceURLError, match="expected a timetagger"):
        open_device("rotctld://127.0.0.1:4533", clock, kind=TimeTagger)
    with pytest.raises(ValueError, match="kind must be"):
        open_device("rotctld://127.0.0.1:4533", clock, kind=int)


def test_readme_device_table_is_up_to_date() -> None:
    text = README.read_text(encoding="utf-8")
    assert TABLE_BEGIN in text
    assert TABLE_END in text
    assert readme_with_table(text) == text, (
        f"README.md's device table is out of date with drivers/registry.py SPECS; "
        f"run: .venv/bin/{REGENERATE}"
    )


def test_readme_table_lists_every_scheme_and_parameter() -> None:
    block = readme_with_table(f"x\n{TABLE_BEGIN}\nstale table\n{TABLE_END}\ny\n")
    assert "stale table" not in block
    assert block.startswith(f"x\n{TABLE_BEGIN}\n")
    assert block.endswith(f"{TABLE_END}\ny\n")
    for spec in SPECS:
        assert f"| `{spec.scheme}` | {spec.kind} |" in block
        for p in spec.params:
            assert f"`{p.name}`" in block
    assert "`speed` = 45 deg/s [> 0]" in block
    assert "`address` = 0 [0..F]" in block
    with pytest.raises(ValueError, match="devices:begin"):
        readme_with_table("no markers")
