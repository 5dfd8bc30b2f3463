"""Typed access to TOML configuration with errors that name the file, key and allowed values.

Station, rig and campaign configs all read through :class:`Table`, so a typo in any of
them produces the same kind of message::

    configs/stations/delingha.toml:site.latitude_deg: expected a number in [-90, 90], got 123.0

Unknown keys are errors too (:meth:`Table.finish`), because a misspelt optional key would
otherwise be silently replaced by its default.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from drivers.errors import ConfigError

E = TypeVar("E")


def load_toml(path: str | Path) -> Table:
    """Read a TOML file into a :class:`Table`; unreadable or malformed files raise ConfigError."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(p)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", source=str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(p)) from None
    except ValueError as exc:  # an integer beyond Python's 4300-digit conversion limit
        raise ConfigError(f"not usable TOML: {exc}", source=str(p)) from None
    return Table(data, source=str(p))


class Table:
    """One TOML table, tracking which keys were read so leftovers can be reported."""

    def __init__(self, data: Mapping[str, Any], *, source: str, prefix: str = "") -> None:
        self._data = dict(data)
        self.source = source
        self.prefix = prefix
        self._used: set[str] = set()

    def key(self, name: str) -> str:
        """The dotted key of ``name`` inside this table (for messages)."""
        return f"{self.prefix}{name}"

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(message, source=self.source, key=self.key(name))

    def __contains__(self, name: str) -> bool:
        return name in self._data

    def keys(self) -> Iterable[str]:
        return self._data.keys()

    def raw_data(self) -> dict[str, Any]:
        """A deep copy of the table's data (to derive a modified config from)."""
        return copy.deepcopy(self._data)

    def raw(self, name: str, default: Any = ...) -> Any:
        self._used.add(name)
        if name not in self._data:
            if default is ...:
                raise self.error(name, "required key is missing")
            return default
        return self._data[name]

    def table(self, name: str, *, required: bool = True) -> Table:
        value = self.raw(name, ... if required else {})
        if not isinstance(value, Mapping):
            raise self.error(name, f"expected a table, got {type(value).__name__}")
        return Table(value, source=self.source, prefix=f"{self.key(name)}.")

    def tables(self, name: str) -> list[Table]:
        """An array of tables (``[[name]]``); missing means empty."""
        value = self.raw(name, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.error(name, "expected an array of tables ([[...]])")
        return [
            Table(v, source=self.source, prefix=f"{self.key(name)}[{i}].")
            for i, v in enumerate(value)
        ]

    def number(
        self,
        name: str,
        default: float | None = None,
        *,
        min: float | None = None,
        max: float | None = None,
    ) -> float:
        value = self.raw(name, ... if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"expected a number{_range(min, max)}, got {value!r}")
        v = float(value)
        # NaN compares false with everything, so a range check alone lets it through (a NaN
        # Sun radius once switched the Sun exclusion off); TOML spells nan and inf literally
        if not math.isfinite(v):
            raise self.error(name, f"expected a finite number{_range(min, max)}, got {v!r}")
        if (min is not None and v < min) or (max is not None and v > max):
            raise self.error(name, f"expected a number{_range(min, max)}, got {v!r}")
        return v

    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        min: int | None = None,
        max: int | None = None,
    ) -> int:
        value = self.raw(name, ... if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"expected an integer{_range(min, max)}, got {value!r}")
        if (min is not None and value < min) or (max is not None and value > max):
            raise self.error(name, f"expected an integer{_range(min, max)}, got {value!r}")
        return value

    def string(self, name: str, default: str | None = None) -> str:
        value = self.raw(name, ... if default is None else default)
        if not isinstance(value, str):
            raise self.error(name, f"expected a string, got {value!r}")
        return value

    def boolean(self, name: str, default: bool | None = None) -> bool:
        value = self.raw(name, ... if default is None else default)
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {value!r}")
        return value

    def choice(self, name: str, allowed: Iterable[str], default: str | None = None) -> str:
        options = list(allowed)
        value = self.string(name, default)
        if value not in options:
            raise self.error(name, f"expected one of {options}, got {value!r}")
        return value

    def numbers(self, name: str, default: list[float] | None = None) -> list[float]:
        value = self.raw(name, ... if default is None else default)
        if not isinstance(value, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        ):
            raise self.error(name, f"expected an array of finite numbers, got {value!r}")
        return [float(v) for v in value]

    def finish(self) -> None:
        """Raise if the table holds keys nobody read (typos, misplaced options)."""
        unknown = sorted(set(self._data) - self._used)
        if unknown:
            raise ConfigError(
                f"unknown key(s) {unknown}; allowed here: {sorted(self._used)}",
                source=self.source,
                key=self.prefix.rstrip(".") or None,
            )


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo:g}, {hi:g}]"
    if lo is not None:
        return f" >= {lo:g}"
    if hi is not None:
        return f" <= {hi:g}"
    return ""
