"""Known-answer synthetic two-station event streams (tests and benches).

Why: every offset / coincidence / QBER routine needs data whose answer is known exactly.
This module draws photon pairs from a Poisson process, puts one photon in station A and its
partner in station B through a clock model, and adds uncorrelated singles (dark counts,
background light, photons whose partner was lost) so that the *total* detected rates are the
requested singles rates.

Clock model (the convention of :mod:`station.analysis.offset`): the partner of an A event
at ``t_a`` appears in B at ``t_b = t_a + offset(t_a)`` with

    offset(t) = offset_ps + freq * (t - t_ref_ps) + w(t),

``w`` a differential random walk (two independent station clocks, each ~20 ps/sqrt(s) after
PPS discipline: the difference walks by sqrt(2) x that) with w(t_ref) = 0, plus a Gaussian
timing jitter per detector (FWHM ``jitter_fwhm_ps``; 350 ps is a typical SPAD + tagger, so the
A-B difference has sigma = sqrt(2) * 350 / 2.3548 ~ 210 ps).

Optional channels: each station has 4 detectors (passive BB84 analyzer: channel = 2*basis +
bit, bases 0 = H/V, 1 = D/A). Pairs from |Phi+> give equal bits when the bases match, with
an error probability ``qber``; unmatched bases and singles are uniformly random.

All times are int64 picoseconds; generation is vectorized numpy and reproducible per seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: FWHM -> sigma for a Gaussian.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class SyntheticStreams:
    """Two sorted int64 ps streams with the truth needed to check an analysis.

    ``pair_a[k]`` and ``pair_b[k]`` are the indices into ``t_a`` / ``t_b`` of the two photons
    of the k-th detected pair (sorted by A time). ``rw_t_ps`` / ``rw_ps`` sample the
    differential random walk (ps) at the pairs' emission times; :meth:`true_offset` gives the
    exact offset model (ps) at any time. ``ch_a`` / ``ch_b`` are the detector channels (0..3)
    when requested, else None.
    """

    t_a: NDArray[np.int64]
    t_b: NDArray[np.int64]
    pair_a: NDArray[np.int64]
    pair_b: NDArray[np.int64]
    offset_ps: float
    freq: float
    t_ref_ps: int
    rw_t_ps: NDArray[np.int64]
    rw_ps: NDArray[np.float64]
    jitter_sigma_ps: float
    duration_ps: int
    ch_a: NDArray[np.uint8] | None = None
    ch_b: NDArray[np.uint8] | None = None

    @property
    def n_pairs(self) -> int:
        """Number of detected pairs (both photons detected)."""
        return int(self.pair_a.size)

    def true_offset(self, t_ps: NDArray[np.int64] | int) -> NDArray[np.float64]:
        """Exact model offset (ps) at A times ``t_ps``: linear part + interpolated walk."""
        t = np.asarray(t_ps, dtype=np.int64)
        dt = (t - self.t_ref_ps).astype(np.float64)
        lin = self.offset_ps + self.freq * dt
        if self.rw_t_ps.size == 0:
            return np.asarray(lin, dtype=np.float64)
        walk = np.interp(
            (t - self.t_ref_ps).astype(np.float64),
            (self.rw_t_ps - self.t_ref_ps).astype(np.float64),
            self.rw_ps,
        )
        return np.asarray(lin + walk, dtype=np.float64)


def _random_walk(
    rng: np.random.Generator, t_ps: NDArray[np.int64], t_ref_ps: int, ps_per_sqrt_s: float
) -> NDArray[np.float64]:
    """Brownian motion sampled at sorted times ``t_ps`` (ps), pinned to 0 at ``t_ref_ps``."""
    if ps_per_sqrt_s == 0.0 or t_ps.size == 0:
        return np.zeros(t_ps.size, dtype=np.float64)
    dt_s = np.diff(t_ps, prepend=t_ps[0]).astype(np.float64) * 1e-12
    w = np.cumsum(rng.normal(0.0, 1.0, t_ps.size) * ps_per_sqrt_s * np.sqrt(dt_s))
    w_ref = np.interp(float(t_ref_ps), t_ps.astype(np.float64), w)
    return np.asarray(w - w_ref, dtype=np.float64)


def _poisson_times(
    rng: np.random.Generator, rate_hz: float, duration_ps: int, t0_ps: int
) -> NDArray[np.int64]:
    """Sorted uniform (Poisson-process) int64 ps times in [t0, t0 + duration)."""
    n = int(rng.poisson(max(rate_hz, 0.0) * duration_ps * 1e-12))
    return np.sort(rng.integers(t0_ps, t0_ps + duration_ps, n, dtype=np.int64))


def make_pair_streams(
    seed: int,
    *,
    duration_s: float,
    pair_rate_hz: float,
    singles_a_hz: float,
    singles_b_hz: float,
    offset_ps: float,
    freq: float,
    random_walk_ps_per_sqrt_s: float = 0.0,
    jitter_fwhm_ps: float = 350.0,
    t0_ps: int = 0,
    t_ref_ps: int | None = None,
    channels: bool = False,
    qber: float = 0.0,
) -> SyntheticStreams:
    """Draw two stations' detections over ``duration_s`` seconds starting at ``t0_ps``.

    ``pair_rate_hz``: detected pairs per second (both photons seen). ``singles_*_hz``: total
    detection rate per station (pairs included; must be >= the pair rate). ``offset_ps`` and
    ``freq`` (dimensionless, e.g. 1e-8 = 10 ppb) define the linear offset at ``t_ref_ps``
    (default ``t0_ps``); ``random_walk_ps_per_sqrt_s`` is the *differential* walk.
    B's times are not clipped: partners of A events near the edges may fall outside
    [t0, t0 + duration) on B's axis, as in real data.
    """
    if singles_a_hz < pair_rate_hz or singles_b_hz < pair_rate_hz:
        raise ValueError("singles rates must include the pairs: singles_*_hz >= pair_rate_hz")
    rng = np.random.default_rng(seed)
    duration_ps = round(duration_s * 1e12)
    t_ref = t0_ps if t_ref_ps is None else int(t_ref_ps)
    sigma = jitter_fwhm_ps / FWHM_PER_SIGMA

    # Pair emission times (A's clock) and the offset model at each.
    t_emit = _poisson_times(rng, pair_rate_hz, duration_ps, t0_ps)
    n_pairs = t_emit.size
    walk = _random_walk(rng, t_emit, t_ref, random_walk_ps_per_sqrt_s)
    off = offset_ps + freq * (t_emit - t_ref).astype(np.float64) + walk
    pa = t_emit + np.rint(rng.normal(0.0, sigma, n_pairs)).astype(np.int64)
    pb = t_emit + np.rint(off + rng.normal(0.0, sigma, n_pairs)).astype(np.int64)

    # Uncorrelated singles fill up the requested total rates.
    na = _poisson_times(rng, singles_a_hz - pair_rate_hz, duration_ps, t0_ps)
    nb = _poisson_times(rng, singles_b_hz - pair_rate_hz, duration_ps, t0_ps)

    all_a = np.concatenate([pa, na])
    all_b = np.concatenate([pb, nb])
    order_a = np.argsort(all_a, kind="stable")
    order_b = np.argsort(all_b, kind="stable")
    inv_a = np.empty_like(order_a)
    inv_a[order_a] = np.arange(order_a.size)
    inv_b = np.empty_like(order_b)
    inv_b[order_b] = np.arange(order_b.size)

    ch_a: NDArray[np.uint8] | None = None
    ch_b: NDArray[np.uint8] | None = None
    if channels:
        basis_a = rng.integers(0, 2, n_pairs)
        basis_b = rng.integers(0, 2, n_pairs)
        bit_a = rng.integers(0, 2, n_pairs)
        flip = rng.random(n_pairs) < qber
        same = basis_a == basis_b
        bit_b = np.where(same, bit_a ^ flip, rng.integers(0, 2, n_pairs))
        ca = np.concatenate([2 * basis_a + bit_a, rng.integers(0, 4, na.size)]).astype(np.uint8)
        cb = np.concatenate([2 * basis_b + bit_b, rng.integers(0, 4, nb.size)]).astype(np.uint8)
        ch_a = ca[order_a]
        ch_b = cb[order_b]

    pair_a = inv_a[:n_pairs].astype(np.int64)
    pair_b = inv_b[:n_pairs].astype(np.int64)
    by_a = np.argsort(pair_a, kind="stable")
    return SyntheticStreams(
        t_a=np.ascontiguousarray(all_a[order_a]),
        t_b=np.ascontiguousarray(all_b[order_b]),
        pair_a=pair_a[by_a],
        pair_b=pair_b[by_a],
        offset_ps=float(offset_ps),
        freq=float(freq),
        t_ref_ps=t_ref,
        rw_t_ps=t_emit,
        rw_ps=walk,
        jitter_sigma_ps=float(sigma * np.sqrt(2.0)),
        duration_ps=duration_ps,
        ch_a=ch_a,
        ch_b=ch_b,
    )
