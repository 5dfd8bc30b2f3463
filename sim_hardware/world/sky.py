"""Offline skyfield: timescale, JPL ephemeris and POSIX-time conversion.

skyfield-data ships ``de421.bsp`` and ``finals2000A.all``; the latter's metadata says it
expired on 2026-10-18 and ``get_skyfield_data_path()`` warns about it. We never read that
file (``timescale(builtin=True)`` uses the UT1/leap-second tables bundled with skyfield), so
the warning is filtered exactly there (reference/mqtt.md §2.7).
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
    return Sky(load.timescale(builtin=True), eph)


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
