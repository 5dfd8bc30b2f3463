"""LX200 sexagesimal formatting and parsing (protocols.md §1a coordinate formats)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.mount.lx200_format import format_altitude, format_azimuth, parse_angle


@pytest.mark.parametrize(
    ("el", "text"),
    [
        (45.504167, "+45*30'15"),
        (-5.0, "-05*00'00"),
        (-0.0001, "+00*00'00"),  # rounds to zero: no "-00"
        (89.99999, "+90*00'00"),  # carry into degrees
        (0.0, "+00*00'00"),
    ],
)
def test_format_altitude(el: float, text: str) -> None:
    assert format_altitude(el) == text


def test_format_altitude_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        format_altitude(91.0)


@pytest.mark.parametrize(
    ("az", "text"),
    [
        (123.758333, "123*45'30"),
        (-90.0, "270*00'00"),
        (359.99999, "000*00'00"),  # rounds up to a full turn
        (450.0, "090*00'00"),
    ],
)
def test_format_azimuth(az: float, text: str) -> None:
    assert format_azimuth(az) == text


@pytest.mark.parametrize(
    ("text", "deg", "high"),
    [
        ("+45*30'15", 45.504167, True),
        ("-05*30", -5.5, False),
        ("123*45", 123.75, False),
        ("123\xdf45:30", 123.758333, True),
        ("+10*00'00.500", 10 + 0.5 / 3600, True),
    ],
)
def test_parse_angle(text: str, deg: float, high: bool) -> None:
    got = parse_angle(text)
    assert got.deg == pytest.approx(deg, abs=1e-6)
    assert got.high_precision is high


@pytest.mark.parametrize("text", ["", "45", "+45*3'00", "+45*30'75", "abc*de", "+45*61"])
def test_parse_angle_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"LX200 angle|>= 60"):
        parse_angle(text)


@given(st.floats(min_value=-90.0, max_value=90.0))
def test_altitude_round_trip_within_half_arcsecond(el: float) -> None:
    assert parse_angle(format_altitude(el)).deg == pytest.approx(el, abs=0.5 / 3600 + 1e-9)


@given(st.floats(min_value=0.0, max_value=359.999))
def test_azimuth_round_trip_within_half_arcsecond(az: float) -> None:
    assert parse_angle(format_azimuth(az)).deg == pytest.approx(az, abs=0.5 / 3600 + 1e-9)
