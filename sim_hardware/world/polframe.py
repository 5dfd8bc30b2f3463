"""Polarization frame rotation θ: the satellite's body-fixed H axis as seen by a station.

Computed here from plain vectors, independently of ``station/tracking`` (DESIGN.md).
Definitions (all vectors in one right-handed frame, e.g. the station's east-north-up axes):

- Propagation direction k = unit(station - satellite).
- Attitude law fixes the body axes. ``target_pointing``: body z = k (the boresight looks at
  the station). ``nadir``: body z = unit(-satellite position) (geocentric nadir). In both,
  body x = the inertial velocity's component perpendicular to body z (yaw follows the
  velocity) and body y = z × x.
- The source's H axis is ``cos p·x + sin p·y`` (p = ``polarization_axis_deg``); the H
  polarization that leaves the transmitter is that axis projected perpendicular to k.
- Station frame, for an analyzer fixed to an alt-az telescope tube: with u = -k (toward the
  satellite) and U the local up, e_h = unit(u × U) (horizontal, the direction of increasing
  azimuth) and e_v = e_h × u (increasing elevation). (e_h, e_v, k) is right-handed like
  (x, y, z) of the body, so the map from body to station is a rotation, not a reflection.
- θ = atan2(h·e_v, h·e_h), folded into (-90, 90] because polarization is an axis.
- Optical train (image rotation between tube and analyzer): ``none`` θ; ``nasmyth`` θ + el
  (analyzer on a platform that turns with azimuth only); ``coude`` θ + el - az (analyzer on
  the ground). These signs are a convention of this module, stated so the station side can
  be checked against it.

Photon with body-frame polarization angle ψ arrives at angle ψ + θ; a half-wave plate read
at φ (true axis φ - hwp_zero) turns it back by 2(φ - hwp_zero) (DESIGN.md convention), so
an analyzer at β measures the body-frame angle β - θ + 2(φ - hwp_zero). Compensation is
φ = θ/2 + hwp_zero; a residual δ = 2(φ - hwp_zero) - θ adds sin²δ to the error rate.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def _unit(v: F64) -> F64:
    out: F64 = v / np.linalg.norm(v, axis=0, keepdims=True)
    return out


def frame_rotation_deg(
    rel_pos: F64,
    sat_pos: F64,
    sat_vel: F64,
    up: F64,
    *,
    attitude_law: str,
    polarization_axis_deg: float,
) -> F64:
    """θ in degrees, folded into (-90, 90].

    Args:
        rel_pos: satellite minus station (3, n), any length unit.
        sat_pos: satellite position from the Earth's centre (3, n), same frame.
        sat_vel: satellite inertial velocity (3, n), same frame.
        up: the station's local up unit vector (3, n) or (3, 1).
        attitude_law: ``target_pointing`` or ``nadir``.
        polarization_axis_deg: source H axis in the body x-y plane (deg).
    """
    u = _unit(rel_pos)
    k = -u
    if attitude_law == "target_pointing":
        z_b = k
    elif attitude_law == "nadir":
        z_b = -_unit(sat_pos)
    else:
        raise ValueError(f"unknown attitude law {attitude_law!r}; expected target_pointing|nadir")
    x_b = _unit(sat_vel - np.sum(sat_vel * z_b, axis=0) * z_b)
    y_b = np.cross(z_b, x_b, axis=0)
    p = np.radians(polarization_axis_deg)
    h_src = np.cos(p) * x_b + np.sin(p) * y_b
    h = h_src - np.sum(h_src * k, axis=0) * k
    up_b = np.broadcast_to(up, u.shape)
    e_h = _unit(np.cross(u, up_b, axis=0))
    e_v = np.cross(e_h, u, axis=0)
    theta = np.degrees(np.arctan2(np.sum(h * e_v, axis=0), np.sum(h * e_h, axis=0)))
    return fold_axis_deg(theta)


def apply_optical_train(theta_deg: F64, az_deg: F64, el_deg: F64, train: str) -> F64:
    """Add the image rotation of the telescope's optical train (convention in module doc)."""
    if train == "none":
        out = theta_deg
    elif train == "nasmyth":
        out = theta_deg + el_deg
    elif train == "coude":
        out = theta_deg + el_deg - az_deg
    else:
        raise ValueError(f"unknown optical train {train!r}; expected none|nasmyth|coude")
    return fold_axis_deg(out)


def fold_axis_deg(angle_deg: F64) -> F64:
    """Fold an axis angle (defined mod 180) into (-90, 90]."""
    folded: F64 = 90.0 - np.mod(90.0 - angle_deg, 180.0)
    return folded
