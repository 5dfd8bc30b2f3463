"""Orbit elements: TLE (2- and 3-line, CelesTrak layout) and CCSDS OMM (JSON, XML) loading.

Every element set is validated before SGP4 sees it, because ``Satrec.twoline2rv`` accepts
almost any string and then propagates garbage. A fault names the file, the line and the
column (1-based, as in the TLE format description of CelesTrak / Vallado et al. 2006,
AIAA 2006-6753 Appendix) or, for OMM, the field name.

The epoch age is checked against an explicit ``now`` (POSIX seconds, UTC): older than
``warn_days`` (3) logs a warning, older than ``max_age_days`` (default 14) raises
:class:`StaleElementsError` — the station never tracks from stale elements silently. ``now``
is a parameter (not the wall clock) so that replayed or simulated campaigns with an old TLE
can pass the time of the campaign.
"""

from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sgp4 import omm
from sgp4.api import WGS72, Satrec

from drivers.errors import ConfigError

log = logging.getLogger(__name__)

#: epoch age (days) past which a warning is logged
WARN_AGE_DAYS = 3.0
#: default epoch age (days) past which elements are refused
MAX_AGE_DAYS = 14.0

_TLE_SUFFIXES = (".tle", ".txt", ".3le", ".2le")
_JD_UNIX_EPOCH = 2440587.5


class ElementsError(ConfigError):
    """An element set is malformed; ``key`` names the line and column or the OMM field."""


class StaleElementsError(ElementsError):
    """The element set's epoch is older than the allowed age at the given time."""


@dataclass(frozen=True)
class OrbitElements:
    """One validated element set, ready for SGP4.

    ``epoch_s`` is POSIX seconds (UTC) of the element epoch; ``text`` is the original
    element text (TLE lines or OMM JSON) kept for provenance in pass bundles.
    """

    name: str
    norad_id: int
    epoch_s: float
    satrec: Satrec = field(repr=False, compare=False)
    source: str
    text: str = field(repr=False)

    @property
    def epoch(self) -> datetime:
        """The element epoch as an aware UTC datetime."""
        return datetime.fromtimestamp(self.epoch_s, tz=UTC)

    def age_days(self, now_s: float) -> float:
        """Age of the elements at ``now_s`` (POSIX seconds), in days (negative: future epoch)."""
        return (now_s - self.epoch_s) / 86400.0

    def check_age(
        self, now_s: float, *, max_age_days: float = MAX_AGE_DAYS, warn_days: float = WARN_AGE_DAYS
    ) -> float:
        """Return the age in days; warn past ``warn_days``, raise past ``max_age_days``.

        A negative age beyond the same limit (epoch far in the future of ``now``) is refused
        too: it means the wrong ``now`` or the wrong file.
        """
        age = self.age_days(now_s)
        when = datetime.fromtimestamp(now_s, tz=UTC).isoformat(timespec="seconds")
        if abs(age) > max_age_days:
            raise StaleElementsError(
                f"element epoch {self.epoch.isoformat(timespec='seconds')} is {age:.1f} days "
                f"from {when}, beyond the allowed {max_age_days:g} days; fetch fresh elements, "
                "or give the campaign time (--now) / a larger --max-age-days",
                source=self.source,
            )
        if abs(age) > warn_days:
            log.warning(
                "elements for %s (%d) are %.1f days old at %s (warn past %g days)",
                self.name,
                self.norad_id,
                age,
                when,
                warn_days,
            )
        return age


# --------------------------------------------------------------------------- TLE


def tle_checksum(line: str) -> int:
    """Modulo-10 checksum of the first 68 columns: digits count, '-' counts 1, rest 0."""
    return sum(int(c) if c.isdigit() else (1 if c == "-" else 0) for c in line[:68]) % 10


# (first column, last column (1-based, inclusive), field name, regex) per TLE line.
_INT = r" *\d+"
_FLOAT = r" *[+-]?\d*\.\d+"
_EXP = r" *[+-]?\d{5}[+-]\d"  # implied-decimal mantissa and exponent, e.g. " 12345-4"
_LINE1 = (
    (3, 7, "satellite number", r"[ \d]{4}\d|[A-Z]\d{4}"),
    (8, 8, "classification", r"[UCS ]"),
    (10, 17, "international designator", r"[\w ]{8}"),
    (19, 32, "epoch (YYDDD.DDDDDDDD)", r"\d{5}\.\d{8}| *\d{1,5}\.\d+"),
    (34, 43, "first derivative of mean motion", r" *[+-]?\.\d{8}|" + _FLOAT),
    (45, 52, "second derivative of mean motion", _EXP + r"| *[+-]?0{5}[+-]0"),
    (54, 61, "BSTAR drag term", _EXP + r"| *[+-]?0{5}[+-]0"),
    (63, 63, "ephemeris type", r"[\d ]"),
    (65, 68, "element set number", r" *\d+"),
)
_LINE2 = (
    (3, 7, "satellite number", r"[ \d]{4}\d|[A-Z]\d{4}"),
    (9, 16, "inclination (deg)", _FLOAT),
    (18, 25, "right ascension of ascending node (deg)", _FLOAT),
    (27, 33, "eccentricity (implied leading decimal point)", r"\d{7}"),
    (35, 42, "argument of perigee (deg)", _FLOAT),
    (44, 51, "mean anomaly (deg)", _FLOAT),
    (53, 63, "mean motion (rev/day)", _FLOAT),
    (64, 68, "revolution number at epoch", r"[ \d]{5}"),
)
_RANGES = {
    "inclination (deg)": (0.0, 180.0),
    "right ascension of ascending node (deg)": (0.0, 360.0),
    "argument of perigee (deg)": (0.0, 360.0),
    "mean anomaly (deg)": (0.0, 360.0),
    "mean motion (rev/day)": (0.05, 20.0),
}


def _check_tle_line(line: str, number: int, lineno: int, source: str) -> None:
    def fail(col: int, message: str) -> ElementsError:
        return ElementsError(message, source=source, key=f"line {lineno} column {col}")

    if len(line) != 69:
        raise fail(
            min(len(line), 69) + 1 if len(line) < 69 else 70,
            f"TLE line {number} must be 69 characters long, got {len(line)}",
        )
    if line[0] != str(number) or line[1] != " ":
        raise fail(1, f"expected TLE line {number} to start with '{number} ', got {line[:2]!r}")
    if not line[68].isdigit():
        raise fail(69, f"checksum must be a digit, got {line[68]!r}")
    for first, last, name, pattern in _LINE1 if number == 1 else _LINE2:
        text = line[first - 1 : last]
        if not re.fullmatch(pattern, text):
            raise fail(first, f"malformed {name} field {text!r} (columns {first}-{last})")
        if name in _RANGES:
            lo, hi = _RANGES[name]
            value = float(text)
            if not lo <= value <= hi:
                raise fail(first, f"{name} {value:g} is outside [{lo:g}, {hi:g}]")
    computed = tle_checksum(line)
    if int(line[68]) != computed:
        raise fail(69, f"checksum digit is {line[68]}, computed {computed}")


def parse_tle(text: str, *, source: str = "<string>") -> list[OrbitElements]:
    """Parse every element set in ``text`` (2-line or 3-line sets, may be mixed)."""
    lines = [(i + 1, ln.rstrip("\r\n").rstrip()) for i, ln in enumerate(text.splitlines())]
    lines = [(n, ln) for n, ln in lines if ln.strip()]
    out: list[OrbitElements] = []
    i = 0
    while i < len(lines):
        name = ""
        lineno, line = lines[i]
        if not line.startswith("1 "):
            name = line[2:].strip() if line.startswith("0 ") else line.strip()
            i += 1
            if i >= len(lines):
                raise ElementsError(
                    "name line without the two element lines after it",
                    source=source,
                    key=f"line {lineno} column 1",
                )
        if i + 1 >= len(lines):
            n, _ln = lines[i]
            raise ElementsError(
                "TLE line 1 without a line 2 after it", source=source, key=f"line {n} column 1"
            )
        (n1, l1), (n2, l2) = lines[i], lines[i + 1]
        _check_tle_line(l1, 1, n1, source)
        _check_tle_line(l2, 2, n2, source)
        if l1[2:7] != l2[2:7]:
            raise ElementsError(
                f"satellite number differs between line 1 ({l1[2:7].strip()}) and "
                f"line 2 ({l2[2:7].strip()})",
                source=source,
                key=f"line {n2} column 3",
            )
        sat = Satrec.twoline2rv(l1, l2, WGS72)
        text_out = "\n".join(([name] if name else []) + [l1, l2])
        out.append(_finish(sat, name or f"NORAD {sat.satnum}", source, text_out))
        i += 2
    if not out:
        raise ElementsError("no element sets found", source=source)
    return out


# --------------------------------------------------------------------------- OMM

_OMM_NUMBERS = {
    "MEAN_MOTION": (0.05, 20.0),
    "ECCENTRICITY": (0.0, 0.999),
    "INCLINATION": (0.0, 180.0),
    "RA_OF_ASC_NODE": (0.0, 360.0),
    "ARG_OF_PERICENTER": (0.0, 360.0),
    "MEAN_ANOMALY": (0.0, 360.0),
    "BSTAR": (-1.0, 1.0),
    "MEAN_MOTION_DOT": (-1.0, 1.0),
    "MEAN_MOTION_DDOT": (-1.0, 1.0),
}
_OMM_INTEGERS = ("NORAD_CAT_ID", "EPHEMERIS_TYPE", "ELEMENT_SET_NO", "REV_AT_EPOCH")
_OMM_DEFAULTS = {"CLASSIFICATION_TYPE": "U", "EPHEMERIS_TYPE": "0", "ELEMENT_SET_NO": "999"}


def _check_omm(fields: Mapping[str, Any], where: str, source: str) -> dict[str, str]:
    def fail(key: str, message: str) -> ElementsError:
        return ElementsError(message, source=source, key=f"{where}.{key}")

    out = {k: str(v) for k, v in fields.items() if v is not None}
    for k, v in _OMM_DEFAULTS.items():
        out.setdefault(k, v)
    out.setdefault("OBJECT_ID", "")
    out.setdefault("REV_AT_EPOCH", "0")
    for key, (lo, hi) in _OMM_NUMBERS.items():
        if key not in out:
            raise fail(key, "required OMM field is missing")
        try:
            value = float(out[key])
        except ValueError:
            raise fail(key, f"expected a number in [{lo:g}, {hi:g}], got {out[key]!r}") from None
        if not lo <= value <= hi:
            raise fail(key, f"expected a number in [{lo:g}, {hi:g}], got {value:g}")
    for key in _OMM_INTEGERS:
        if key not in out:
            raise fail(key, "required OMM field is missing")
        if not re.fullmatch(r"\d+", out[key].strip()):
            raise fail(key, f"expected a non-negative integer, got {out[key]!r}")
    if "EPOCH" not in out:
        raise fail("EPOCH", "required OMM field is missing")
    epoch = out["EPOCH"].strip().removesuffix("Z")
    if "." not in epoch:
        epoch += ".0"
    try:
        datetime.strptime(epoch, "%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        raise fail(
            "EPOCH", f"expected an ISO time like 2017-06-17T02:15:30.123456, got {out['EPOCH']!r}"
        ) from None
    out["EPOCH"] = epoch
    return out


def _omm_to_elements(fields: dict[str, str], source: str, text: str) -> OrbitElements:
    sat = Satrec()
    try:
        omm.initialize(sat, fields)
    except ValueError as exc:  # e.g. a catalog number sgp4 cannot hold (> 339999, Alpha-5)
        raise ElementsError(f"OMM rejected by SGP4: {exc}", source=source) from None
    return _finish(sat, fields.get("OBJECT_NAME") or f"NORAD {sat.satnum}", source, text)


def parse_omm_json(text: str, *, source: str = "<string>") -> list[OrbitElements]:
    """Parse CelesTrak OMM JSON (a list of objects, or a single object)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ElementsError(
            f"not valid JSON: {exc.msg}", source=source, key=f"line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # an integer beyond Python's 4300-digit conversion limit
        raise ElementsError(f"not usable JSON: {exc}", source=source) from None
    records = data if isinstance(data, list) else [data]
    out = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ElementsError("expected an OMM object", source=source, key=f"[{i}]")
        fields = _check_omm(rec, f"[{i}]", source)
        out.append(_omm_to_elements(fields, source, json.dumps(rec, sort_keys=True)))
    if not out:
        raise ElementsError("no element sets found", source=source)
    return out


def parse_omm_xml(text: str, *, source: str = "<string>") -> list[OrbitElements]:
    """Parse CCSDS OMM XML (``<ndm><omm>…<segment>`` as published by CelesTrak)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        line, col = exc.position
        raise ElementsError(
            f"not valid XML: {exc}", source=source, key=f"line {line} column {col + 1}"
        ) from None
    out = []
    for i, segment in enumerate(root.iter("segment")):
        fields: dict[str, str] = {}
        for part in ("metadata", "data/meanElements", "data/tleParameters"):
            node = segment.find(part)
            if node is None:
                raise ElementsError(
                    f"missing <{part.split('/')[-1]}>", source=source, key=f"segment[{i}]"
                )
            fields.update((child.tag, (child.text or "").strip()) for child in node)
        checked = _check_omm(fields, f"segment[{i}]", source)
        out.append(_omm_to_elements(checked, source, ET.tostring(segment, encoding="unicode")))
    if not out:
        raise ElementsError("no <segment> with elements found", source=source)
    return out


# --------------------------------------------------------------------------- files


def _finish(sat: Satrec, name: str, source: str, text: str) -> OrbitElements:
    epoch_s = (sat.jdsatepoch - _JD_UNIX_EPOCH) * 86400.0 + sat.jdsatepochF * 86400.0
    return OrbitElements(name, int(sat.satnum), epoch_s, sat, source, text)


def load_elements(path: str | Path) -> list[OrbitElements]:
    """Load every element set of a TLE (``.tle``/``.txt``), OMM JSON or OMM XML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ElementsError("file not found", source=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ElementsError(f"cannot read file: {exc}", source=str(p)) from None
    suffix = p.suffix.lower()
    if suffix == ".json":
        return parse_omm_json(text, source=str(p))
    if suffix == ".xml":
        return parse_omm_xml(text, source=str(p))
    if suffix in _TLE_SUFFIXES:
        return parse_tle(text, source=str(p))
    raise ElementsError(
        f"unknown element file type {suffix!r}; expected one of "
        f"{[*_TLE_SUFFIXES, '.json', '.xml']}",
        source=str(p),
    )


def load_catalog(directory: str | Path) -> list[OrbitElements]:
    """Load every element file in ``directory`` (non-element files such as README are skipped)."""
    d = Path(directory)
    if not d.is_dir():
        raise ElementsError("not a directory", source=str(d))
    out: list[OrbitElements] = []
    for p in sorted(d.iterdir()):
        if p.suffix.lower() in (*_TLE_SUFFIXES, ".json", ".xml"):
            out.extend(load_elements(p))
    return out


def select(
    elements: list[OrbitElements], *, norad_id: int | None = None, now_s: float | None = None
) -> OrbitElements:
    """Pick one element set: by NORAD id (if given), the one whose epoch is closest to ``now_s``."""
    pool = [e for e in elements if norad_id is None or e.norad_id == norad_id]
    if not pool:
        sources = sorted({e.source for e in elements})
        raise ElementsError(f"no element set for NORAD {norad_id} in {sources}")
    if now_s is None:
        return max(pool, key=lambda e: e.epoch_s)
    return min(pool, key=lambda e: abs(e.epoch_s - now_s))


def parse_time(text: str) -> float:
    """Parse an ISO-8601 time (naive means UTC) into POSIX seconds; ValueError if malformed."""
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def iso(t_s: float) -> str:
    """POSIX seconds as ISO-8601 UTC with a 'Z' suffix, to the millisecond."""
    t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=t_s)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
