"""LX200 sexagesimal angle strings (protocols.md §1a, Meade Rev L and OnStepX).

High precision (after ``:U#``): altitude ``sDD*MM'SS``, azimuth ``DDD*MM'SS`` (1 arcsec).
Low precision: ``sDD*MM`` / ``DDD*MM`` (1 arcmin). The degree separator is ``*`` (0x2A) on
the wire from INDI and OnStep, 0xDF on a Meade handbox; minutes and seconds are separated by
``'`` (Meade) or ``:`` (INDI, LXD650). Parsing is liberal, formatting strict (``*`` and ``'``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ARCSEC_PER_TURN = 360 * 3600

_ANGLE = re.compile(
    r"^\s*(?P<sign>[+-])?(?P<deg>\d{1,3})[*\xdf:](?P<min>\d{2})"
    r"(?:[:'](?P<sec>\d{2}(?:\.\d+)?))?\s*$"
)


@dataclass(frozen=True, slots=True)
class ParsedAngle:
    """An angle read from the wire and whether it carried seconds (high precision)."""

    deg: float
    high_precision: bool


def parse_angle(text: str) -> ParsedAngle:
    """Parse ``sDD*MM'SS`` / ``DDD*MM`` etc. into degrees; ValueError if malformed."""
    m = _ANGLE.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not an LX200 angle like +45*30'15 or 123*45")
    minutes = int(m["min"])
    seconds = float(m["sec"]) if m["sec"] is not None else 0.0
    if minutes >= 60 or seconds >= 60.0:
        raise ValueError(f"{text!r} has minutes or seconds >= 60")
    value = int(m["deg"]) + minutes / 60.0 + seconds / 3600.0
    return ParsedAngle(-value if m["sign"] == "-" else value, m["sec"] is not None)


def _dms(arcsec: int) -> tuple[int, int, int]:
    deg, rem = divmod(arcsec, 3600)
    minutes, seconds = divmod(rem, 60)
    return deg, minutes, seconds


def format_altitude(el_deg: float) -> str:
    """``sDD*MM'SS`` rounded to the nearest arcsecond (e.g. ``+45*30'15``)."""
    arcsec = round(abs(el_deg) * 3600.0)
    if arcsec > 90 * 3600:
        raise ValueError(f"altitude {el_deg} deg is outside [-90, 90]")
    sign = "-" if el_deg < 0 and arcsec > 0 else "+"
    d, m, s = _dms(arcsec)
    return f"{sign}{d:02d}*{m:02d}'{s:02d}"


def format_azimuth(az_deg: float) -> str:
    """``DDD*MM'SS`` of ``az_deg`` modulo 360, rounded to the nearest arcsecond."""
    arcsec = round((az_deg % 360.0) * 3600.0) % ARCSEC_PER_TURN
    d, m, s = _dms(arcsec)
    return f"{d:03d}*{m:02d}'{s:02d}"
