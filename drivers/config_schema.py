"""Config sections declared once: a dataclass field carries its default, range, unit and doc.

Before, every option was written three times (the dataclass default, the parser's default and
range, the operations doc) and they drifted. Now a section is a frozen dataclass whose simple
fields are declared with :func:`setting`::

    @dataclass(frozen=True)
    class SafetyConfig:
        sun_radius_deg: float = setting(30.0, min=0.0, max=90.0, unit="deg",
                                        doc="exclusion radius around the Sun")

:func:`read_section` reads those fields from a :class:`~drivers.config.Table` by their
annotated type (``float``, ``int``, ``bool``, ``str``, a :class:`enum.StrEnum`, or one of
them ``| None`` with a ``None`` default: optional), with the config reader's errors (file, key,
what is expected); NaN and infinities are refused like every number. Fields declared
without :func:`setting` are the caller's (composite values such as paths resolved against
the config file, arrays, cross-field rules) and are passed in as keyword arguments.
:func:`reference_rows` lists the declared options for a generated docs table.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from drivers.config import Table

T = TypeVar("T")
_KEY = "qgs.setting"


@dataclass(frozen=True)
class Setting:
    """What :func:`setting` attaches to a field."""

    min: float | None = None
    max: float | None = None
    unit: str = ""
    doc: str = ""


def setting(
    default: Any,
    *,
    min: float | None = None,
    max: float | None = None,
    unit: str = "",
    doc: str = "",
) -> Any:
    """A dataclass field read by :func:`read_section` (module doc)."""
    return dataclasses.field(
        default=default, metadata={_KEY: Setting(min=min, max=max, unit=unit, doc=doc)}
    )


def _declared(cls: type) -> list[tuple[dataclasses.Field[Any], Setting, Any]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_KEY)
        if isinstance(meta, Setting):
            out.append((f, meta, hints[f.name]))
    return out


def _base(annotation: Any) -> tuple[Any, bool]:
    """(the value type, optional?) of ``X`` or ``X | None``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported setting type {annotation!r}")
        return args[0], True
    return annotation, False


def _read(t: Table, name: str, kind: Any, default: Any, s: Setting) -> Any:
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        values = [str(m.value) for m in kind]
        return kind(t.choice(name, values, None if default is None else str(default.value)))
    if kind is bool:
        return t.boolean(name, default)
    if kind is int:
        lo = None if s.min is None else int(s.min)
        hi = None if s.max is None else int(s.max)
        return t.integer(name, default, min=lo, max=hi)
    if kind is float:
        return t.number(name, default, min=s.min, max=s.max)
    if kind is str:
        return t.string(name, default)
    raise TypeError(f"unsupported setting type {kind!r} for {name}")


def read_section(t: Table, cls: type[T], **given: Any) -> T:
    """``cls`` with its declared fields read from ``t`` and the rest from ``given``.

    Does not call :meth:`Table.finish`: the caller may read more keys first.
    """
    values = dict(given)
    for f, s, annotation in _declared(cls):
        if f.name in values:
            continue
        kind, optional = _base(annotation)
        if optional and f.name not in t:
            values[f.name] = f.default
            continue
        default = None if f.default is dataclasses.MISSING else f.default
        values[f.name] = _read(t, f.name, kind, default, s)
    return cls(**values)


@dataclass(frozen=True)
class Row:
    """One declared option, for a reference table."""

    key: str
    type: str
    default: str
    range: str
    unit: str
    doc: str


def _type_name(kind: Any) -> str:
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return " \\| ".join(f'"{m.value}"' for m in kind)
    return {bool: "bool", int: "integer", float: "number", str: "string"}.get(kind, str(kind))


def _show(value: Any) -> str:
    if value is None or value is dataclasses.MISSING:
        return "—" if value is None else "required"
    if isinstance(value, enum.Enum):
        return f'"{value.value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bound(v: float, kind: Any) -> str:
    return str(int(v)) if kind is int else f"{v:g}"


def reference_rows(section: str, cls: type) -> list[Row]:
    """The declared options of ``cls`` under ``[section]``."""
    rows = []
    for f, s, annotation in _declared(cls):
        kind, _ = _base(annotation)
        lo = "" if s.min is None else _bound(s.min, kind)
        hi = "" if s.max is None else _bound(s.max, kind)
        span = f"[{lo}, {hi}]" if lo and hi else (f"≥ {lo}" if lo else (f"≤ {hi}" if hi else ""))
        rows.append(
            Row(f"{section}.{f.name}", _type_name(kind), _show(f.default), span, s.unit, s.doc)
        )
    return rows


def reference_table(sections: list[tuple[str, type]]) -> str:
    """A markdown table of every declared option of ``sections`` (in that order)."""
    lines = ["| key | type | default | range | unit | meaning |", "|---|---|---|---|---|---|"]
    for section, cls in sections:
        for r in reference_rows(section, cls):
            lines.append(f"| `{r.key}` | {r.type} | {r.default} | {r.range} | {r.unit} | {r.doc} |")
    return "\n".join(lines) + "\n"
