"""Closed-form expectations of a two-station pass: coincidences, accidentals, QBER, S.

The world's own physics (physics.md §4), integrated over the pass geometry without drawing a
single photon, so a test can hold the measured figures of a recorded pass against it:

- true coincidences per second at emission time t:
  C(t) = R · η_A(t) κ_A(t) e_A · η_B(t) κ_B(t) e_B · s_A s_B · w,
  with η the link transmittance (:func:`sim_hardware.world.link.link_efficiency`; the
  scintillation factors are unit-mean and independent per station), κ the receiver coupling
  of the mount's actual pointing error, e the detector efficiency, s the dead-time survival
  e^{−rτ_d} at the singles rate r, and w the fraction of the pair-time spread (both
  detectors' Gaussian jitter plus the time-transfer noise) inside the coincidence window;
- accidentals per second: S_A · S_B · τ_w (singles S of the analyzer outputs, window τ_w);
- QBER in the key bases: [C·(1 − V)/2 + A/2]/(C + A) with V the source visibility and a
  residual frame error δ (V → V·cos 2δ); accidentals carry no correlation (error ½);
- CHSH: S = 2√2 · V cos 2δ · C/(C + A) for an ideal Bell configuration.

This module is truth-side (``sim_hardware``): the station's analysis never imports it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivers.datatypes import AltAz
from sim_hardware.world.config import jitter_sigma_ps
from sim_hardware.world.world import World

F64 = npt.NDArray[np.float64]
Pointing = Callable[[float], AltAz]


@dataclass(frozen=True)
class PassExpectation:
    """Expected figures of a two-station pass over [t0, t1) (counts, not rates)."""

    t0: float
    t1: float
    window_ps: float
    window_fraction: float  #: share of true pairs whose time difference falls in the window
    coincidences: float  #: true coincidences in the window
    accidentals: float
    singles_a_cps: float  #: mean analyzer singles (cps)
    singles_b_cps: float
    visibility: float  #: the source visibility with the frame error applied
    qber: float  #: key-basis QBER including accidentals
    s_value: float  #: CHSH S for an ideal Bell configuration including accidentals
    times: F64  #: grid (POSIX s)
    coincidence_rate: F64  #: true coincidences per second on the grid
    accidental_rate: F64

    @property
    def total(self) -> float:
        return self.coincidences + self.accidentals


def expect_pass(
    world: World,
    t0: float,
    t1: float,
    *,
    window_ps: float,
    pointing: tuple[Pointing | None, Pointing | None] = (None, None),
    timing_noise_ps: float = 0.0,
    frame_error_deg: float = 0.0,
    step_s: float = 1.0,
) -> PassExpectation:
    """Expected coincidences, accidentals, QBER and S between the world's two stations.

    ``pointing[i]`` gives station i's actual mount direction at a POSIX time (e.g. from its
    logged ``pointing.csv``); None means ideal pointing (on the line of sight).
    ``timing_noise_ps`` is the 1σ per-pair time noise the analysis adds (time transfer),
    in quadrature with both detectors' jitter. Times are arrival times (the light time of a
    few ms is far below the grid step).
    """
    names = world.station_names
    if len(names) != 2:
        raise ValueError(f"a pass expectation needs two stations, the world has {names}")
    cfg = world.config
    stations = [next(s for s in cfg.stations if s.name == n) for n in names]
    grid = np.arange(t0 + 0.5 * step_s, t1, step_s)
    rate = np.zeros(grid.size)
    acc = np.zeros(grid.size)
    singles = np.zeros((2, grid.size))
    for i, t in enumerate(grid.tolist()):
        per_station = []
        for k, (name, st) in enumerate(zip(names, stations, strict=True)):
            where = pointing[k]
            aim = where(t) if where is not None else world.line_of_sight(name, t)
            exp = world.expected_rates(name, t, pointing=aim, hwp_deg=0.0)
            used = [exp[f"singles_{int(c)}"] for c in (st.channels.h, st.channels.v)]
            if st.analyzer == "passive":
                used += [exp[f"singles_{int(c)}"] for c in (st.channels.d, st.channels.a)]
            s_total = float(sum(used))
            singles[k, i] = s_total
            eff = max(st.detectors.efficiency)
            survival = math.exp(-s_total / 4.0 * st.detectors.dead_time_ns * 1e-9)
            per_station.append(exp["transmittance"] * exp["coupling"] * eff * survival)
        rate[i] = cfg.source.pair_rate_hz * per_station[0] * per_station[1]
        acc[i] = singles[0, i] * singles[1, i] * window_ps * 1e-12
    sigma = math.sqrt(
        sum(jitter_sigma_ps(st.detectors) ** 2 for st in stations) + timing_noise_ps**2
    )
    w = math.erf(window_ps / 2.0 / (math.sqrt(2.0) * sigma)) if sigma > 0 else 1.0
    rate *= w
    c = float(rate.sum() * step_s)
    a = float(acc.sum() * step_s)
    v = cfg.source.visibility * math.cos(math.radians(2.0 * frame_error_deg))
    q = ((1.0 - v) / 2.0 * c + a / 2.0) / (c + a) if c + a > 0 else 0.5
    s = 2.0 * math.sqrt(2.0) * v * c / (c + a) if c + a > 0 else 0.0
    return PassExpectation(
        t0=t0,
        t1=t1,
        window_ps=window_ps,
        window_fraction=w,
        coincidences=c,
        accidentals=a,
        singles_a_cps=float(singles[0].mean()) if grid.size else 0.0,
        singles_b_cps=float(singles[1].mean()) if grid.size else 0.0,
        visibility=v,
        qber=q,
        s_value=s,
        times=grid,
        coincidence_rate=rate,
        accidental_rate=acc,
    )
