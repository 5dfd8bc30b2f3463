"""Trajectory speed: a 10-minute pass at 10 Hz, ours (SGP4 + numpy) vs skyfield (IAU 2000A).

Candidate: :func:`station.tracking.ephemeris.look_angles` with everything on (light time,
aberration, refraction, polar motion) for 6000 samples. Baseline: skyfield's
``(sat - topos).at(t).altaz()`` for the same 6000 times (geometric only — less work than
the candidate; with the same IERS polar motion installed). Both measured in the same
run (best of 5 and 3); target ratio 100 (issue 3).
The maximum angular difference of the geometric solutions is reported as ``extra``.
"""

from __future__ import annotations

import datetime as dt
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.harness import Result, throughput
from station.tracking.earth import default_eop
from station.tracking.elements import load_elements
from station.tracking.ephemeris import look_angles
from station.tracking.site import Site
from station.tracking.sunmoon import separation_deg

REPO = Path(__file__).resolve().parent.parent


def run() -> list[Result]:
    from skyfield.api import EarthSatellite, Loader, wgs84
    from skyfield.data import iers

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The file finals2000A.all has expired")
        from skyfield_data import get_skyfield_data_path

        load = Loader(get_skyfield_data_path(), verbose=False)
    ts = load.timescale(builtin=True)
    # like for like: the candidate applies IERS polar motion, so the reference does too
    finals = resources.files("skyfield_data") / "data" / "finals2000A.all"
    with finals.open("rb") as fh:
        iers.install_polar_motion_table(ts, iers.parse_x_y_dut1_from_finals_all(fh))
    elements = load_elements(REPO / "configs" / "satellites" / "micius.tle")[0]
    site = Site("delingha", 37.378999, 97.726947, 3153.0, pressure_hpa=696.0)
    t0 = elements.epoch_s + 4 * 3600.0 + 50 * 60.0  # the first night pass over Delingha
    t: npt.NDArray[np.float64] = t0 + np.arange(6000, dtype=np.float64) * 0.1
    day0 = float(np.floor(t[0] / 86400.0) * 86400.0)
    d0 = dt.datetime.fromtimestamp(day0, tz=dt.UTC)
    tt = ts.utc(d0.year, d0.month, d0.day, 0, 0, t - day0)
    l1, l2 = elements.text.splitlines()[-2:]
    sat = EarthSatellite(l1, l2, elements.name, ts)
    topos = wgs84.latlon(site.latitude_deg, site.longitude_deg, elevation_m=site.altitude_m)
    default_eop()  # load the IERS table once, outside the timing

    def ours() -> None:
        look_angles(elements.satrec, site, t)

    def reference() -> None:
        # a fresh Time each run: skyfield caches its rotation matrices on the Time object
        fresh = ts.utc(d0.year, d0.month, d0.day, 0, 0, t - day0)
        (sat - topos).at(fresh).altaz()

    ours()
    cand = throughput(ours, len(t), repeat=5)
    base = throughput(reference, len(t), repeat=3)
    alt, az, _ = (sat - topos).at(tt).altaz()
    geo = look_angles(elements.satrec, site, t, apparent=False, refraction=False)
    err = separation_deg(geo.az_deg, geo.el_deg, az.degrees, alt.degrees)
    up = alt.degrees > 0
    return [
        Result(
            name="tracking: 10-min pass at 10 Hz (6000 az/el samples)",
            candidate="sgp4 + numpy frames (light time, aberration, refraction)",
            candidate_value=cand,
            baseline="skyfield (sat - topos).at(t).altaz(), IAU 2000A",
            baseline_value=base,
            unit="samples/s",
            higher_is_better=True,
            target_ratio=100.0,
            extra={
                "max_geometric_difference_arcsec_above_horizon": float(err[up].max() * 3600),
                "samples_above_horizon": int(up.sum()),
            },
        )
    ]
