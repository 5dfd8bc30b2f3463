"""Test helpers: run a world over a window and match cross-station coincidences."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from drivers.datatypes import AltAz
from sim_hardware.world import World

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]


def on_target(world: World, station: str, t0: float, t1: float) -> AltAz:
    return world.line_of_sight(station, 0.5 * (t0 + t1))


def compensating_hwp(world: World, station: str, t0: float, t1: float) -> float:
    return world.truth(station, 0.5 * (t0 + t1))["hwp_compensation_deg"]


def run(
    world: World,
    station: str,
    t0: float,
    t1: float,
    *,
    hwp_extra: float = 0.0,
    pointing: AltAz | None = None,
) -> tuple[I64, U8]:
    return world.detections(
        station,
        t0,
        t1,
        pointing=pointing or on_target(world, station, t0, t1),
        hwp_deg=compensating_hwp(world, station, t0, t1) + hwp_extra,
    )


def predicted_b_ps(world: World, t_a_ps: I64, t0: float, t1: float) -> F64:
    """Where a photon detected at the first station at t_a (ps) has its twin at the second,
    from the world's light times (perfect clocks assumed)."""
    a, b = world.station_names
    epoch = world.config.tagger_epoch
    te = np.arange(t0 - 0.02, t1 + 0.01, 0.005)
    tof_a = np.array([world.truth(a, t)["tof_s"] for t in te])
    tof_b = np.array([world.truth(b, t)["tof_s"] for t in te])
    base = (te - epoch) * 1e12
    out: F64 = np.interp(t_a_ps.astype(np.float64), base + tof_a * 1e12, base + tof_b * 1e12)
    return out


def match(pred_b: F64, t_b: I64, half_window_ps: float) -> tuple[npt.NDArray[np.intp], F64]:
    """For each predicted time, index into t_b of the nearest event and its offset (ps)."""
    idx = np.clip(np.searchsorted(t_b, pred_b), 1, len(t_b) - 1)
    left, right = t_b[idx - 1] - pred_b, t_b[idx] - pred_b
    use_left = np.abs(left) < np.abs(right)
    best = np.where(use_left, idx - 1, idx)
    offset = np.where(use_left, left, right)
    return best, offset
