"""docs/operations.md's table of station config options, generated from the declarations.

``python -m station.config_reference`` rewrites the block between :data:`BEGIN` and
:data:`END` in docs/operations.md from :func:`station.config.config_reference` (every option
declared with :func:`drivers.config_schema.setting`: default, range, unit, meaning), so the
doc cannot drift from what the parser accepts; a test fails when the file is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from station.config import config_reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"
REGENERATE = "python -m station.config_reference"


def with_reference(text: str) -> str:
    """``text`` with the marked block regenerated; ValueError when the markers are missing."""
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        raise ValueError(f"docs/operations.md lacks the {BEGIN} ... {END} block")
    note = f"<!-- generated from the config declarations; regenerate: {REGENERATE} -->\n"
    return f"{text[: begin + len(BEGIN)]}\n{note}{config_reference()}{text[end:]}"


def main() -> int:
    text = DOC.read_text(encoding="utf-8")
    updated = with_reference(text)
    if updated != text:
        DOC.write_text(updated, encoding="utf-8")
        print(f"rewrote the config reference in {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
