"""The coordinator's command table: documented exactly, in the AsyncAPI file, with handlers."""

from __future__ import annotations

from pathlib import Path

import pytest

from station.bus.schema import CommandRejected
from station.daemon.api import markdown_table
from station.network.api import COMMANDS, PAUSED
from station.network.coordinator import Coordinator

DOC = Path(__file__).resolve().parents[4] / "docs" / "mqtt-api.md"


def test_docs_carry_the_generated_command_table() -> None:
    assert markdown_table(COMMANDS) in DOC.read_text(), "regenerate: python -m station.network.api"


def test_every_command_has_a_handler() -> None:
    for spec in COMMANDS:
        assert callable(getattr(Coordinator, f"_cmd_{spec.name}", None)), spec.name


def test_asyncapi_lists_every_command() -> None:
    text = (DOC.parent / "mqtt-asyncapi.yaml").read_text()
    block = text.split("qgs/v1/{coordinator}/cmd/{command}:", 1)[1].split("publish:", 1)[0]
    enum = block.split("enum: [", 1)[1].split("]", 1)[0]
    assert {w.strip() for w in enum.split(",")} == {spec.name for spec in COMMANDS}


def test_pause_only_when_active_and_skip_needs_a_window() -> None:
    pause = next(s for s in COMMANDS if s.name == "pause")
    with pytest.raises(CommandRejected, match="not valid in state PAUSED"):
        pause.check_state(PAUSED)
    skip = next(s for s in COMMANDS if s.name == "skip_window")
    with pytest.raises(CommandRejected, match="window_id"):
        skip.validate({})
