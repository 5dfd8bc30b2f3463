"""``--set KEY=VALUE``: change one input of a rig config without copying the file.

A rehearsal often differs from a shipped world in one or two numbers (the 2020 receivers'
collection without the QKD security filters for a Bell test, a brighter source, another
seed). ``KEY`` is a dotted path into the TOML; an array of tables (``[[stations]]``) is
indexed by its entries' ``name``::

    --set stations.delingha.optics_loss_db=11.6
    --set source.pair_rate_hz=1e7

``VALUE`` is a TOML value (``11.6``, ``"psi-"``, ``[1, 2]``, ``true``). The key must exist
already: an override never adds an input the world would not otherwise read, so a typo is
an error naming the path, not a silently ignored setting.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from typing import Any

from drivers.errors import ConfigError


def _value(text: str, item: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        raise ConfigError(
            f'--set {item!r}: the value is not a TOML value (quote strings: key="text")',
            key="set",
        ) from None


def _child(node: Any, part: str, path: str, item: str) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list):
        for entry in node:
            if isinstance(entry, dict) and entry.get("name") == part:
                return entry
        names = [e.get("name") for e in node if isinstance(e, dict)]
        raise ConfigError(f"--set {item!r}: no entry named {part!r} in {path} ({names})", key="set")
    keys = sorted(node) if isinstance(node, dict) else []
    raise ConfigError(f"--set {item!r}: {path or 'the config'} has no {part!r} ({keys})", key="set")


def apply_overrides(data: dict[str, Any], items: Iterable[str]) -> dict[str, Any]:
    """``data`` (a parsed rig TOML) with every ``KEY=VALUE`` of ``items`` applied in place."""
    for item in items:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. source.pair_rate_hz=1e7")
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[:i]), item)
        last = parts[-1]
        if not isinstance(node, dict) or last not in node:
            _child(node, last, ".".join(parts[:-1]), item)  # raises, naming what exists
        node[last] = _value(text.strip(), item)
    return data
