"""The daemon's command table: documented exactly, every command has a handler."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.bus.schema import CommandRejected
from station.daemon.api import COMMANDS, markdown_table
from station.daemon.controller import StationController

DOC = Path(__file__).resolve().parents[4] / "docs" / "mqtt-api.md"


def test_docs_carry_the_generated_command_table() -> None:
    assert markdown_table() in DOC.read_text(), "regenerate with python -m station.daemon.api"


def test_every_command_has_a_handler() -> None:
    for spec in COMMANDS:
        assert callable(getattr(StationController, f"_cmd_{spec.name}", None)), spec.name


def test_goto_rejects_out_of_range_elevation_before_anything_runs() -> None:
    goto = next(s for s in COMMANDS if s.name == "goto")
    with pytest.raises(CommandRejected, match="el_deg"):
        goto.validate({"az_deg": 10.0, "el_deg": 300.0})
    with pytest.raises(CommandRejected, match="not valid in state ENABLED"):
        goto.check_state("ENABLED")


def test_asyncapi_lists_every_command() -> None:
    text = (DOC.parent / "mqtt-asyncapi.yaml").read_text()
    block = text.split("qgs/v1/{station}/cmd/{command}:", 1)[1].split("publish:", 1)[0]
    enum = block.split("enum: [", 1)[1].split("]", 1)[0]
    assert {w.strip() for w in enum.split(",")} == {spec.name for spec in COMMANDS}
