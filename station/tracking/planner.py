"""From a station config and orbit elements to a checked, followable plan for one pass.

This is the one place that chains the tracking pieces in the order the station needs them
before AOS: apparent pointing at the tracking rate → mount plan (wrap, keyhole,
dynamics, pre-position) → safety gate over the trajectory and the pre-position slew →
polarization frame and HWP command. The daemon (issue 6) and the CLI both call it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivers.datatypes import AltAz
from station.config import StationConfig
from station.tracking.earth import EarthOrientation
from station.tracking.elements import OrbitElements
from station.tracking.ephemeris import LookAngles, look_angles, sample_times
from station.tracking.mountplan import MountPlan, plan_pass
from station.tracking.passes import Pass
from station.tracking.polframe import PolarizationFrame, frame_angle
from station.tracking.safety import SafetyGate, SafetyPolicy, SiteSky


@dataclass(frozen=True)
class PassPlan:
    """Everything the station needs to execute one pass."""

    pass_: Pass
    look: LookAngles
    mount: MountPlan
    polarization: PolarizationFrame
    sun_time_s: float | None  #: time from AOS until the track enters the Sun zone


def safety_gate(cfg: StationConfig, eop: EarthOrientation | None = None) -> SafetyGate:
    """The station's safety gate built from its config."""
    policy = SafetyPolicy(
        limits=cfg.mount.limits,
        site=cfg.site,
        sun_radius_deg=cfg.safety.sun_radius_deg,
        sun_slew_margin_deg=cfg.safety.sun_slew_margin_deg,
        moon_radius_deg=cfg.safety.moon_radius_deg,
    )
    return SafetyGate(policy, SiteSky(cfg.site, eop))


def plan_for_pass(
    cfg: StationConfig,
    elements: OrbitElements,
    pass_: Pass,
    *,
    start: AltAz | None = None,
    eop: EarthOrientation | None = None,
    check_safety: bool = True,
) -> PassPlan:
    """Sample, plan and check one pass; raises TrajectoryInfeasible / SafetyViolation."""
    t = sample_times(pass_.aos_s, pass_.los_s, cfg.tracking.rate_hz)
    look = look_angles(elements.satrec, cfg.site, t, eop=eop)
    origin = start or AltAz(cfg.mount.park_az_deg, cfg.mount.park_el_deg)
    mount = plan_pass(
        t,
        look.az_deg,
        look.el_deg,
        cfg.mount.limits,
        keyhole_strategy=cfg.mount.keyhole_strategy,
        over_the_top=cfg.mount.over_the_top,
        start=origin,
    )
    gate = safety_gate(cfg, eop)
    sun_time = gate.sun_time(mount.trajectory, float(t[0]))
    if check_safety:
        gate.check_slew(origin, mount.preposition, mount.preposition_start_s)
        gate.check_trajectory(mount.trajectory)
    pol = frame_angle(
        look,
        cfg.site,
        attitude_law=cfg.polarization.attitude_law,
        optical_train=cfg.polarization.optical_train,
        axis_az_deg=mount.trajectory.az_deg,
        axis_el_deg=np.asarray(mount.trajectory.el_deg),
        hwp_offset_deg=cfg.polarization.hwp_offset_deg,
    )
    return PassPlan(pass_, look, mount, pol, sun_time)
