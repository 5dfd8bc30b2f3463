"""docs/operations.md's config table is the declarations (station/config_reference.py)."""

from __future__ import annotations

import pytest

from station.config import config_reference
from station.config_reference import BEGIN, DOC, END, REGENERATE, with_reference


def test_operations_doc_lists_the_declared_options() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert with_reference(text) == text, f"docs/operations.md is stale: run {REGENERATE}"


def test_every_declared_option_is_in_the_table_once() -> None:
    table = config_reference()
    for key in ("safety.sun_radius_deg", "tracking.servo", "tle.max_age_days"):
        assert table.count(f"`{key}`") == 1


def test_missing_markers_are_an_error() -> None:
    with pytest.raises(ValueError, match="config-reference"):
        with_reference("no block here")
    assert with_reference(f"a\n{BEGIN}\nold\n{END}\nb").startswith(f"a\n{BEGIN}\n<!-- generated")
