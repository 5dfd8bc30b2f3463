"""Polarization frame θ(t): independent vector check, symmetry, optical trains, HWP command."""

from __future__ import annotations

import math

import numpy as np
import pytest

from station.tracking.elements import OrbitElements
from station.tracking.ephemeris import LookAngles, look_angles, sample_times
from station.tracking.passes import find_passes
from station.tracking.polframe import frame_angle
from station.tracking.site import Site


def _pass_look(micius: OrbitElements, site: Site, min_el: float = 0.0) -> LookAngles:
    ps = [
        p
        for p in find_passes(micius.satrec, site, micius.epoch_s, 2.0)
        if p.max_elevation_deg > min_el
    ]
    best = max(ps, key=lambda p: p.max_elevation_deg)
    t = sample_times(best.aos_s, best.los_s, 2.0)
    return look_angles(micius.satrec, site, t, apparent=False, refraction=False)


def _independent_theta(look: LookAngles, site: Site, law: str) -> np.ndarray:
    """θ via rotation matrices into the telescope frame (not the projection formula).

    Frame rows in ENU: x = ê_az (horizontal, increasing az), z = k = −boresight (the
    propagation direction, from the satellite down into the telescope), y = z × x. Satellite H
    is taken into that frame; θ = atan2(y, x) of its components: right-handed about k, i.e.
    counter-clockwise for the receiver looking back at the source (DESIGN.md).
    """
    out = []
    enu = site.enu
    omega = np.array([0.0, 0.0, 7.292115146706979e-5])
    for i in range(len(look)):
        a, e = math.radians(look.az_deg[i]), math.radians(look.el_deg[i])
        x_ax = np.array([math.cos(a), -math.sin(a), 0.0])  # ê_az in ENU
        z_ax = np.array([math.sin(a) * math.cos(e), math.cos(a) * math.cos(e), math.sin(e)])
        k = -z_ax
        frame = np.vstack([x_ax, np.cross(k, x_ax), k])  # right-handed, z = k
        r = look.sat_itrs_km[i]
        v = look.sat_vel_itrs_km_s[i] + np.cross(omega, r)
        if law == "target_pointing":
            h = v
        else:
            nadir = -r / np.linalg.norm(r)
            h = v - np.dot(v, nadir) * nadir
        h_enu = enu @ h
        hx, hy = np.dot(frame[0], h_enu), np.dot(frame[1], h_enu)
        out.append(math.degrees(math.atan2(hy, hx)))
    th = (np.array(out) + 90.0) % 180.0 - 90.0
    return np.degrees(np.unwrap(np.radians(th), period=math.pi))


@pytest.mark.parametrize("law", ["target_pointing", "nadir"])
def test_theta_matches_independent_frame_computation(micius: OrbitElements, law: str) -> None:
    site = Site("d", 37.379008, 97.726947, 3153.0)
    look = _pass_look(micius, site)
    ours = frame_angle(look, site, attitude_law=law).theta_deg
    ref = _independent_theta(look, site, law)
    diff = (ours - ref + 90.0) % 180.0 - 90.0
    assert np.abs(diff).max() < 1e-6
    assert np.ptp(ours) > 5.0  # the frame really rotates along the pass


def _straight_pass(offset_deg: float) -> tuple[LookAngles, Site]:
    """A straight, uniform 7 km/s track 500 km above a site at (0, 0), no Earth rotation.

    The track runs north, passing ``offset_deg`` east of the zenith: the geometry is exactly
    mirror-symmetric about the east–up plane, so θ − θ(TCA) must be exactly odd in time.
    """
    site = Site("eq", 0.0, 0.0, 0.0)
    east, north, up = site.enu
    t = np.linspace(-60.0, 60.0, 241)
    los = (500.0 * up + 500.0 * math.tan(math.radians(offset_deg)) * east)[None, :] + (
        7.0 * t[:, None] * north[None, :]
    )
    r = site.itrs_km[None, :] + los
    v_inertial = np.tile(7.0 * north, (len(t), 1))
    v_rel = v_inertial - np.cross(np.array([0.0, 0.0, 7.292115146706979e-5]), r)
    e, n, u = (los @ site.enu.T).T
    az = np.degrees(np.arctan2(e, n)) % 360.0
    el = np.degrees(np.arctan2(u, np.hypot(e, n)))
    rng = np.linalg.norm(los, axis=1)
    z = np.zeros_like(t)
    return LookAngles(t, az, el, rng, z, z, z, los, r, v_rel), site


@pytest.mark.parametrize("law", ["target_pointing", "nadir"])
@pytest.mark.parametrize("offset", [1.0, 10.0, 30.0])
def test_symmetric_pass_gives_odd_theta_about_culmination(law: str, offset: float) -> None:
    look, site = _straight_pass(offset)
    th = frame_angle(look, site, attitude_law=law).theta_deg
    i = len(th) // 2
    odd = (th[:i][::-1] - th[i]) + (th[i + 1 :] - th[i])
    assert np.abs(odd).max() < 1e-9
    assert np.ptp(th) > 1.0


def test_real_high_pass_is_nearly_odd_about_culmination(micius: OrbitElements) -> None:
    """On the real (rotating-Earth) 80° pass the symmetry holds to a few percent."""
    site = Site("l", 26.693931, 100.029319, 3233.0)
    look = _pass_look(micius, site, min_el=70.0)
    assert look.el_deg.max() > 75.0
    th = frame_angle(look, site).theta_deg
    i = int(np.argmax(look.el_deg))
    k = min(i, len(th) - 1 - i)
    before, after = th[i - k : i][::-1], th[i + 1 : i + 1 + k]
    odd = (before - th[i]) + (after - th[i])
    swing = np.abs(after - th[i])
    assert swing.max() > 60.0  # the frame swings a lot near the zenith
    assert np.all(np.abs(odd) <= 0.1 * swing + 0.05)


def test_optical_trains_are_mirrors_and_hwp_is_half_the_compensation_plus_offset(
    micius: OrbitElements,
) -> None:
    """Behind a mirror train (axis ρ) the plate must reflect about ρ − θ/2; without one, θ/2."""
    site = Site("d", 37.379008, 97.726947, 3153.0)
    look = _pass_look(micius, site)
    none = frame_angle(look, site, optical_train="none", hwp_offset_deg=3.0)
    nas = frame_angle(look, site, optical_train="nasmyth")
    cou = frame_angle(look, site, optical_train="coude")

    def wrap(x: np.ndarray) -> np.ndarray:
        return (x + 90.0) % 180.0 - 90.0

    assert np.allclose(nas.theta_deg, none.theta_deg)
    assert np.allclose(cou.theta_deg, none.theta_deg)
    assert np.allclose(wrap(none.compensation_deg - none.theta_deg), 0.0, atol=1e-9)
    assert np.allclose(wrap(nas.compensation_deg - (look.el_deg - none.theta_deg)), 0.0, atol=1e-9)
    assert np.allclose(
        wrap(cou.compensation_deg - (look.el_deg - look.az_deg - none.theta_deg)), 0.0, atol=1e-9
    )
    assert (none.parity, nas.parity, cou.parity) == (-1, 1, 1)
    assert np.allclose(none.hwp_deg, none.compensation_deg / 2 + 3.0)
    for frame in (none, nas, cou):  # continuous: no 90 deg jumps of the plate
        assert np.abs(np.diff(frame.hwp_deg)).max() < 5.0
    with pytest.raises(ValueError, match="optical_train"):
        frame_angle(look, site, optical_train="periscope")
    with pytest.raises(ValueError, match="attitude_law"):
        frame_angle(look, site, attitude_law="tumbling")
