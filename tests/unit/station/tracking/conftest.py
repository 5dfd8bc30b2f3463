"""Fixtures for tracking tests: the offline skyfield reference and shipped configs/elements.

skyfield is used only here, as the independent full-precision (IAU 2000A) reference; it
loads its timescale and DE421 from skyfield-data without any download. skyfield-data warns
that its finals2000A.all has "expired" (a date check only) — filtered here, since test
warnings are errors.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from station.config import StationConfig, load_station_config
from station.tracking.elements import OrbitElements, load_elements

REPO = Path(__file__).resolve().parents[4]
CONFIGS = REPO / "configs"


@dataclass
class Reference:
    """skyfield objects: plain builtin timescale, one with IERS polar motion, and DE421."""

    ts: Any
    ts_pm: Any
    eph: Any
    load: Any

    def times(self, ts: Any, t_s: np.ndarray) -> Any:
        """skyfield Time for POSIX seconds, via a calendar day (POSIX has no leap seconds)."""
        day0 = float(np.floor(t_s[0] / 86400.0) * 86400.0)
        d0 = dt.datetime.fromtimestamp(day0, tz=dt.UTC)
        return ts.utc(d0.year, d0.month, d0.day, 0, 0, t_s - day0)


@pytest.fixture(scope="session")
def skyfield_ref() -> Iterator[Reference]:
    from skyfield.api import Loader
    from skyfield.data import iers

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The file finals2000A.all has expired")
        from skyfield_data import get_skyfield_data_path

        load = Loader(get_skyfield_data_path(), verbose=False)
    ts = load.timescale(builtin=True)
    ts_pm = load.timescale(builtin=True)
    finals = resources.files("skyfield_data") / "data" / "finals2000A.all"
    with finals.open("rb") as fh:
        iers.install_polar_motion_table(ts_pm, iers.parse_x_y_dut1_from_finals_all(fh))
    eph = load("de421.bsp")
    yield Reference(ts, ts_pm, eph, load)
    eph.close()


@pytest.fixture(scope="session")
def micius() -> OrbitElements:
    return load_elements(CONFIGS / "satellites" / "micius.tle")[0]


@pytest.fixture(scope="session")
def delingha() -> StationConfig:
    return load_station_config(CONFIGS / "stations" / "delingha.toml")


@pytest.fixture(scope="session")
def lijiang() -> StationConfig:
    return load_station_config(CONFIGS / "stations" / "lijiang.toml")


@pytest.fixture(scope="session")
def nanshan() -> StationConfig:
    return load_station_config(CONFIGS / "stations" / "nanshan.toml")
