"""Declared config options (drivers/config_schema.py): one declaration, read and documented."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import pytest

from drivers.config import Table
from drivers.config_schema import read_section, reference_rows, reference_table, setting
from drivers.errors import ConfigError


class Policy(enum.StrEnum):
    SAFE = "safe"
    DEGRADE = "degrade"


@dataclass(frozen=True)
class Section:
    name: str  # not declared: the caller's
    radius_deg: float = setting(30.0, min=0.0, max=90.0, unit="deg", doc="a radius")
    count: int = setting(3, min=1, max=100, doc="a count")
    enabled: bool = setting(True, doc="a switch")
    policy: Policy = setting(Policy.SAFE, doc="a policy")
    lead_s: float | None = setting(None, min=0.0, max=5.0, unit="s", doc="optional")


def table(**data: object) -> Table:
    return Table(data, source="test.toml", prefix="sec.")


def test_defaults_come_from_the_declaration() -> None:
    got = read_section(table(), Section, name="x")
    assert got == Section("x")
    assert got.policy is Policy.SAFE
    assert got.lead_s is None


def test_values_are_read_by_their_declared_type() -> None:
    t = table(radius_deg=12, count=7, enabled=False, policy="degrade", lead_s=0.5)
    got = read_section(t, Section, name="x")
    assert (got.radius_deg, got.count, got.enabled, got.policy, got.lead_s) == (
        12.0,
        7,
        False,
        Policy.DEGRADE,
        0.5,
    )
    t.finish()  # every key was read


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("radius_deg", math.nan, "finite number in [0, 90]"),
        ("radius_deg", 91.0, "number in [0, 90]"),
        ("radius_deg", "30", "number in [0, 90]"),
        ("count", 0, "integer in [1, 100]"),
        ("count", 2.5, "integer"),
        ("enabled", "yes", "true or false"),
        ("policy", "Safe", "one of ['safe', 'degrade']"),
        ("lead_s", math.inf, "finite number"),
    ],
)
def test_bad_values_name_the_key_and_what_is_expected(
    key: str, value: object, expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        read_section(table(**{key: value}), Section, name="x")
    assert f"sec.{key}" in str(err.value)
    assert expected in str(err.value)


def test_the_reference_lists_every_declared_option_once() -> None:
    rows = reference_rows("sec", Section)
    assert [r.key for r in rows] == [
        "sec.radius_deg",
        "sec.count",
        "sec.enabled",
        "sec.policy",
        "sec.lead_s",
    ]
    by_key = {r.key: r for r in rows}
    assert by_key["sec.radius_deg"].range == "[0, 90]"
    assert by_key["sec.radius_deg"].unit == "deg"
    assert by_key["sec.count"].range == "[1, 100]"
    assert by_key["sec.policy"].default == '"safe"'
    assert by_key["sec.lead_s"].default == "—"
    text = reference_table([("sec", Section)])
    assert text.count("\n") == 2 + len(rows)
    assert "| `sec.enabled` | bool | true |" in text
