"""Polarization reference frame: θ(t), the optical train, and the half-wave-plate command.

The satellite's transmitter H axis is fixed to the spacecraft body; the station's analyzer H
axis is fixed to the telescope (or, after an optical train, to the Nasmyth platform or the
Coudé lab). Seen along the beam the two turn relative to each other during a pass. The
derivation below, with a figure, is in ``docs/tracking.md`` ("Polarization frame").

Sign (DESIGN.md, one definition for world and station): polarization and frame angles are
counter-clockwise as seen by the receiver looking toward the source, i.e. a right-handed
rotation about the propagation direction ``k`` (from the satellite to the station). θ is the
angle of the satellite's H axis in the station's tube frame (reference: the horizontal unit
vector ê_az = ∂(LOS)/∂az, the elevation-axis direction, ⊥ LOS), measured that way.

Optics are reflections, not rotations (DESIGN.md, physics conventions):

- a half-wave plate with its fast axis at φ maps a linear polarization α to 2φ − α;
- an optical train with an odd number of fold mirrors (Nasmyth: M3; Coudé: M3…M7) maps α to
  2ρ − α about an axis ρ that turns with the mount axes: ρ = el/2 (Nasmyth), (el − az)/2
  (Coudé) plus a constant the HWP calibration offset absorbs. (An image rotation by el or
  el − az per unit of axis angle; its sign belongs to the mirror layout and must be
  confirmed at commissioning — a calibration offset cannot fix a sign.)

The plate sits after the train, in front of the analyzer. Working the reflections through
(docs/tracking.md):

- ``none`` (tube-mounted analyzer): one reflection (the plate). φ = θ/2 + φ₀ cancels θ and
  leaves a mirror: parity p = −1, the analyzer at β measures the source angle −β.
- ``nasmyth``/``coude``: two reflections (train, plate) make a rotation. φ = ρ − θ/2 + φ₀
  cancels θ with no mirror: parity p = +1, the analyzer at β measures the source angle β.

In both cases the plate command is ``x/2 + φ₀`` with the *compensation angle* x = θ (none) or
2ρ − θ (trains); a Bell-mode plate offset b then turns the analyzer's source-frame angles
by −2·p·b. :func:`frame_angle` returns θ, x, the plate command and the parity, so the bundle
can record which source-frame angles the analyzer's outputs measured.

Satellite H axis, by attitude law (``[polarization] attitude_law``):

- ``target_pointing``: the body boresight points at the station and the yaw about the line
  of sight is zero, i.e. H is the inertial velocity projected onto the plane ⊥ k;
- ``nadir``: body z to the Earth's centre, H (body x) along-track = the inertial velocity
  made perpendicular to nadir; a steering mirror sends the beam along k, and H is projected
  onto the plane ⊥ k (ideal, polarization-preserving optics).
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


#: net parity of the station's optics including the compensation plate: -1 a mirror remains
#: (plate only), +1 a rotation (train reflection + plate)
TRAIN_PARITY = {"none": -1, "nasmyth": 1, "coude": 1}


@dataclass(frozen=True)
class PolarizationFrame:
    """Along a pass (deg, unwrapped): θ, the compensation angle x and the plate command.

    ``theta_deg``: the satellite H axis in the tube frame, right-handed about k.
    ``compensation_deg``: x, with the plate at x/2 + offset (θ, or 2ρ − θ behind a train).
    ``hwp_deg``: the plate command x/2 + offset. ``parity``: see :data:`TRAIN_PARITY`.
    """

    t_s: F64
    theta_deg: F64
    compensation_deg: F64
    hwp_deg: F64
    parity: int


def source_frame_angles(parity: int, plate_offset_deg: float = 0.0) -> tuple[float, float]:
    """Source-frame angles (deg) measured by the H and D outputs of a compensated analyzer.

    With the plate at x/2 + calibration + ``plate_offset_deg`` (the Bell-mode offset), the
    analyzer at β (0 for H, 45 for D) measures the source angle p·(β − 2·offset)
    (module docstring; docs/tracking.md). V and A are the orthogonal projections.
    """
    return (
        parity * (0.0 - 2.0 * plate_offset_deg),
        parity * (45.0 - 2.0 * plate_offset_deg),
    )


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
    """θ(t), the compensation angle and the HWP command along a pass.

    ``look`` from :func:`look_angles`. ``axis_az_deg``/``axis_el_deg`` are the mount axis
    angles that turn the optical train's mirror axis (default: the sky az/el of ``look``).
    """
    if optical_train not in OPTICAL_TRAINS:
        raise ValueError(f"optical_train must be one of {OPTICAL_TRAINS}, got {optical_train!r}")
    k = -_unit(look.los_itrs_km)
    h_sat = satellite_h_axis(look, attitude_law)
    h_st = station_h_axis(site, look.az_deg)
    # right-handed about k (counter-clockwise for the receiver looking back at the source)
    sin = np.einsum("ij,ij->i", np.cross(h_st, h_sat), k)
    cos = np.einsum("ij,ij->i", h_st, h_sat)
    theta = _unwrap_axis(np.degrees(np.arctan2(sin, cos)))
    compensation = theta
    if optical_train != "none":
        # the train reflects about rho: the plate must reflect about rho - theta/2
        el = look.el_deg if axis_el_deg is None else axis_el_deg
        rho2 = np.asarray(el, dtype=np.float64)
        if optical_train == "coude":
            az = look.az_deg if axis_az_deg is None else axis_az_deg
            rho2 = rho2 - az
        compensation = _unwrap_axis(rho2 - theta)
    hwp = compensation / 2.0 + hwp_offset_deg
    return PolarizationFrame(look.t_s, theta, compensation, hwp, TRAIN_PARITY[optical_train])


def _unwrap_axis(angle_deg: F64) -> F64:
    """Fold an axis angle (period 180 deg: H and -H are one axis), then unwrap it."""
    folded = (angle_deg + 90.0) % 180.0 - 90.0
    out: F64 = np.degrees(np.unwrap(np.radians(folded), period=np.pi))
    return out
