"""Polar sky plot of a planned pass: track, keyhole, wrap choice, Sun/Moon exclusion zones.

Headless (matplotlib Agg). Radius is zenith distance (90 − el), north up, east to the right
... as seen from below looking up, azimuth increases clockwise like on a sky chart.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from station.tracking.elements import iso
from station.tracking.mountplan import MountPlan
from station.tracking.site import Site

F64 = npt.NDArray[np.float64]


def _circle(az_deg: float, el_deg: float, radius_deg: float) -> tuple[F64, F64]:
    """Az/el points of a small circle of ``radius_deg`` around a sky direction."""
    az0, el0, r = math.radians(az_deg), math.radians(el_deg), math.radians(radius_deg)
    b = np.linspace(0.0, 2 * math.pi, 181)
    sin_el = math.sin(el0) * math.cos(r) + math.cos(el0) * math.sin(r) * np.cos(b)
    el = np.arcsin(np.clip(sin_el, -1, 1))
    az = az0 + np.arctan2(
        np.sin(b) * math.sin(r) * math.cos(el0), math.cos(r) - math.sin(el0) * sin_el
    )
    return np.degrees(az) % 360.0, np.degrees(el)


def plot_pass(
    plan: MountPlan,
    site: Site,
    path: str | Path,
    *,
    title: str,
    sun: tuple[float, float],
    moon: tuple[float, float],
    sun_radius_deg: float,
    moon_radius_deg: float,
) -> Path:
    """Write the sky plot to ``path`` (PNG); ``sun``/``moon`` are (az, el) at mid-pass."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(7.5, 8.0))
    ax: Any = fig.add_subplot(projection="polar")  # PolarAxes (untyped in the stubs)
    ax.set_theta_zero_location("N")
    ax.set_theta_direction(-1)
    ax.set_rlim(0, 90)
    ax.set_rticks([0, 30, 60, 80, 90])
    ax.set_yticklabels(["90", "60", "30", "10", "0"])

    def polar(az: F64, el: F64) -> tuple[F64, F64]:
        r = 90.0 - np.asarray(el)
        r = np.where(r > 90.0, np.nan, r)  # hide below the horizon
        return np.radians(az), r

    mask_az = np.linspace(0, 360, 361)
    limit = site.limit_deg(mask_az)
    ax.fill_between(np.radians(mask_az), 90.0 - limit, 90.0, color="0.8", label="below limit")
    for (b_az, b_el), radius, colour, name in (
        (sun, sun_radius_deg, "orange", "Sun"),
        (moon, moon_radius_deg, "slategray", "Moon"),
    ):
        c_az, c_el = _circle(b_az, b_el, radius)
        ax.plot(*polar(c_az, c_el), color=colour, lw=1.5, label=f"{name} zone {radius:g}°")
        if b_el > 0:
            ax.plot(*polar(np.array([b_az]), np.array([b_el])), "o", color=colour)
    sky_az, sky_el = plan.sky_az_deg, plan.sky_el_deg
    ax.plot(*polar(sky_az, sky_el), color="tab:blue", lw=2, label="pass (sky)")
    ax.plot(*polar(sky_az[:1], sky_el[:1]), "^", color="tab:green", label="AOS")
    ax.plot(*polar(sky_az[-1:], sky_el[-1:]), "v", color="tab:red", label="LOS")
    t = plan.trajectory.t_s
    for i, (a, b) in enumerate(plan.keyhole):
        sel = (t >= a) & (t <= b)
        ax.plot(
            *polar(sky_az[sel], sky_el[sel]), color="red", lw=4, label="keyhole" if i == 0 else None
        )
    if not plan.observable.all():
        sel = ~plan.observable
        ax.plot(*polar(sky_az[sel], sky_el[sel]), "k:", lw=2, label="unobservable (skip)")
    az_axis = plan.trajectory.az_deg
    info = (
        f"wrap offset {plan.wrap_offset_deg:+.0f}°: "
        f"axis az {az_axis.min():.1f}..{az_axis.max():.1f}°"
        f"  |  keyhole strategy: {plan.strategy}"
    )
    if plan.flip_time_s is not None:
        info += f" (flip at {iso(plan.flip_time_s)[11:19]})"
    info += f"\npre-position to az {plan.preposition.az_deg:.1f} el {plan.preposition.el_deg:.1f}"
    info += f" from {iso(plan.preposition_start_s)}"
    ax.set_title(title, pad=18)
    fig.text(0.5, 0.03, info, ha="center", fontsize=8.5)
    ax.legend(loc="lower left", bbox_to_anchor=(-0.16, -0.14), fontsize=7)
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
