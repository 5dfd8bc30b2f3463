"""Polarization reference frame: the angle θ(t) between the satellite's and the station's H axes.

The satellite's transmitter H axis is fixed to the spacecraft body; the station's analyzer H
axis is fixed to the telescope (or, after an optical train, to the Nasmyth platform or the
Coudé lab). Seen along the beam the two rotate relative to each other during a pass; the
station compensates with a half-wave plate at θ/2 + offset (a HWP at φ rotates linear
polarization by 2φ — DESIGN.md, physics.md §4 "Polarisation reference frame").

Conventions (all vectors in the Earth-fixed frame):

- ``k`` — propagation direction, from the satellite to the station (unit).
- satellite H axis, by attitude law (``[polarization] attitude_law``):
  - ``target_pointing``: the body boresight points at the station and the yaw about the
    line of sight is zero, i.e. H is the inertial velocity projected onto the plane ⊥ k;
  - ``nadir``: body z to the Earth's centre, H (body x) along-track = the inertial velocity
    made perpendicular to nadir; a steering mirror sends the beam along k, and H is
    projected onto the plane ⊥ k (ideal, polarization-preserving optics).
- station H axis for a tube-mounted analyzer (``optical_train = "none"``): the horizontal
  unit vector ê_az = ∂(LOS)/∂az normalised (the elevation-axis direction), which is ⊥ LOS.
- θ is the angle from the station H axis to the satellite H axis, positive
  counter-clockwise when looking *against* k (i.e. as the station looks up at the
  satellite), in (−90°, 90°] and then unwrapped (period 180°: H ≡ −H).
- optical train image rotation (added to θ): Nasmyth +el, Coudé +el − az (axis angles;
  the signs belong to the mirror layout and must be confirmed at commissioning — an
  offset calibration cannot fix a sign).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from station.tracking.earth import OMEGA_EARTH
from station.tracking.ephemeris import LookAngles
from station.tracking.site import Site

F64 = npt.NDArray[np.float64]

ATTITUDE_LAWS = ("target_pointing", "nadir")
OPTICAL_TRAINS = ("none", "nasmyth", "coude")


@dataclass(frozen=True)
class PolarizationFrame:
    """θ(t) (deg, unwrapped) and the half-wave-plate command θ/2 + offset (deg, unwrapped)."""

    t_s: F64
    theta_deg: F64
    hwp_deg: F64


def _unit(v: F64) -> F64:
    out: F64 = v / np.linalg.norm(v, axis=1)[:, None]
    return out


def _perp(v: F64, k: F64) -> F64:
    """Component of ``v`` perpendicular to unit ``k``, normalised."""
    return _unit(v - np.einsum("ij,ij->i", v, k)[:, None] * k)


def satellite_h_axis(look: LookAngles, attitude_law: str) -> F64:
    """Unit satellite H axis (N, 3) in the Earth-fixed frame, ⊥ the line of sight."""
    r = look.sat_itrs_km
    omega = np.array([0.0, 0.0, OMEGA_EARTH])
    v_inertial = look.sat_vel_itrs_km_s + np.cross(omega, r)
    k = -_unit(look.los_itrs_km)
    if attitude_law == "target_pointing":
        return _perp(v_inertial, k)
    if attitude_law == "nadir":
        along = _perp(v_inertial, -_unit(r))
        return _perp(along, k)
    raise ValueError(f"attitude_law must be one of {ATTITUDE_LAWS}, got {attitude_law!r}")


def station_h_axis(site: Site, az_deg: F64) -> F64:
    """Unit station H axis (N, 3): the horizontal direction ê_az at the pointing azimuth."""
    az = np.radians(az_deg)
    enu = site.enu
    out: F64 = np.cos(az)[:, None] * enu[0] - np.sin(az)[:, None] * enu[1]
    return out


def frame_angle(
    look: LookAngles,
    site: Site,
    *,
    attitude_law: str = "target_pointing",
    optical_train: str = "none",
    axis_az_deg: F64 | None = None,
    axis_el_deg: F64 | None = None,
    hwp_offset_deg: float = 0.0,
) -> PolarizationFrame:
    """θ(t) and the HWP command along a pass (``look`` from :func:`look_angles`).

    ``axis_az_deg``/``axis_el_deg`` are the mount axis angles for the optical-train
    rotation (default: the sky az/el of ``look``).
    """
    if optical_train not in OPTICAL_TRAINS:
        raise ValueError(f"optical_train must be one of {OPTICAL_TRAINS}, got {optical_train!r}")
    k = -_unit(look.los_itrs_km)
    h_sat = satellite_h_axis(look, attitude_law)
    h_st = station_h_axis(site, look.az_deg)
    # looking against k (up at the satellite), counter-clockwise positive: axis = -k
    sin = np.einsum("ij,ij->i", np.cross(h_st, h_sat), -k)
    cos = np.einsum("ij,ij->i", h_st, h_sat)
    theta = np.degrees(np.arctan2(sin, cos))
    if optical_train != "none":
        el = look.el_deg if axis_el_deg is None else axis_el_deg
        theta = theta + el
        if optical_train == "coude":
            az = look.az_deg if axis_az_deg is None else axis_az_deg
            theta = theta - az
    # period 180 deg (H and -H are the same axis): fold, then unwrap for continuity
    folded = (theta + 90.0) % 180.0 - 90.0
    theta_u = np.degrees(np.unwrap(np.radians(folded), period=np.pi))
    hwp = theta_u / 2.0 + hwp_offset_deg
    return PolarizationFrame(look.t_s, theta_u, hwp)
