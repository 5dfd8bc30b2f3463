"""A small SCPI command tree: abbreviations, numeric suffixes, ``;`` chaining, error strings.

Used by the IDQ time-controller emulator (protocols.md §3a). Rules implemented:

- Headers are ``:``-separated nodes, case-insensitive; each node matches its short form (the
  upper-case letters of its spec, e.g. ``INPU`` for ``INPUt#``) or its long form (``INPUT``),
  followed by a numeric suffix where the spec has ``#`` (default 1).
- ``;`` separates commands in one message. A command after ``;`` is relative to the parent of
  the previous command's last node (``INPU1:ENAB ON;THRE -0.4V`` sets INPU1:THRE); a leading
  ``:`` resets to the root; ``*`` common commands leave the path alone. A relative header that
  does not resolve is retried from the root (lenient).
- Every query contributes one line to the reply; set commands contribute nothing; the reply is
  the lines joined with ``\\n`` (empty string when there are none, as REQ/REP needs a frame).
- A failing command contributes its error text (starting ``SCPI_ERR_``) as its reply line and
  queues it for ``SYST:ERR?``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_ERRORS = 32  #: error queue depth (oldest dropped beyond it)
_TOKEN = re.compile(r"^([A-Za-z*]+\??)(\d*)$")


class ScpiError(Exception):
    """A command failed; ``code`` is the ``SCPI_ERR_...`` identifier."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")


#: handler(suffixes, argument, is_query) -> reply line for queries (None for set commands)
Action = Callable[[list[int], str, bool], str | None]


@dataclass(frozen=True)
class _Node:
    short: str
    long: str
    numbered: bool

    @classmethod
    def parse(cls, spec: str) -> _Node:
        numbered = spec.endswith("#")
        name = spec.rstrip("#")
        short = "".join(ch for ch in name if ch.isupper() or ch == "*")
        return cls(short or name.upper(), name.upper(), numbered)

    def match(self, token: str) -> int | None:
        """The numeric suffix if ``token`` matches this node, else None."""
        m = _TOKEN.match(token)
        if m is None:
            return None
        name, digits = m.group(1).upper(), m.group(2)
        if name not in (self.short, self.long):
            return None
        if digits and not self.numbered:
            return None
        return int(digits) if digits else 1


class ScpiTree:
    """Registered commands and the message interpreter."""

    def __init__(self) -> None:
        self._commands: list[tuple[tuple[_Node, ...], Action]] = []
        self.errors: deque[str] = deque(maxlen=MAX_ERRORS)

    def add(self, header: str, action: Action) -> None:
        """Register ``header`` (e.g. ``INPUt#:THREshold``); queries and sets share it."""
        nodes = tuple(_Node.parse(part) for part in header.split(":"))
        self._commands.append((nodes, action))

    def _resolve(self, tokens: list[str]) -> tuple[Action, list[int]] | None:
        for nodes, action in self._commands:
            if len(nodes) != len(tokens):
                continue
            suffixes: list[int] = []
            for node, token in zip(nodes, tokens, strict=True):
                n = node.match(token)
                if n is None:
                    break
                if node.numbered:
                    suffixes.append(n)
            else:
                return action, suffixes
        return None

    def execute(self, message: str) -> str:
        """Run every command of ``message``; return the reply text."""
        lines: list[str] = []
        path: list[str] = []
        for raw in message.split(";"):
            text = raw.strip()
            if not text:
                continue
            header, _, arg = text.partition(" ")
            arg = arg.strip()
            query = header.endswith("?")
            header = header.rstrip("?")
            rooted = header.startswith(":")
            tokens = [t for t in header.lstrip(":").split(":")]
            try:
                if not all(tokens):
                    raise ScpiError("SCPI_ERR_SYNTAX_ERROR", f"malformed header {text!r}")
                found = None
                if not rooted and not tokens[0].startswith("*") and path:
                    found = self._resolve(path + tokens)
                    if found is not None:
                        tokens = path + tokens
                if found is None:
                    found = self._resolve(tokens)
                if found is None:
                    raise ScpiError("SCPI_ERR_UNDEFINED_HEADER", f"unknown command {text!r}")
                action, suffixes = found
                reply = action(suffixes, arg, query)
                if query:
                    lines.append("" if reply is None else reply)
            except ScpiError as exc:
                self.errors.append(str(exc))
                lines.append(str(exc))
            if not tokens[0].startswith("*"):
                path = tokens[:-1]
        return "\n".join(lines)

    def pop_error(self) -> str:
        """Oldest queued error, or ``0,"No error"``."""
        return self.errors.popleft() if self.errors else '0,"No error"'


# ---------------------------------------------------------------------- argument parsing

_UNITS = {
    "": 1.0,
    "V": 1.0,
    "MV": 1e-3,
    "PS": 1.0,
    "TB": 1.0,
    "NS": 1e3,
    "US": 1e6,
    "MS": 1e9,
    "S": 1e12,
    "KTB": 1e3,
    "MTB": 1e6,
    "GTB": 1e9,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)$")


def quantity(arg: str, *, allowed_units: tuple[str, ...]) -> float:
    """Parse ``-0.4V`` / ``400mV`` / ``3000 GTB`` into the base unit (V or ps)."""
    if not arg:
        raise ScpiError("SCPI_ERR_MISSING_PARAMETER", "a value is required")
    m = _QUANTITY.match(arg.strip())
    unit = m.group(2).upper() if m else ""
    if m is None or unit not in allowed_units:
        raise ScpiError(
            "SCPI_ERR_ILLEGAL_PARAMETER_VALUE",
            f"{arg!r} is not a number with an optional unit in {list(allowed_units)}",
        )
    return float(m.group(1)) * _UNITS[unit]


def boolean(arg: str) -> bool:
    """ON/OFF/1/0."""
    value = arg.strip().upper()
    if value in ("ON", "1"):
        return True
    if value in ("OFF", "0"):
        return False
    if not value:
        raise ScpiError("SCPI_ERR_MISSING_PARAMETER", "expected ON or OFF")
    raise ScpiError("SCPI_ERR_ILLEGAL_PARAMETER_VALUE", f"{arg!r}: expected ON or OFF")


def keyword(arg: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (given in SCPI spec case, e.g. ``RISing``), short or long form."""
    value = arg.strip().upper()
    for spec in allowed:
        node = _Node.parse(spec)
        if value in (node.short, node.long):
            return node.long
    if not value:
        raise ScpiError("SCPI_ERR_MISSING_PARAMETER", f"expected one of {list(allowed)}")
    raise ScpiError("SCPI_ERR_ILLEGAL_PARAMETER_VALUE", f"{arg!r}: expected one of {list(allowed)}")
