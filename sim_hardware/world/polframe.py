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
- θ = atan2(h·e_v, h·e_h), folded into (-90, 90] because polarization is an axis. The
  rotation from e_h to e_v is about e_h × e_v = -u = k: θ is right-handed about the
  propagation direction, i.e. counter-clockwise for the receiver looking back at the source
  (DESIGN.md, the one sign definition).

Optics are reflections (Jones matrices of determinant -1 on linear polarization angles):

- a half-wave plate whose fast axis is really at χ = φ - hwp_zero (φ its reading) maps
  α → 2χ - α;
- the optical train between tube and analyzer: ``none`` nothing (analyzer on the tube);
  ``nasmyth`` (a fold mirror M3 on the elevation axis, analyzer on the azimuth platform) and
  ``coude`` (fold mirrors down the axes, analyzer on the ground) an odd number of fold
  reflections, net α → 2ρ - α with the mirror axis turning with the mount: 2ρ = el
  (Nasmyth), el - az (Coudé). The sign of that turn belongs to the mirror layout; it is a
  convention of this module, stated so the station side can be checked against it.

A photon with source-frame angle ψ arrives at ψ + θ in the tube frame; through the train and
the plate the analyzer's output at β passes it with probability cos²(out - β). Writing that
as cos²(ψ - a) gives the source-frame angle ``a`` the output measures:

- ``none``: out = 2χ - θ - ψ, so a = 2χ - θ - β: parity p = -1 (one reflection);
- trains: out = 2χ - 2ρ + θ + ψ, so a = β - 2χ - (θ - 2ρ): parity p = +1 (two reflections).

With Θ = θ (none) or θ - 2ρ (trains) — :func:`apply_optical_train`; 2ρ from the mount's
*axis* angles (:func:`train_term_deg`), which over the top are not the sky's — both read
a = p·(β - 2χ) - Θ, and the compensation that makes ``a`` constant is χ = -p·Θ/2 (θ/2
without a train, ρ - θ/2 behind one), leaving a = p·β. A residual δ on the
source-frame angle adds sin²δ to the error rate.
"""

from __future__ import annotations

from typing import Any

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


def train_term_deg(az_deg: Any, el_deg: Any, train: str) -> Any:
    """2ρ (deg), the train's net mirror axis doubled, from the mount's *axis* angles.

    The mirrors turn with the axes, so over the top (elevation axis at 180 - el, azimuth
    axis at az + 180) the term is not the sky's: Nasmyth 2ρ = el_axis, Coudé el_axis -
    az_axis, no train 0 (module docstring).
    """
    if train == "none":
        return 0.0 * np.asarray(el_deg)
    if train == "nasmyth":
        return el_deg
    if train == "coude":
        return el_deg - az_deg
    raise ValueError(f"unknown optical train {train!r}; expected none|nasmyth|coude")


def apply_optical_train(theta_deg: F64, az_deg: F64, el_deg: F64, train: str) -> F64:
    """Θ: θ (no train) or θ - 2ρ behind the train's net mirror (module docstring)."""
    return fold_axis_deg(theta_deg - train_term_deg(az_deg, el_deg, train))


def optics_parity(train: str) -> int:
    """Net parity of train + compensation plate: -1 (a mirror remains) or +1 (a rotation)."""
    return -1 if train == "none" else 1


def source_frame_angle(
    parity: int, big_theta_deg: float, plate_axis_deg: float, beta: float
) -> float:
    """Source-frame angle (deg) measured by the analyzer output at ``beta`` (module doc).

    ``plate_axis_deg`` is the plate's true fast axis χ = reading - hwp_zero.
    """
    return parity * (beta - 2.0 * plate_axis_deg) - big_theta_deg


def fold_axis_deg(angle_deg: F64) -> F64:
    """Fold an axis angle (defined mod 180) into (-90, 90]."""
    folded: F64 = 90.0 - np.mod(90.0 - angle_deg, 180.0)
    return folded
