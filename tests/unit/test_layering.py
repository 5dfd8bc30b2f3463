"""The import contract of DESIGN.md "Layering (binding)", checked on every module's imports.

- ``drivers`` imports neither ``station`` nor ``sim_hardware``;
- ``sim_hardware`` imports only the shared basics of ``drivers`` (data types, clock, errors,
  the config reader), never a protocol driver, transport or the registry: each emulator
  implements its wire protocol independently from the reference notes, so a driver test
  against an emulator checks two implementations of one spec;
- ``station`` never imports ``sim_hardware`` (they meet only at the wire).

Every ``import`` and ``from … import`` counts, at module level or inside a function (a lazy
import is still a dependency), except under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: what sim_hardware may use of drivers (DESIGN.md: "shared basics only (types, clock)")
SHARED_BASICS = {"drivers.clock", "drivers.datatypes", "drivers.errors", "drivers.config"}
FORBIDDEN = {
    "drivers": ("station", "sim_hardware"),
    "station": ("sim_hardware",),
    "sim_hardware": ("station",),
}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path`` outside TYPE_CHECKING."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from drivers import mount` imports drivers.mount
                yield node.lineno, f"{module}.{alias.name}"


def violations(layer: str, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / layer).rglob("*.py")):
        for line, module in imports(path, root):
            top = module.split(".")[0]
            where = f"{path.relative_to(root)}:{line} imports {module}"
            if top in FORBIDDEN[layer] or (
                layer == "sim_hardware"
                and top == "drivers"
                and module != "drivers"
                # `from drivers.clock import Clock` also yields drivers.clock.Clock
                and not any(module == b or module.startswith(b + ".") for b in SHARED_BASICS)
            ):
                found.append(where)
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_follow_design_md(layer: str) -> None:
    assert violations(layer) == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself: a lazy protocol-driver import and a relative import are found."""
    fake = tmp_path / "sim_hardware" / "world" / "_layering_probe.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "def f():\n    from drivers.mount.rotctld import RotctldMount\n"
        "from ...station import cli\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import station.config\n"
    )
    found = violations("sim_hardware", tmp_path)
    assert any("_layering_probe.py:2 imports drivers.mount.rotctld" in f for f in found)
    assert any("_layering_probe.py:3 imports station" in f for f in found)
    assert not any("station.config" in f for f in found)
