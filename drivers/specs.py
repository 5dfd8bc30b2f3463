"""Declarative driver specs: what each device URL scheme accepts, and one reader for it.

A :class:`DriverSpec` says which class serves a scheme, its default transport, the interface
kind it implements and its URL query parameters (:class:`ParamSpec`: type, default, range or
choices, unit, doc). :func:`read_params` is the one URL-parameter reader every driver's
``from_url`` uses; it rejects what :mod:`drivers.config` rejects in a TOML file (unknown
keys, non-finite numbers, values out of range) and its messages read the same way: the
URL, the key, the value given and what is expected::

    'elliptec+serial:///dev/ttyUSB1?speed=0': parameter speed='0' is out of range:
    speed must be a number of deg/s > 0

The README device table is rendered from the specs (:func:`render_device_table`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from drivers.errors import DeviceURLError

if TYPE_CHECKING:
    from drivers.registry import DeviceURL

ParamType = Literal["int", "float", "str", "bool", "enum"]
ParamValue = int | float | str | bool | None

#: driver kinds, as :class:`drivers.interfaces` names them
KINDS = ("mount", "rotator", "timetagger")


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One URL query parameter.

    Attributes:
        name: the query key.
        type: ``int``, ``float``, ``str``, ``bool`` (``0``/``1``) or ``enum`` (``choices``).
        default: the value when the key is absent; None: optional, read as None.
        min / max: inclusive bounds of a number (None: unbounded).
        min_open: ``min`` is exclusive (``> min``), e.g. a speed or a timeout.
        choices: the allowed texts of an ``enum``.
        unit: the unit of a number (messages and README).
        doc: one phrase for the README.
        base: the base an ``int`` is written in (16: one hex digit bus address).
        noun: what the value is, for messages (``"port"`` -> ``a port in 1..65535``).
        pattern: a ``str`` must match this regular expression (whole text).
        default_doc: how the README shows the default when it is computed (``the SCPI host``).
    """

    name: str
    type: ParamType
    default: ParamValue = None
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    choices: tuple[str, ...] = ()
    unit: str = ""
    doc: str = ""
    base: int = 10
    noun: str = ""
    pattern: str | None = None
    default_doc: str = ""

    def __post_init__(self) -> None:
        if self.type == "enum" and not self.choices:
            raise ValueError(f"enum parameter {self.name!r} needs choices")
        if self.default is not None:
            self.parse(self.default if isinstance(self.default, str) else _text(self.default))

    def expected(self) -> str:
        """What a valid value looks like, for messages: ``a number of deg/s > 0``."""
        if self.type == "enum":
            return f"one of {list(self.choices)}"
        if self.type == "bool":
            return "0 or 1"
        if self.type == "str":
            return f"{self.noun or 'a text'}"
        noun = self.noun or ("an integer" if self.type == "int" else "a number")
        if self.unit and not self.noun:
            noun = f"{noun} of {self.unit}"
        if self.base == 16 and self.min is not None and self.max is not None:
            return f"{noun} {int(self.min):X}..{int(self.max):X}"
        return f"{noun}{self._range()}"

    def _range(self) -> str:
        lo, hi = self.min, self.max
        if self.type == "int" and lo is not None and hi is not None and not self.min_open:
            return f" in {int(lo)}..{int(hi)}"
        if lo is not None and hi is not None:
            return f" in {'(' if self.min_open else '['}{lo:g}, {hi:g}]"
        if lo is not None:
            return f" {'>' if self.min_open else '>='} {lo:g}"
        if hi is not None:
            return f" <= {hi:g}"
        return ""

    def parse(self, text: str) -> int | float | str | bool:
        """The typed value of ``text``; raises ValueError(problem) when it is not valid."""
        if self.type == "str":
            if self.pattern is not None and not re.fullmatch(self.pattern, text):
                raise ValueError(f"is not {self.expected()}")
            return text
        if self.type == "enum":
            if text not in self.choices:
                raise ValueError("is not one of the choices")
            return text
        if self.type == "bool":
            if text not in ("0", "1"):
                raise ValueError("is not 0 or 1")
            return text == "1"
        value: int | float
        if self.type == "int":
            digits = "0123456789abcdefABCDEF"[: 10 if self.base == 10 else 22]
            if not text or any(c not in digits for c in text):
                raise ValueError(
                    "is not a hex digit" if self.base == 16 else "is not a whole number"
                )
            value = int(text, self.base)
        else:
            try:
                value = float(text)
            except ValueError:
                raise ValueError("is not a number") from None
            if not math.isfinite(value):
                raise ValueError("must be finite")
        low_ok = self.min is None or (value > self.min if self.min_open else value >= self.min)
        if not low_ok or (self.max is not None and value > self.max):
            raise ValueError("is out of range")
        return value

    def default_text(self) -> str:
        """The default as the README shows it."""
        if self.default_doc:
            return self.default_doc
        if self.default is None:
            return ""
        return _text(self.default) if self.base == 10 else f"{int(self.default):X}"


def _text(value: int | float | str | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """One device URL scheme.

    Attributes:
        scheme: the URL scheme's driver part (``rotctld``).
        target: the class, ``module:Class``, imported only when a URL is opened.
        default_transport: the transport when the URL names none (``tcp``, ``serial``...).
        kind: ``mount``, ``rotator`` or ``timetagger`` (:data:`KINDS`).
        params: the query parameters it accepts.
        doc: the device, one phrase (README).
        transports: every transport it accepts (default: only ``default_transport``).
        example: a URL for the README.
        notes: extra README text (parameters that depend on the transport, ...).
    """

    scheme: str
    target: str
    default_transport: str
    kind: str
    params: tuple[ParamSpec, ...]
    doc: str
    transports: tuple[str, ...] = ()
    example: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.scheme}: kind {self.kind!r} is not one of {KINDS}")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.scheme}: a parameter is declared twice: {names}")

    @property
    def all_transports(self) -> tuple[str, ...]:
        return self.transports or (self.default_transport,)

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"{self.scheme} has no parameter {name!r}")


class ParamValues(dict[str, ParamValue]):
    """What :func:`read_params` returns: every declared parameter, typed, with typed getters."""

    def number(self, name: str) -> float:
        value = self[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"parameter {name} is {value!r}, not a number")
        return float(value)

    def optional_number(self, name: str) -> float | None:
        return None if self[name] is None else self.number(name)

    def integer(self, name: str) -> int:
        value = self[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"parameter {name} is {value!r}, not an integer")
        return value

    def optional_integer(self, name: str) -> int | None:
        return None if self[name] is None else self.integer(name)

    def text(self, name: str) -> str:
        value = self[name]
        if not isinstance(value, str):
            raise TypeError(f"parameter {name} is {value!r}, not a text")
        return value

    def optional_text(self, name: str) -> str | None:
        return None if self[name] is None else self.text(name)


def read_params(url: DeviceURL, spec: DriverSpec) -> ParamValues:
    """Every parameter of ``spec`` read from ``url``'s query (defaults filled in).

    Raises:
        DeviceURLError: an unknown key, or a value that is not of the declared type,
            not finite, out of range or not one of the choices; the message names the URL,
            the key, the value and what is expected.
    """
    return read_query(url.raw, url.params, spec.params)


def read_query(raw: str, query: Mapping[str, str], params: Iterable[ParamSpec]) -> ParamValues:
    """:func:`read_params` on a bare query mapping (``raw`` is quoted in messages)."""
    declared = {p.name: p for p in params}
    unknown = sorted(set(query) - set(declared))
    if unknown:
        raise DeviceURLError(
            f"{raw!r}: unknown parameter(s) {unknown}; allowed: {sorted(declared)}", key="url"
        )
    values = ParamValues()
    for name, p in declared.items():
        text = query.get(name)
        if text is None:
            values[name] = p.default
            continue
        try:
            values[name] = p.parse(text)
        except ValueError as problem:
            raise DeviceURLError(
                f"{raw!r}: parameter {name}={text!r} {problem}: {name} must be {p.expected()}",
                key="url",
            ) from None
    return values


# -- the README table ---------------------------------------------------------------------


def _param_cell(p: ParamSpec) -> str:
    """```name` = default unit [range]: doc`` for the README."""
    text = f"`{p.name}`"
    default = p.default_text()
    if default:
        text += f" = {default}"
        if p.unit and not p.default_doc:
            text += f" {p.unit}"
    elif p.unit:
        text += f" ({p.unit})"
    if p.type == "enum":
        allowed = "/".join(p.choices)
    elif p.type == "bool":
        allowed = "0/1"
    elif p.type == "str":
        allowed = ""
    elif p.base == 16 and p.min is not None and p.max is not None:
        allowed = f"{int(p.min):X}..{int(p.max):X}"
    else:
        allowed = p._range().strip().removeprefix("in ")
    if allowed:
        text += f" [{allowed}]"
    return f"{text}: {p.doc}" if p.doc else text


def render_device_table(specs: Iterable[DriverSpec], transports: Mapping[str, str]) -> str:
    """The markdown table of every driver: scheme, kind, transports, parameters."""
    del transports  # the address forms live in the example column
    lines = [
        "| scheme | kind | device (class) | transports | example | query parameters (default) |",
        "|---|---|---|---|---|---|",
    ]
    for spec in specs:
        params = "<br>".join(_param_cell(p) for p in spec.params) or "none"
        if spec.notes:
            params += f"<br>({spec.notes})"
        transports_cell = ", ".join(
            f"**{t}**" if t == spec.default_transport else t for t in spec.all_transports
        )
        module, _, cls = spec.target.partition(":")
        lines.append(
            f"| `{spec.scheme}` | {spec.kind} | {spec.doc} (`{module}.{cls}`) | "
            f"{transports_cell} | `{spec.example}` | {params} |"
        )
    return "\n".join(lines) + "\n"


def spec_table(specs: Iterable[DriverSpec]) -> dict[str, DriverSpec]:
    """scheme -> spec; raises ValueError on a duplicate scheme."""
    table: dict[str, DriverSpec] = {}
    for spec in specs:
        if spec.scheme in table:
            raise ValueError(f"driver scheme {spec.scheme!r} declared twice")
        table[spec.scheme] = spec
    return table


__all__ = [
    "KINDS",
    "DriverSpec",
    "ParamSpec",
    "ParamType",
    "ParamValue",
    "ParamValues",
    "read_params",
    "read_query",
    "render_device_table",
    "spec_table",
]
