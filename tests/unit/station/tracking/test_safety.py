"""The safety gate: each rule, and hypothesis properties that nothing inside a zone passes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from drivers.datatypes import AltAz, AxisLimits, MountLimits, Trajectory
from drivers.errors import LimitViolation
from station.config import StationConfig
from station.tracking.elements import OrbitElements
from station.tracking.ephemeris import look_angles, sample_times
from station.tracking.mountplan import plan_pass
from station.tracking.passes import find_passes
from station.tracking.safety import (
    MIN_SLEW_S,
    FixedSky,
    SafetyGate,
    SafetyPolicy,
    SafetyViolation,
    SiteSky,
    sky_direction,
)
from station.tracking.site import HorizonMask, Site
from station.tracking.sunmoon import separation_deg

SITE = Site(
    "s",
    37.0,
    97.0,
    3000.0,
    min_elevation_deg=10.0,
    horizon_mask=HorizonMask(((0.0, 5.0), (90.0, 15.0), (180.0, 5.0), (270.0, 8.0))),
)
LIMITS = MountLimits(AxisLimits(-270.0, 270.0, 5.0, 2.0), AxisLimits(0.0, 180.0, 3.0, 1.5))
POLICY = SafetyPolicy(
    limits=LIMITS, site=SITE, sun_radius_deg=30.0, sun_slew_margin_deg=5.0, moon_radius_deg=10.0
)
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

az_s = st.floats(0.0, 360.0, allow_nan=False)
el_s = st.floats(-10.0, 90.0, allow_nan=False)


def gate(sun: tuple[float, float], moon: tuple[float, float] = (0.0, -100.0)) -> SafetyGate:
    return SafetyGate(POLICY, FixedSky(sun[0], sun[1], moon[0], moon[1]))


def test_each_rule_raises_with_reason_and_numbers() -> None:
    g = gate((100.0, 40.0), (300.0, 30.0))
    g.check_target(AltAz(200.0, 45.0), 0.0)  # fine
    cases = [
        (AltAz(300.0, 45.0), "azimuth_limit", 300.0, 270.0),
        (AltAz(200.0, 185.0), "elevation_limit", 185.0, 180.0),
        (AltAz(200.0, 9.0), "horizon", 9.0, 10.0),
        (AltAz(90.0, 14.0), "horizon", 14.0, 15.0),  # the mask, not min_elevation
        (AltAz(110.0, 50.0), "sun", None, 30.02),
        (AltAz(-60.0, 30.0), "moon", None, 10.5),
    ]
    for target, reason, value, limit in cases:
        with pytest.raises(SafetyViolation) as info:
            g.check_target(target, 0.0)
        err = info.value
        assert isinstance(err, LimitViolation)
        assert err.reason == reason
        assert err.limit == pytest.approx(limit, abs=1e-6)
        if value is not None:
            assert err.value == pytest.approx(value)
        assert reason in str(err)
        assert "nothing was commanded" in str(err)


def test_over_the_top_target_is_checked_in_the_sky() -> None:
    # axis (10, 120) is the sky direction (190, 60): near a Sun at (190, 70)
    assert sky_direction(np.array([10.0]), np.array([120.0]))[0][0] == pytest.approx(190.0)
    with pytest.raises(SafetyViolation, match="sun"):
        gate((190.0, 70.0)).check_target(AltAz(10.0, 120.0), 0.0)
    gate((10.0, 70.0) if False else (30.0, 20.0)).check_target(AltAz(10.0, 120.0), 0.0)


def test_slew_through_sun_zone_is_refused_but_target_ends_are_safe() -> None:
    g = gate((0.0, 45.0))
    start, end = AltAz(-90.0, 45.0), AltAz(90.0, 45.0)  # passes north, through the Sun
    g.check_target(start, 0.0)
    g.check_target(end, 0.0)
    with pytest.raises(SafetyViolation) as info:
        g.check_slew(start, end, 0.0)
    assert info.value.reason == "sun"
    assert "slew path" in str(info.value)
    # the same slew the other way round the wrap (through south) is fine
    g.check_slew(AltAz(270.0 - 360.0 + 360.0 - 90.0, 45.0), AltAz(90.0, 45.0), 0.0)


def test_slew_margin_applies_to_slews_only() -> None:
    g = gate((0.0, 0.0))
    target = AltAz(32.0, 20.0)  # ~37.5 deg from the Sun: ok as a target, ok as slew end
    sep = separation_deg(np.array([32.0]), np.array([20.0]), np.array([0.0]), np.array([0.0]))
    assert 30.0 < sep[0] < 35.0 + 5.0
    g2 = gate((0.0, 0.0))
    g2.check_target(AltAz(28.0, 18.0), 0.0)  # 33 deg: outside 30
    with pytest.raises(SafetyViolation, match="slew margin"):
        g2.check_slew(AltAz(28.0, 18.0), AltAz(28.0, 30.0), 0.0)
    g.check_slew(target, AltAz(60.0, 40.0), 0.0)


def test_sun_time_counts_down_to_zone_entry() -> None:
    g = gate((180.0, 30.0))
    t = np.linspace(0.0, 100.0, 1001)
    traj = Trajectory(t, 90.0 + t, np.full_like(t, 30.0))  # sweeps toward the Sun at 1 deg/s
    # enters the 30 deg (+0.02) zone when az reaches 180 - ~30.05 (at el 30: slightly more)
    st_ = g.sun_time(traj, 0.0)
    assert st_ is not None
    assert 55.0 < st_ < 70.0
    assert g.sun_time(traj, 30.0) == pytest.approx(st_ - 30.0, abs=0.2)
    far = Trajectory(t, 90.0 - 0.5 * t, np.full_like(t, 30.0))
    assert g.sun_time(far, 0.0) is None


@PROPS
@given(az=az_s, el=el_s, s_az=az_s, s_el=st.floats(-20.0, 90.0), wrap=st.booleans())
def test_property_no_target_inside_sun_zone_passes(
    az: float, el: float, s_az: float, s_el: float, wrap: bool
) -> None:
    target = AltAz(az - 360.0 if wrap and az > 90.0 else az, el)  # both wrap sides
    sep = float(
        separation_deg(np.array([az]), np.array([el]), np.array([s_az]), np.array([s_el]))[0]
    )
    try:
        gate((s_az, s_el)).check_target(target, 0.0)
    except SafetyViolation as exc:
        event(f"refused: {exc.reason}")
        return
    event("passed the gate")
    assert sep >= 30.0
    assert el >= float(SITE.limit_deg(az)) - 1e-6


@PROPS
@given(
    a0=st.floats(-270.0, 270.0),
    e0=st.floats(5.0, 90.0),
    a1=st.floats(-270.0, 270.0),
    e1=st.floats(5.0, 90.0),
    s_az=az_s,
    s_el=st.floats(-10.0, 90.0),
    m_az=az_s,
    m_el=st.floats(-10.0, 90.0),
)
def test_property_no_slew_path_point_inside_a_zone(
    a0: float,
    e0: float,
    a1: float,
    e1: float,
    s_az: float,
    s_el: float,
    m_az: float,
    m_el: float,
) -> None:
    g = gate((s_az, s_el), (m_az, m_el))
    try:
        g.check_slew(AltAz(a0, e0), AltAz(a1, e1), 0.0)
    except SafetyViolation as exc:
        event(f"refused: {exc.reason}")
        return
    event("passed the gate")
    # independent dense resampling of the executed path (20x finer than the gate's)
    path = g.slew_path(AltAz(a0, e0), AltAz(a1, e1), 0.0)
    fine = np.linspace(path.t_s[0], path.t_s[-1], 20 * len(path) + 2)
    az = np.interp(fine, path.t_s, path.az_deg)
    el = np.interp(fine, path.t_s, path.el_deg)
    s_az_v, s_el_v = sky_direction(az, el)
    sun = separation_deg(s_az_v, s_el_v, np.full_like(az, s_az), np.full_like(az, s_el))
    moon = separation_deg(s_az_v, s_el_v, np.full_like(az, m_az), np.full_like(az, m_el))
    # radius + slew margin for a path the mount sweeps; a null slew (the mount stays where
    # it is, ``MIN_SLEW_S``) sweeps nothing and is held to the target radius alone
    moving = POLICY.limits.move_time_s(AltAz(a0, e0), AltAz(a1, e1)) >= MIN_SLEW_S
    assert sun.min() >= (35.0 if moving else 30.0)
    assert moon.min() >= 10.0
    assert np.all(el >= SITE.horizon_mask.elevation_deg(s_az_v) - 1e-6)


@st.composite
def random_pass(draw: st.DrawFn) -> Trajectory:
    """A random great-circle pass: culmination, heading, duration, 1 Hz."""
    max_el = draw(st.floats(12.0, 89.0))
    heading = draw(st.floats(0.0, 360.0))
    speed = draw(st.floats(0.2, 1.0))
    t = np.arange(0.0, 600.0, 1.0)
    s = np.radians((t - 300.0) * speed * 0.5)
    d = math.radians(90.0 - max_el)
    x, y, z = np.sin(s), np.cos(s) * math.sin(d), np.cos(s) * math.cos(d)
    h = math.radians(heading)
    xe, yn = x * math.cos(h) + y * math.sin(h), -x * math.sin(h) + y * math.cos(h)
    az = np.degrees(np.unwrap(np.arctan2(xe, yn)))
    el = np.degrees(np.arcsin(z))
    keep = el > 10.5
    az = az[keep] - 360.0 * np.floor((az[keep].min() + 270.0) / 360.0)
    return Trajectory(t[keep], az, el[keep])


@PROPS
@given(traj=random_pass(), s_az=az_s, s_el=st.floats(-10.0, 90.0))
def test_property_no_trajectory_point_inside_sun_zone(
    traj: Trajectory, s_az: float, s_el: float
) -> None:
    g = gate((s_az, s_el))
    try:
        g.check_trajectory(traj)
    except SafetyViolation as exc:
        event(f"refused: {exc.reason}")
        return
    event("passed the gate")
    fine = np.linspace(traj.t_s[0], traj.t_s[-1], 10 * len(traj))
    az = np.interp(fine, traj.t_s, traj.az_deg)
    el = np.interp(fine, traj.t_s, traj.el_deg)
    sep = separation_deg(az, el, np.full_like(az, s_az), np.full_like(az, s_el))
    assert sep.min() >= 30.0


def test_real_passes_with_the_real_sun_never_pass_inside_the_zone(
    micius: OrbitElements, delingha: StationConfig
) -> None:
    """Thousands of real samples over 10 days: every gated pass keeps out of the Sun zone."""
    site = delingha.site
    sky = SiteSky(site)
    g = SafetyGate(SafetyPolicy(limits=delingha.mount.limits, site=site, sun_radius_deg=45.0), sky)
    passed = refused = 0
    reasons: set[str] = set()
    for p in find_passes(micius.satrec, site, micius.epoch_s, 10.0):
        t = sample_times(p.aos_s, p.los_s, 1.0)
        la = look_angles(micius.satrec, site, t)
        traj = plan_pass(t, la.az_deg, la.el_deg, delingha.mount.limits).trajectory
        s_az, s_el = sky.sun(t)
        sep = separation_deg(la.az_deg, la.el_deg, s_az, s_el)
        try:
            g.check_trajectory(traj)
        except SafetyViolation as exc:
            refused += 1
            reasons.add(exc.reason)
            continue
        passed += 1
        assert sep.min() >= 45.0
    assert passed > 0
    assert refused > 0
    assert reasons <= {"sun", "horizon", "moon"}


@pytest.mark.parametrize("t0", [0.0, 1_619_754_803.995])
def test_a_slew_to_where_the_mount_already_is_checks_at_posix_times(t0: float) -> None:
    """Found by the soak: the stow after a refused day pass started at the park position;
    the zero-length path's 1 ns step vanished at POSIX magnitudes and the check raised
    ValueError ("trajectory times must be strictly increasing") instead of passing."""
    g = gate(sun=(131.4, 59.5))
    park = AltAz(0.0, 90.0)
    path = g.slew_path(park, park, t0)
    assert path.t_s[1] > path.t_s[0]
    # 30.5 deg from the Sun: inside the slew margin (35), outside the radius (30); staying
    # put sweeps nothing, so it is checked as a target and passes
    g.check_slew(park, park, t0)
    g.check_slew(park, AltAz(0.0, 90.0 - 1e-7), t0)
    with pytest.raises(LimitViolation, match="sun"):
        gate(sun=(131.4, 61.0)).check_slew(park, park, t0)  # 29 deg: inside the radius
