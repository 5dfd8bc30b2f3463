"""Command schemas: which arguments a command takes, their types and ranges.

A command is checked against its :class:`CommandSpec` before its handler runs; a bad
argument yields ``FAILED`` with a reason naming the argument and what is allowed, and
changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from station.bus.envelope import finite_number, short

ArgType = Literal["number", "integer", "string", "boolean"]


class CommandRejected(Exception):
    """The command is invalid (arguments, state); its message is the FAILED reason."""


@dataclass(frozen=True)
class Arg:
    """One argument: JSON type, whether required, numeric range or allowed strings."""

    name: str
    type: ArgType
    required: bool = True
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    doc: str = ""

    def check(self, value: Any) -> Any:
        expected = {
            "number": "a number",
            "integer": "an integer",
            "string": "a string",
            "boolean": "true or false",
        }[self.type]
        ok = {
            "number": finite_number(value) is not None,
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
        }[self.type]
        if not ok:
            raise CommandRejected(
                f"argument {self.name!r} must be {expected}, got {short(repr(value))}"
            )
        if self.min is not None and value < self.min:
            raise CommandRejected(
                f"argument {self.name!r} must be >= {self.min:g}, got {short(repr(value))}"
            )
        if self.max is not None and value > self.max:
            raise CommandRejected(
                f"argument {self.name!r} must be <= {self.max:g}, got {short(repr(value))}"
            )
        if self.choices is not None and value not in self.choices:
            raise CommandRejected(
                f"argument {self.name!r} must be one of {list(self.choices)}, "
                f"got {short(repr(value))}"
            )
        return float(value) if self.type == "number" else value


@dataclass(frozen=True)
class CommandSpec:
    """A command's name, arguments, the summary states it is valid in, and its doc line."""

    name: str
    args: tuple[Arg, ...] = ()
    states: frozenset[str] = field(default_factory=frozenset)  #: empty = any state
    doc: str = ""
    #: commands of one exclusive group (e.g. "motion") never run concurrently: a second one
    #: is FAILED while the first runs, unless it preempts the group
    exclusive: str | None = None
    #: groups whose running command this one cancels (ABORTED "superseded by …") before it runs
    preempts: frozenset[str] = field(default_factory=frozenset)

    def validate(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Checked and normalized arguments; raises CommandRejected naming the fault."""
        known = {a.name for a in self.args}
        unknown = sorted(set(args) - known)
        if unknown:
            raise CommandRejected(
                f"unknown argument(s) {short(str(unknown))} for {self.name!r}; "
                f"allowed: {sorted(known)}"
            )
        out: dict[str, Any] = {}
        for arg in self.args:
            if arg.name in args:
                out[arg.name] = arg.check(args[arg.name])
            elif arg.required:
                raise CommandRejected(f"argument {arg.name!r} is required for {self.name!r}")
        return out

    def check_state(self, state: str) -> None:
        if self.states and state not in self.states:
            raise CommandRejected(
                f"{self.name!r} is not valid in state {state}; valid in {sorted(self.states)}"
            )
