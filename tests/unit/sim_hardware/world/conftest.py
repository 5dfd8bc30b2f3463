"""Fixtures for the world tests: the example config and variants of it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from drivers.config import load_toml
from sim_hardware.world import WorldConfig, load_world_config
from sim_hardware.world.config import (
    BackgroundConfig,
    ClockConfig,
    DetectorConfig,
    StationConfig,
)

EXAMPLE = Path(__file__).resolve().parents[4] / "sim_hardware/world/example_rig_world.toml"


@pytest.fixture(scope="session")
def example() -> WorldConfig:
    return load_world_config(load_toml(EXAMPLE))


@pytest.fixture(scope="session")
def t_pass(example: WorldConfig) -> float:
    """A time when both stations see the satellite (Delingha el ~57, Lijiang el ~23)."""
    assert example.start_time is not None
    return example.start_time + 240.0


def variant(
    cfg: WorldConfig,
    *,
    source: dict[str, Any] | None = None,
    station: dict[str, Any] | None = None,
    detectors: dict[str, Any] | None = None,
    clock: ClockConfig | None = None,
    background: BackgroundConfig | None = None,
) -> WorldConfig:
    """The config with fields replaced on the source and on every station."""

    def st(s: StationConfig) -> StationConfig:
        det: DetectorConfig = dataclasses.replace(s.detectors, **(detectors or {}))
        return dataclasses.replace(
            s,
            **(station or {}),
            detectors=det,
            clock=clock if clock is not None else s.clock,
            background=background if background is not None else s.background,
        )

    return dataclasses.replace(
        cfg,
        source=dataclasses.replace(cfg.source, **(source or {})),
        stations=tuple(st(s) for s in cfg.stations),
    )


def bright(cfg: WorldConfig, **source: Any) -> WorldConfig:
    """Low-loss link, 2e7 pairs/s, perfect clocks: thousands of coincidences per second."""
    return variant(
        cfg,
        source={"pair_rate_hz": 2e7, **source},
        station={"optics_loss_db": 0.0, "scintillation_sigma_ln": 0.1},
        clock=ClockConfig(),
    )
