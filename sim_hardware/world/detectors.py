"""Detector effects on a raw photon stream: dead time and afterpulsing, vectorized.

Events are int64 keys ``channel_index << 56 | t_ps`` (t relative to a window base, < 2^56),
so one ``np.sort`` (AVX-512 quicksort for int64) groups by channel and orders in time
without an argsort.

- Dead time is *paralyzable*: an event is lost when the previous raw photon of the same
  channel came less than τ_d earlier, counted or not. This is exact for that model and needs
  only the previous raw event, which makes it vectorizable and independent of how the
  stream is sliced. Si-SPADs are closer to non-paralyzable; the two differ by O((rτ)²)
  (detected rate r e^{-rτ} against r/(1+rτ)), < 0.1 % at 1 Mcps and 30 ns.
- Afterpulsing: each raw event is flagged with probability p_ap when it is created, with a
  delay τ_d + truncated exponential (mean ``afterpulse_mean_ns``, cut at 20 means). A flagged
  event that survives dead time emits one afterpulse; afterpulses themselves neither
  afterpulse nor block later photons (second-order effects at p_ap ~ 0.4 %).

Slice independence: callers generate raw events from ``LOOKBACK`` before the window; an
event whose predecessor is unknown lies within τ_d of that start, so its afterpulse lands
before the window whenever LOOKBACK >= 2 τ_d + max delay.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sim_hardware.world.config import DetectorConfig

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
CHANNEL_SHIFT = 56
TIME_MASK = (1 << CHANNEL_SHIFT) - 1
AFTERPULSE_CUTOFF = 20.0  #: afterpulse delays are truncated at this many means


def lookback_ps(det: DetectorConfig) -> int:
    """How far before a window raw events must be generated (ps)."""
    dead = det.dead_time_ns * 1e3
    return int(2.0 * dead + AFTERPULSE_CUTOFF * det.afterpulse_mean_ns * 1e3) + 1000


def afterpulse_delays_ps(rng: np.random.Generator, n: int, det: DetectorConfig) -> F64:
    """Delays (ps) after the parent photon: dead time + truncated exponential."""
    mean = det.afterpulse_mean_ns * 1e3
    u = rng.random(n)
    tail = -mean * np.log1p(-u * (1.0 - np.exp(-AFTERPULSE_CUTOFF)))
    out: F64 = det.dead_time_ns * 1e3 + tail
    return out


def apply_dead_time_and_afterpulses(
    keys: I64, ap_keys: I64, ap_delays_ps: F64, det: DetectorConfig
) -> I64:
    """Surviving events plus afterpulses, as channel-major keys (not time-sorted overall).

    Args:
        keys: raw events, ``channel_index << 56 | t_ps`` (any order).
        ap_keys: the raw events flagged to afterpulse (a subset of ``keys``).
        ap_delays_ps: their afterpulse delays (ps).
    """
    keys = np.sort(keys)
    if keys.size == 0:
        return keys
    dead_ps = round(det.dead_time_ns * 1e3)
    alive = np.empty(keys.size, dtype=bool)
    alive[0] = True
    # Across a channel boundary the difference is >= 2^56 - window, so the first event of
    # each channel is always kept.
    np.greater_equal(np.diff(keys), dead_ps, out=alive[1:])
    survivors = keys[alive]
    if ap_keys.size == 0:
        return survivors
    pos = np.searchsorted(keys, ap_keys)
    parent_alive = alive[np.minimum(pos, keys.size - 1)] & (
        keys[np.minimum(pos, keys.size - 1)] == ap_keys
    )
    pulses = ap_keys[parent_alive] + np.rint(ap_delays_ps[parent_alive]).astype(np.int64)
    out: I64 = np.concatenate([survivors, pulses])
    return out
