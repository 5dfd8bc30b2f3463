"""Offline skyfield: timescale, JPL ephemeris and POSIX-time conversion.

skyfield-data ships ``de421.bsp`` and ``finals2000A.all``; the latter's metadata says it
expired on 2026-10-18 and ``get_skyfield_data_path()`` warns about it, so the warning is
filtered exactly there (reference/mqtt.md §2.7). UT1 and leap seconds come from skyfield's
built-in tables (``timescale(builtin=True)``); the pole's wander (polar motion, up to ~15 m
on the ground) is installed from the shipped ``finals2000A.all`` through skyfield's own
reader: without it the world's station positions, hence its light times, would be off by up
to ~45 ns against an observatory that applies the IERS pole (the station side does).
"""

from __future__ import annotations

import atexit
import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from skyfield.api import Loader, Timescale
from skyfield.data import iers
from skyfield_data import get_skyfield_data_path

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Sky:
    """The skyfield timescale and the DE421 ephemeris (Sun, Moon, Earth)."""

    ts: Timescale
    eph: Any


@functools.cache
def load_sky() -> Sky:
    """Load timescale and ephemeris once per process, offline."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The file finals2000A.all has expired")
        path = get_skyfield_data_path()
    load = Loader(path, verbose=False)
    eph = load("de421.bsp")
    atexit.register(eph.close)  # an open .bsp otherwise raises a ResourceWarning at exit
    ts = load.timescale(builtin=True)
    with open(f"{path}/finals2000A.all", "rb") as f:
        finals = iers.parse_x_y_dut1_from_finals_all(f)
    iers.install_polar_motion_table(ts, finals)
    return Sky(ts, eph)


def posix_to_time(ts: Timescale, t: npt.NDArray[np.float64] | float) -> Any:
    """skyfield Time for POSIX seconds.

    POSIX days are exactly 86400 s (leap seconds are not counted), so the calendar day and
    the second of the day come straight from the division; ``ts.utc(1970, 1, 1, 0, 0, t)``
    would instead count SI seconds across leap seconds and be off by 27 s since 2017.
    """
    arr = np.asarray(t, dtype=np.float64)
    days = np.floor(arr / SECONDS_PER_DAY)
    secs = arr - days * SECONDS_PER_DAY
    return ts.utc(1970, 1, 1 + days.astype(np.int64), 0, 0, secs)
