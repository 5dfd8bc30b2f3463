"""Time transfer from PPS edges: synthetic clocks with a known answer, and the rig's world."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.config import load_toml
from sim_hardware.world import World, load_world_config
from station.analysis.errors import NoTimeReference
from station.analysis.timetransfer import Anchor, TimeTransfer, fit_pps, from_anchor

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
PS = 10**12
EPOCH = 1_619_715_600  # tagger epoch: 2021-04-29T17:00:00Z (POSIX s)
RIG = Path(__file__).resolve().parents[4] / "configs" / "rig" / "delingha_lijiang.toml"


@dataclass(frozen=True)
class Clock:
    """reading(t) = (t − EPOCH)·1e12 + offset + f·(t − EPOCH)·1e12 + W(t − EPOCH), W a random
    walk on a 1 s grid, linear in between (the model of the rig's tagger)."""

    offset_ps: float
    frequency: float
    walk: F64  # W at whole seconds since EPOCH

    @classmethod
    def make(
        cls, rng: np.random.Generator, n_s: int, offset_ps: float, f: float, sigma: float
    ) -> Clock:
        steps = rng.standard_normal(n_s + 2) * sigma
        return cls(offset_ps, f, np.concatenate([[0.0], np.cumsum(steps)]))

    def error_ps(self, since_epoch_ps: I64) -> F64:
        s = since_epoch_ps.astype(np.float64) / PS
        w = np.interp(s, np.arange(self.walk.size, dtype=np.float64), self.walk)
        out: F64 = self.offset_ps + self.frequency * s * PS + w
        return out

    def read(self, since_epoch_ps: I64) -> I64:
        out: I64 = since_epoch_ps + np.rint(self.error_ps(since_epoch_ps)).astype(np.int64)
        return out


def synthetic(
    seed: int,
    *,
    start_s: int = 1320,
    n_s: int = 300,
    jitter_ps: float = 50.0,
    f: float = 15e-9,
    sigma: float = 20.0,
    missing: float = 0.1,
    extra: int = 20,
    doubles: int = 0,
) -> tuple[Clock, I64, np.random.Generator]:
    """PPS readings for true seconds start_s .. start_s + n_s (since EPOCH), some missing,
    some spurious extra edges anywhere, and ``doubles`` re-triggers 0.2–20 ns after a true
    edge (ringing on the PPS cable)."""
    rng = np.random.default_rng(seed)
    clock = Clock.make(rng, start_s + n_s + 10, 1.2e6, f, sigma)
    secs = np.arange(start_s, start_s + n_s, dtype=np.int64)
    secs = secs[rng.random(secs.size) >= missing]
    true_ps = secs * PS + np.rint(rng.standard_normal(secs.size) * jitter_ps).astype(np.int64)
    spurious = rng.integers(start_s * PS, (start_s + n_s) * PS, size=extra)
    if doubles and true_ps.size:
        parents = rng.choice(true_ps, size=doubles)
        spurious = np.concatenate([spurious, parents + rng.integers(200, 20_000, size=doubles)])
    pps = np.sort(np.concatenate([clock.read(true_ps), clock.read(np.sort(spurious))]))
    return clock, pps, rng


def anchor_for(clock: Clock, error_s: float = 0.3) -> Anchor:
    """The station-computer anchor: reading at true second 1000, its UTC off by ``error_s``."""
    r = int(clock.read(np.array([1000 * PS]))[0])
    return Anchor(r, EPOCH + 1000 + error_s, 0.4)


def mapping_errors(
    tt: TimeTransfer, clock: Clock, rng: np.random.Generator, lo: int, hi: int
) -> F64:
    """Mapped − true (ps) for random events in true seconds [lo, hi) since EPOCH."""
    true_ps = np.sort(rng.integers(lo * PS, hi * PS, size=20_000))
    mapped = tt.to_utc_ps(clock.read(true_ps), EPOCH)
    out: F64 = (mapped - true_ps).astype(np.float64)
    return out


def test_pps_fit_recovers_clock_and_maps_within_bound() -> None:
    clock, pps, rng = synthetic(1)
    tt = fit_pps(pps, anchor_for(clock))
    assert tt.method == "pps"
    assert tt.frequency == pytest.approx(15e-9, abs=3e-10)  # walk over 300 s: ~1e-10
    assert tt.edges_rejected >= 20
    assert tt.edges_used >= 250
    err = mapping_errors(tt, clock, rng, 1321, 1618)
    # jitter 50 ps at both neighbouring edges (interpolated: ≤ 50) ⊕ walk bridge ≤ 10 ps
    # (√(1/4)·20) ⊕ missing-edge gaps: rms ≲ 45 ps, and the stated 1σ covers it
    assert float(np.sqrt(np.mean(err**2))) < 60.0
    assert float(np.max(np.abs(err))) < 6.0 * tt.uncertainty_ps
    assert 20.0 < tt.uncertainty_ps < 100.0


def test_random_walk_and_jitter_estimates() -> None:
    clock, pps, _ = synthetic(2, n_s=600, sigma=20.0, jitter_ps=50.0, missing=0.05)
    tt = fit_pps(pps, anchor_for(clock))
    assert tt.random_walk_ps_per_sqrt_s == pytest.approx(20.0, rel=0.35)
    assert tt.jitter_ps == pytest.approx(50.0, rel=0.35)


def test_integer_second_from_a_coarse_anchor() -> None:
    """The anchor only names the second: ±0.4 s of error still lands on the right one."""
    clock, pps, rng = synthetic(3)
    for error_s in (-0.4, 0.0, 0.4):
        tt = fit_pps(pps, anchor_for(clock, error_s))
        err = mapping_errors(tt, clock, rng, 1330, 1340)
        assert float(np.max(np.abs(err))) < 500.0


def test_extrapolation_beyond_the_edges_follows_the_frequency() -> None:
    clock, pps, rng = synthetic(4, sigma=0.0)
    tt = fit_pps(pps, anchor_for(clock))
    err = mapping_errors(tt, clock, rng, 1650, 1660)  # 30-60 s after the last edge
    assert float(np.max(np.abs(err))) < 500.0
    assert np.all(tt.uncertainty_at_ps(clock.read(np.array([1655 * PS]))) > 0)


def test_sorted_fast_path_equals_the_general_path() -> None:
    """Sorted readings take the per-interval path; shuffled ones the per-event gather. Both
    must give the same int64 answer, also before the first and after the last edge."""
    clock, pps, rng = synthetic(6)
    tt = fit_pps(pps, anchor_for(clock))
    t = np.sort(clock.read(rng.integers(1300 * PS, 1640 * PS, size=5000)))
    perm = rng.permutation(t.size)
    assert np.array_equal(tt.to_utc_ps(t, EPOCH)[perm], tt.to_utc_ps(t[perm], EPOCH))


def test_mapping_is_int64_exact_far_from_the_reference() -> None:
    """Readings days from the reference second: no float64 loss in the mapped times."""
    clock = Clock(0.0, 0.0, np.zeros(4))
    tt = from_anchor(Anchor(0, float(EPOCH), 0.001))
    t = np.array([3 * 86400 * PS + 123_456_789, 3 * 86400 * PS + 123_456_790], dtype=np.int64)
    out = tt.to_utc_ps(clock.read(t), EPOCH)
    assert out.dtype == np.int64
    assert np.array_equal(out, t)


def test_without_pps_the_anchor_maps_and_widens() -> None:
    anchor = Anchor(5 * PS, EPOCH + 5.25, 0.5)
    tt = fit_pps(np.empty(0, np.int64), anchor, freq_uncertainty=1e-6)
    assert tt.method == "anchor"
    out = tt.to_utc_ps(np.array([5 * PS, 105 * PS], dtype=np.int64), EPOCH)
    assert out[0] == int(5.25 * PS)
    assert out[1] == int(105.25 * PS)
    u = tt.uncertainty_at_ps(np.array([5 * PS, 1005 * PS], dtype=np.int64))
    assert u[0] == pytest.approx(0.5 * PS)
    assert u[1] == pytest.approx(np.hypot(0.5 * PS, 1e-6 * 1000 * PS))
    with pytest.raises(NoTimeReference):
        from_anchor(Anchor(0, float("nan"), 0.5))


def test_only_spurious_edges_fall_back_to_the_anchor() -> None:
    rng = np.random.default_rng(5)
    junk = np.sort(rng.integers(0, 30 * PS, size=2))
    tt = fit_pps(junk, Anchor(0, float(EPOCH), 0.5))
    assert tt.method == "anchor"


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    missing=st.floats(0.0, 0.5),
    extra=st.integers(0, 150),
    f=st.floats(-5e-7, 5e-7),
    doubles=st.integers(0, 10),
)
def test_property_missing_extra_edges_never_break_the_map(
    seed: int, missing: float, extra: int, f: float, doubles: int
) -> None:
    clock, pps, rng = synthetic(seed, n_s=120, missing=missing, extra=extra, f=f, doubles=doubles)
    tt = fit_pps(pps, anchor_for(clock))
    assert tt.method == "pps"
    err = mapping_errors(tt, clock, rng, 1325, 1435)
    assert float(np.max(np.abs(err))) < 400.0  # ≪ 1 ns; a spurious edge kept would be µs


@pytest.mark.parametrize(("station", "freq"), [("delingha", 15e-9), ("lijiang", -10e-9)])
def test_rig_world_pps_maps_to_true_utc(station: str, freq: float) -> None:
    """The emulator's own clock model (offsets +1.2/−0.8 µs: the PPS phase sits on either
    side of the 1 s wrap; ±15 ppb, 20 ps/√s, 50 ps PPS jitter)."""
    world = World(load_world_config(load_toml(RIG)), seed=1)
    t0 = float(EPOCH + 600)  # satellite below the horizon: few events, fast
    los = world.line_of_sight(station, t0)
    times, chans = world.detections(
        station, t0, t0 + 120.0, pointing=los, hwp_deg=0.0, channels_enabled=frozenset({8})
    )
    pps = times[chans == 8]
    assert 100 <= pps.size <= 121
    tt = fit_pps(pps, Anchor(0, float(EPOCH), 0.2))
    assert tt.frequency == pytest.approx(freq, abs=1e-9)
    truth_s = t0 + np.array([10.3, 55.7, 99.01])
    err = []
    for t in truth_s:
        reading = round((t - EPOCH) * PS + world.truth(station, t)["clock_error_s"] * PS)
        mapped = tt.to_utc_ps(np.array([reading], dtype=np.int64), EPOCH)[0]
        err.append(mapped - round((t - EPOCH) * PS))
    assert max(abs(e) for e in err) < 300
