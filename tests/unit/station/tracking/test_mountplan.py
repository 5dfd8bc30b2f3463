"""Mount planning: wrap sector choice, keyhole flip/skip, dynamics check, pre-position."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.datatypes import AltAz, AxisLimits, MountLimits, Trajectory
from station.tracking.mountplan import TrajectoryInfeasible, check_dynamics, plan_pass


def limits(
    az: tuple[float, float] = (-270.0, 270.0), el_max: float = 90.0, v: float = 5.0, a: float = 2.0
) -> MountLimits:
    return MountLimits(AxisLimits(az[0], az[1], v, a), AxisLimits(0.0, el_max, v, a))


def synthetic_pass(
    max_el: float, heading_deg: float, *, n: int = 4001, dur: float = 400.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A straight great-circle pass, culminating at ``max_el`` (deg), at 1 deg/s at the top."""
    t = np.linspace(0.0, dur, n)
    s = np.radians((t - dur / 2) * 0.9 * math.sin(math.radians(max_el)) ** 2)
    # track: points at angle s along a great circle whose closest approach to zenith is
    # 90 - max_el, in a local frame (x east, y north, z up), then rotated by heading
    d = math.radians(90.0 - max_el)
    x = np.sin(s)
    y = np.cos(s) * math.sin(d)
    z = np.cos(s) * math.cos(d)
    h = math.radians(heading_deg)
    xe, yn = x * math.cos(h) + y * math.sin(h), -x * math.sin(h) + y * math.cos(h)
    az = np.degrees(np.arctan2(xe, yn)) % 360.0
    el = np.degrees(np.arcsin(np.clip(z, -1, 1)))
    keep = el > 10.0
    return t[keep], az[keep], el[keep]


def test_low_pass_needs_no_keyhole_and_prepositions_from_park() -> None:
    t, az, el = synthetic_pass(40.0, 30.0)
    plan = plan_pass(t, az, el, limits(), start=AltAz(0.0, 90.0))
    assert plan.strategy == "none"
    assert plan.keyhole == ()
    assert plan.observable.all()
    assert plan.preposition == AltAz(plan.trajectory.az_deg[0], plan.trajectory.el_deg[0])
    expected = limits().move_time_s(AltAz(0.0, 90.0), plan.preposition)
    assert plan.preposition_slew_s == pytest.approx(expected)
    assert plan.preposition_start_s == pytest.approx(t[0] - expected - 5.0)
    assert check_dynamics(plan.trajectory, limits()) == []


def test_wrap_sector_is_chosen_so_no_unwind_happens() -> None:
    # a pass crossing north (az 300 -> 60): on a 0..450 mount it must run 300..420,
    # on -270..270 it must run -60..60; never a 360 jump inside the trajectory
    t, az, el = synthetic_pass(35.0, 0.0)  # closest approach due north
    assert az.min() < 30
    assert az.max() > 330
    for lim, lo, hi in ((limits((0.0, 450.0)), 0.0, 450.0), (limits((-270.0, 270.0)), -270, 270)):
        plan = plan_pass(t, az, el, lim, start=AltAz(0.0, 90.0))
        traj_az = plan.trajectory.az_deg
        assert np.abs(np.diff(traj_az)).max() < 1.0
        assert traj_az.min() >= lo
        assert traj_az.max() <= hi
        assert np.allclose(traj_az % 360.0, az % 360.0)


def test_wrap_choice_prefers_the_offset_closest_to_the_start() -> None:
    t, az, el = synthetic_pass(35.0, 180.0)  # closest approach due south, az ~116..244
    lim = limits((-270.0, 270.0))
    near_neg = plan_pass(t, az, el, lim, start=AltAz(-200.0, 45.0))
    near_pos = plan_pass(t, az, el, lim, start=AltAz(150.0, 45.0))
    assert near_neg.trajectory.az_deg[0] < 0 < near_pos.trajectory.az_deg[0]


def test_pass_wider_than_the_sector_is_refused() -> None:
    t, az, el = synthetic_pass(35.0, 0.0)  # crosses north: needs az 296..424 or -64..64
    narrow = MountLimits(AxisLimits(0.0, 360.0, 5.0, 2.0), AxisLimits(0.0, 90.0, 5.0, 2.0))
    with pytest.raises(TrajectoryInfeasible, match="cannot hold without an unwind"):
        plan_pass(t, az, el, narrow)


def test_zenith_pass_keyhole_detected_and_skipped() -> None:
    t, az, el = synthetic_pass(89.5, 20.0)
    lim = limits(v=3.0, a=1.0)
    plan = plan_pass(t, az, el, lim, keyhole_strategy="skip")
    assert plan.strategy == "skip"
    assert len(plan.keyhole) == 1
    k0, k1 = plan.keyhole[0]
    tca = t[np.argmax(el)]
    assert k0 < tca < k1
    gaps = plan.unobservable()
    assert len(gaps) == 1
    assert gaps[0][0] <= k0
    assert gaps[0][1] >= k1
    assert check_dynamics(plan.trajectory, lim) == []
    # outside the gap the trajectory is the sky track itself
    obs = plan.observable
    assert np.allclose(plan.trajectory.az_deg[obs] % 360, az[obs] % 360, atol=1e-3)
    assert np.allclose(plan.trajectory.el_deg[obs], el[obs], atol=1e-3)


def test_overhead_pass_flipped_over_the_top_is_fully_observable() -> None:
    t, az, el = synthetic_pass(90.0, 20.0)  # exactly through the zenith
    lim = limits(el_max=180.0, v=3.0, a=1.0)
    skip = plan_pass(t, az, el, lim, keyhole_strategy="skip")
    assert skip.keyhole
    assert not skip.observable.all()
    plan = plan_pass(t, az, el, lim, keyhole_strategy="flip", over_the_top=True)
    assert plan.strategy == "flip"
    assert plan.observable.all()
    assert plan.flip_time_s == pytest.approx(t[np.argmax(el)])
    traj = plan.trajectory
    assert traj.el_deg.max() > 90.0 - 1e-9
    assert traj.el_deg[-1] > 90.0
    assert np.ptp(traj.az_deg) < 1.0  # no azimuth swing at all
    after = traj.t_s > plan.flip_time_s
    assert np.allclose((traj.az_deg[after] - 180.0) % 360.0, az[after] % 360.0)
    assert np.allclose(180.0 - traj.el_deg[after], el[after])
    assert check_dynamics(traj, lim) == []


def test_near_zenith_flip_loses_less_than_skip() -> None:
    t, az, el = synthetic_pass(89.5, 20.0)
    lim = limits(el_max=180.0, v=3.0, a=1.0)
    skip = plan_pass(t, az, el, lim, keyhole_strategy="skip")
    flip = plan_pass(t, az, el, lim, keyhole_strategy="flip", over_the_top=True)
    assert flip.strategy == "flip"
    lost_skip = sum(b - a for a, b in skip.unobservable())
    lost_flip = sum(b - a for a, b in flip.unobservable())
    assert 0 < lost_flip < lost_skip / 2
    assert check_dynamics(flip.trajectory, lim) == []


def test_flip_falls_back_to_skip_without_over_the_top() -> None:
    t, az, el = synthetic_pass(89.5, 20.0)
    plan = plan_pass(t, az, el, limits(v=3.0, a=1.0), keyhole_strategy="flip", over_the_top=False)
    assert plan.strategy == "skip"


def test_dynamics_check_names_the_failing_segment() -> None:
    t = np.linspace(0.0, 100.0, 1001)
    az = np.where(t < 40, t * 1.0, 40 + (t - 40) * 8.0)  # 8 deg/s from t = 40 s
    az = np.minimum(az, 260.0)
    traj = Trajectory(t, az, np.full_like(t, 45.0))
    bad = check_dynamics(traj, limits())
    speed = [s for s in bad if s.quantity == "speed"]
    assert speed
    assert speed[0].axis == "azimuth"
    assert speed[0].start_s == pytest.approx(40.0, abs=0.2)
    assert speed[0].required == pytest.approx(8.0, rel=0.01)
    assert "azimuth speed 8.000 deg/s exceeds the limit 5 deg/s" in speed[0].describe()
    accel = [s for s in bad if s.quantity == "acceleration"]
    assert accel
    assert accel[0].start_s == pytest.approx(40.0, abs=0.2)


def test_elevation_above_mount_limit_is_a_position_segment() -> None:
    t = np.linspace(0.0, 10.0, 11)
    traj = Trajectory(t, np.full_like(t, 10.0), np.linspace(80.0, 95.0, 11))
    (seg,) = [s for s in check_dynamics(traj, limits()) if s.quantity == "position"]
    assert seg.axis == "elevation"
    assert seg.limit == 90.0
    assert seg.required == pytest.approx(95.0)


def test_wrap_that_fails_is_flown_over_the_top_when_the_mount_can() -> None:
    """A pass crossing north on a 0..360 sector: over the top it spans 116..244 and fits."""
    t, az, el = synthetic_pass(35.0, 0.0)
    narrow = limits((0.0, 360.0), el_max=180.0)
    plan = plan_pass(t, az, el, narrow, over_the_top=True)
    assert plan.strategy == "over_the_top"
    traj = plan.trajectory
    assert traj.el_deg.min() > 90.0  # the tube past the zenith all along
    assert np.abs(np.diff(traj.az_deg)).max() < 1.0  # no unwind inside the pass
    assert plan.observable.all()
    # and the axes point at the satellite all the time
    from station.tracking.mountplan import pointing_error_deg

    assert pointing_error_deg(traj.az_deg, traj.el_deg, az, el).max() < 1e-6
    # without over-the-top support it is still refused, naming the wrap
    with pytest.raises(TrajectoryInfeasible, match="cannot hold without an unwind"):
        plan_pass(t, az, el, narrow, over_the_top=False)
