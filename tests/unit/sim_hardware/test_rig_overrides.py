"""`python -m sim_hardware --set KEY=VALUE`: one input changed, typos refused with the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.config import load_toml
from drivers.errors import ConfigError
from sim_hardware.overrides import apply_overrides
from sim_hardware.world import load_world_config

ROOT = Path(__file__).resolve().parents[3]
RIG = ROOT / "configs/rig/delingha_nanshan_2020.toml"


def test_station_entries_are_indexed_by_name() -> None:
    data = load_toml(RIG).raw_data()
    out = apply_overrides(
        data,
        ["stations.nanshan.optics_loss_db=11.6", "source.pair_rate_hz=1e7", 'source.state="phi+"'],
    )
    by_name = {s["name"]: s for s in out["stations"]}
    assert by_name["nanshan"]["optics_loss_db"] == 11.6
    assert by_name["delingha"]["optics_loss_db"] != 11.6  # only the named entry changes
    assert out["source"]["pair_rate_hz"] == 1e7
    assert out["source"]["state"] == "phi+"
    # and the world reads it like a file
    from drivers.config import Table

    world = load_world_config(Table(out, source="x"))
    assert world.source.pair_rate_hz == 1e7


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("stations.lijiang.optics_loss_db=1", "no entry named 'lijiang'"),
        ("source.pair_rate=1", "has no 'pair_rate'"),
        ("source.pair_rate_hz", "expected KEY=VALUE"),
        ("source.state=psi-", "not a TOML value"),
        ("nothing.at.all=1", "has no 'nothing'"),
    ],
)
def test_bad_overrides_name_the_path(item: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        apply_overrides(load_toml(RIG).raw_data(), [item])
