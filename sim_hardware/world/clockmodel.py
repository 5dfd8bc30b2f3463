"""A station tagger's timescale: offset, frequency error and random walk against true time.

reading(t) = t + offset + f·(t - epoch) + W(t - epoch)

W is a random walk (Wiener process) of ``random_walk_ps_per_sqrt_s`` ps/√s, sampled on a
1 s grid from ``epoch`` and linearly interpolated between samples (a Brownian bridge would
add sub-grid wiggles of order σ·√(1 s)/2; irrelevant against ns coincidence windows). W = 0
before the epoch. Grid increments come from an RNG keyed by (seed, station, block of 4096
steps), so W(t) is the same whatever order it is asked in. The map is strictly increasing
for |f| < 1, so time order is preserved.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from sim_hardware.world.config import ClockConfig
from sim_hardware.world.rng import Stream, generator

F64 = npt.NDArray[np.float64]
_BLOCK = 4096


class StationClock:
    """Deterministic clock-error model of one station (all results in picoseconds)."""

    def __init__(self, cfg: ClockConfig, epoch: float, *, seed: int, station_index: int) -> None:
        self._cfg = cfg
        self._epoch = epoch
        self._seed = seed
        self._station = station_index
        self._offset_ps = cfg.offset_ns * 1e3
        self._freq = cfg.frequency_ppb * 1e-9
        self._sigma_ps = cfg.random_walk_ps_per_sqrt_s
        self._walk: F64 = np.zeros(1)  # W at grid seconds 0, 1, 2, ... (grown in blocks)

    def error_ps(self, since_epoch_s: F64) -> F64:
        """reading - true time (ps) at times ``since_epoch_s`` seconds after the epoch."""
        err = self._offset_ps + self._freq * since_epoch_s * 1e12
        if self._sigma_ps > 0.0 and since_epoch_s.size:
            err = err + self._walk_ps(since_epoch_s)
        out: F64 = np.asarray(err, dtype=np.float64)
        return out

    def _walk_ps(self, s: F64) -> F64:
        x = np.maximum(s, 0.0)
        j_lo, j_hi = math.floor(float(np.min(x))), math.floor(float(np.max(x)))
        need = j_hi + 2
        while len(self._walk) < need:  # block by block: the values never depend on order
            b = (len(self._walk) - 1) // _BLOCK
            steps = generator(self._seed, Stream.CLOCK, self._station, b).standard_normal(_BLOCK)
            grown = float(self._walk[-1]) + self._sigma_ps * np.cumsum(steps)
            self._walk = np.concatenate([self._walk, grown])  # W at grid 0, 1, 2, ...
        # Linear between grid seconds, one formula for every path (so results do not
        # depend on how a stream is cut into calls); a call window inside one grid second
        # (the usual case) needs no per-event lookup.
        walk = self._walk
        if j_lo == j_hi:
            w0, w1 = float(walk[j_lo]), float(walk[j_lo + 1])
            out: F64 = w0 + (w1 - w0) * (x - j_lo)
            return out
        j = np.floor(x).astype(np.intp)
        w0a, w1a = walk[j], walk[j + 1]
        out = w0a + (w1a - w0a) * (x - j)
        return out
