"""A station tagger's timescale: offset, frequency error and random walk against true time.

reading(t) = t + offset + f·(t - epoch) + W(t - epoch)

W is a random walk (Wiener process) of ``random_walk_ps_per_sqrt_s`` ps/√s, sampled on a
1 s grid from ``epoch`` and linearly interpolated between samples (a Brownian bridge would
add sub-grid wiggles of order σ·√(1 s)/2; irrelevant against ns coincidence windows). W = 0
before the epoch. Grid increments come from an RNG keyed by (seed, station, block of 4096
steps), so W(t) is the same whatever order it is asked in. The map is strictly increasing
for |f| < 1, so time order is preserved.

:meth:`StationClock.readings_ps` maps whole event streams: within grid second j the error is
affine in the exact integer offset into that second, so each event costs one multiply-add
with coefficients that depend on j only (never on how the stream was cut into calls).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from sim_hardware.world.config import ClockConfig
from sim_hardware.world.rng import Stream, generator

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_BLOCK = 4096
_PS = 10**12


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

    def readings_ps(self, origin_ps: int, t_rel: I64) -> I64:
        """Readings (ps since the epoch) at true times ``origin_ps + t_rel`` (ps since the
        epoch): true time + rint(error). ``t_rel`` must be sorted ascending, |t_rel| < 2^52;
        it is overwritten with the readings (one float temporary, no other array)."""
        if t_rel.size == 0:
            t_rel += origin_ps
            return t_rel
        j_lo = (origin_ps + int(t_rel[0])) // _PS
        j_hi = (origin_ps + int(t_rel[-1])) // _PS
        if self._sigma_ps > 0.0 and j_hi >= 0:
            self._grow_walk(j_hi + 2)
        seconds = np.arange(j_lo + 1, j_hi + 1, dtype=np.int64) * _PS - origin_ps
        edges = [0, *np.searchsorted(t_rel, seconds).tolist(), t_rel.size]
        for j, lo, hi in zip(range(j_lo, j_hi + 1), edges[:-1], edges[1:], strict=True):
            if hi == lo:
                continue
            offset, slope = self._affine(j)
            seg = t_rel[lo:hi]
            # x = ps into second j: exact in float64 (both terms are integers < 2^53), so
            # the error depends on the event's time only, never on the call's origin.
            err = np.add(seg, float(origin_ps - j * _PS), dtype=np.float64)
            err *= slope
            err += offset
            np.rint(err, out=err)
            np.add(seg, err, out=seg, casting="unsafe")  # integers < 2^53: exact
        t_rel += origin_ps
        return t_rel

    def _affine(self, j: int) -> tuple[float, float]:
        """Error (ps) in grid second j as offset + slope·x, x = ps since the second began."""
        w0 = w1 = 0.0
        if self._sigma_ps > 0.0 and j >= 0:
            w0, w1 = float(self._walk[j]), float(self._walk[j + 1])
        offset = self._offset_ps + self._freq * (j * _PS) + w0
        return offset, self._freq + (w1 - w0) / _PS

    def _grow_walk(self, need: int) -> None:
        """Extend W to grid seconds 0 .. need - 1, block by block (never order-dependent)."""
        while len(self._walk) < need:
            b = (len(self._walk) - 1) // _BLOCK
            steps = generator(self._seed, Stream.CLOCK, self._station, b).standard_normal(_BLOCK)
            grown = float(self._walk[-1]) + self._sigma_ps * np.cumsum(steps)
            self._walk = np.concatenate([self._walk, grown])  # W at grid 0, 1, 2, ...

    def _walk_ps(self, s: F64) -> F64:
        x = np.maximum(s, 0.0)
        j_lo, j_hi = math.floor(float(np.min(x))), math.floor(float(np.max(x)))
        self._grow_walk(j_hi + 2)
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
