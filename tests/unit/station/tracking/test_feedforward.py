"""Feed-forward for go-to servos, checked against the emulated mount axis (sim_hardware)."""

from __future__ import annotations

import numpy as np

from drivers.datatypes import AxisLimits, MountLimits, Trajectory
from sim_hardware.devices.axis import AxisMotion
from station.tracking.feedforward import braking_lead

ACCEL = 2.0
LIMITS = MountLimits(AxisLimits(-270, 270, 5.0, ACCEL), AxisLimits(0, 90, 5.0, ACCEL))
PERIOD = 0.1  # command period (s), as the daemon's 10 Hz follow


def _pass() -> Trajectory:
    """An azimuth sweep peaking at 2.1 deg/s (a high pass near culmination), el fixed."""
    t = np.arange(0.0, 200.0, 0.1)
    rate = 0.2 + 1.9 * np.exp(-(((t - 100.0) / 15.0) ** 2))
    az = np.concatenate([[0.0], np.cumsum(rate[1:] * 0.1)])
    return Trajectory(t, az, np.full_like(t, 45.0))


def _max_error(commanded: Trajectory, truth: Trajectory) -> float:
    start = 20.0
    axis = AxisMotion(commanded.at(start).az_deg, max_speed=5.0, max_accel=ACCEL, settle_s=0.5)
    errors = []
    for k, t in enumerate(np.arange(start, 190.0, 0.01)):
        if k % round(PERIOD / 0.01) == 0:
            axis.move_to(float(t), commanded.at(float(t)).az_deg)
        if t > start + 10.0:  # after the start transient
            errors.append(abs(axis.at(float(t))[0] - truth.at(float(t)).az_deg))
    return float(max(errors))


def test_lead_cancels_the_go_to_lag() -> None:
    truth = _pass()
    lag = _max_error(truth, truth)
    led = _max_error(braking_lead(truth, LIMITS, lead_s=0.75 * PERIOD), truth)
    # without a lead the axis trails by about its braking distance v^2/2a (1.1 deg here)
    assert lag > 0.8
    assert led < 0.1


def test_lead_vanishes_at_rest_and_respects_limits() -> None:
    t = np.linspace(0.0, 10.0, 101)
    still = Trajectory(t, np.full_like(t, 10.0), np.full_like(t, 30.0))
    out = braking_lead(still, LIMITS, lead_s=0.1)
    np.testing.assert_allclose(out.az_deg, 10.0)
    fast = Trajectory(t, 265.0 + 0.9 * t, np.full_like(t, 30.0))
    assert float(braking_lead(fast, LIMITS).az_deg.max()) <= 270.0
