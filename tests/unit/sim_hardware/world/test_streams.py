"""Generated streams against closed-form expectations (within Poisson error)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.datatypes import AltAz
from sim_hardware.world import World, WorldConfig
from sim_hardware.world.config import BackgroundConfig, ClockConfig
from sim_hardware.world.emission import correlation
from sim_hardware.world.polframe import optics_parity

from .conftest import bright, variant
from .streams import match, on_target, predicted_b_ps, run

PS = 10**12


def _signal_sd(n: float, signal: float, sigma_ln: float, seconds: float) -> float:
    """Poisson plus slice-to-slice scintillation (100 independent slices per second)."""
    scint = math.sqrt(math.exp(sigma_ln**2) - 1.0)
    return math.sqrt(n + (scint * signal) ** 2 / (100 * seconds))


def test_counts_match_rate_times_transmittance(example: WorldConfig, t_pass: float) -> None:
    world = World(example, seed=3)
    t0, t1 = t_pass, t_pass + 1.0
    for name, st in zip(world.station_names, example.stations, strict=True):
        pointing = on_target(world, name, t0, t1)
        _, ch = world.detections(name, t0, t1, pointing=pointing, hwp_deg=0.0)
        exp = world.expected_rates(name, 0.5 * (t0 + t1), pointing=pointing, hwp_deg=0.0)
        for c in (1, 2, 3, 4):
            n = int(np.count_nonzero(ch == c))
            sd = _signal_sd(n, exp[f"signal_{c}"], st.scintillation_sigma_ln, 1.0)
            assert abs(n - exp[f"singles_{c}"]) < 5 * sd, (name, c, n, exp)
        assert int(np.count_nonzero(ch == 8)) == 1  # one PPS edge per second
        assert exp["signal_cps"] > 1000  # the pass really delivers photons


def test_pointing_offset_lowers_rate(example: WorldConfig, t_pass: float) -> None:
    world = World(example, seed=4)
    t0, t1 = t_pass, t_pass + 1.0
    los = on_target(world, "delingha", t0, t1)
    off = AltAz(los.az_deg, los.el_deg + 0.1)
    n_on = len(world.detections("delingha", t0, t1, pointing=los, hwp_deg=0.0)[0])
    n_off = len(world.detections("delingha", t0, t1, pointing=off, hwp_deg=0.0)[0])
    exp_on = world.expected_rates("delingha", t0 + 0.5, pointing=los, hwp_deg=0.0)
    exp_off = world.expected_rates("delingha", t0 + 0.5, pointing=off, hwp_deg=0.0)
    assert exp_off["coupling"] == pytest.approx(math.exp(-2.0), rel=1e-3)
    assert n_off < n_on - 10 * math.sqrt(n_on)
    sd = _signal_sd(n_off, exp_off["signal_cps"], 0.2, 1.0)
    assert abs(n_off - exp_off["singles_cps"] - 1) < 5 * sd
    # Tracking within 0.005 deg loses little (< 1 % of the signal).
    near = AltAz(los.az_deg, los.el_deg + 0.005)
    exp_near = world.expected_rates("delingha", t0 + 0.5, pointing=near, hwp_deg=0.0)
    assert exp_near["signal_cps"] > 0.99 * exp_on["signal_cps"]


def _coincidences(
    world: World, t0: float, t1: float, hwp_extra: tuple[float, float] = (0.0, 0.0)
) -> dict[tuple[int, int], int]:
    a, b = world.station_names
    ta, ca = run(world, a, t0, t1, hwp_extra=hwp_extra[0])
    tb, cb = run(world, b, t0, t1, hwp_extra=hwp_extra[1])
    sel_a, sel_b = ca <= 4, cb <= 4
    ta, ca, tb, cb = ta[sel_a], ca[sel_a], tb[sel_b], cb[sel_b]
    idx, off = match(predicted_b_ps(world, ta, t0, t1), tb, 500)
    hit = np.abs(off) < 500  # 1 ns window, ±2.4 sigma of the combined jitter
    counts: dict[tuple[int, int], int] = {}
    for x, y in zip(ca[hit], cb[idx[hit]], strict=True):
        counts[(int(x), int(y))] = counts.get((int(x), int(y)), 0) + 1
    return counts


def _e(counts: dict[tuple[int, int], int], arm_a: int, arm_b: int) -> tuple[float, int]:
    p_a, m_a = (1, 2) if arm_a == 0 else (3, 4)
    p_b, m_b = (1, 2) if arm_b == 0 else (3, 4)
    pp, mm = counts.get((p_a, p_b), 0), counts.get((m_a, m_b), 0)
    pm, mp = counts.get((p_a, m_b), 0), counts.get((m_a, p_b), 0)
    n = pp + mm + pm + mp
    return (pp + mm - pm - mp) / n, n


@pytest.mark.parametrize(("state", "b_shift"), [("psi+", 0.0), ("phi+", 0.0), ("phi+", 11.25)])
def test_correlations_follow_the_state(
    example: WorldConfig, t_pass: float, state: str, b_shift: float
) -> None:
    """E(a, b) from sampled coincidences = V·cos 2(a-b) (Φ+) or -V·cos 2(a+b) (Ψ+).

    The analyzer outputs measure the source-frame angles p·(β − 2·b_shift): each compensated
    station keeps the mirror of its plate (p = −1 without an optical train), and a plate turned
    by b_shift (Bell mode, 11.25 deg) turns the measured angle by −2·p·b_shift.
    """
    cfg = bright(example, state=state, visibility=0.9)
    p_a, p_b = (optics_parity(st.optical_train) for st in cfg.stations)
    world = World(cfg, seed=5)
    counts = _coincidences(world, t_pass, t_pass + 0.4, (0.0, b_shift))
    s_value = 0.0
    for arm_a, arm_b in ((0, 0), (0, 1), (1, 0), (1, 1)):
        e, n = _e(counts, arm_a, arm_b)
        a, b = p_a * 45.0 * arm_a, p_b * (45.0 * arm_b - 2.0 * b_shift)
        ideal = float(correlation(state, np.array([a]), b)[0])
        assert n > 300
        assert e == pytest.approx(0.9 * ideal, abs=0.06 + 4 * math.sqrt((1 - e * e) / n))
        s_value += math.copysign(1.0, ideal) * e
    if b_shift:
        assert s_value > 2.2  # CHSH violated in Bell mode: 2√2·V ≈ 2.55


def test_wrong_waveplate_raises_error_rate(example: WorldConfig, t_pass: float) -> None:
    """A HWP 5 deg off turns the frame by δ = 10 deg: QBER rises by V·sin²δ."""
    cfg = bright(example, visibility=0.95)
    t0, t1 = t_pass, t_pass + 0.3

    def qber(extra: float) -> tuple[float, int]:
        counts = _coincidences(World(cfg, seed=6), t0, t1, (extra, 0.0))
        # Ψ+: H/V anticorrelated, D/A correlated; errors are the "wrong" combinations.
        err = counts.get((1, 1), 0) + counts.get((2, 2), 0)
        err += counts.get((3, 4), 0) + counts.get((4, 3), 0)
        tot = err + counts.get((1, 2), 0) + counts.get((2, 1), 0)
        tot += counts.get((3, 3), 0) + counts.get((4, 4), 0)
        return err / tot, tot

    q_ok, n_ok = qber(0.0)
    q_bad, n_bad = qber(5.0)
    expected = 0.95 * math.sin(math.radians(10.0)) ** 2
    sd = math.sqrt(q_ok * (1 - q_ok) / n_ok + q_bad * (1 - q_bad) / n_bad)
    assert q_ok == pytest.approx(0.025, abs=4 * math.sqrt(0.025 / n_ok) + 0.005)
    assert q_bad - q_ok == pytest.approx(expected, abs=4 * sd)
    assert q_bad - q_ok > 0.015


def test_accidentals_match_singles_product(example: WorldConfig, t_pass: float) -> None:
    """In a window displaced from the true delay only accidentals remain: S_A·S_B·τ·T."""
    cfg = variant(
        bright(example),
        background=BackgroundConfig(night_sky_cps=2e6, moon_cps=0.0),
    )
    world = World(cfg, seed=7)
    t0, t1 = t_pass, t_pass + 0.2
    a, b = world.station_names
    ta, _ = run(world, a, t0, t1)
    tb, _ = run(world, b, t0, t1)
    tau_ps = 2000.0
    pred = predicted_b_ps(world, ta, t0, t1)
    true_hits = np.count_nonzero(np.abs(match(pred, tb, tau_ps)[1]) < tau_ps / 2)
    acc = np.count_nonzero(np.abs(match(pred + 100_000.0, tb, tau_ps)[1]) < tau_ps / 2)
    expected = len(ta) / 0.2 * len(tb) / 0.2 * tau_ps * 1e-12 * 0.2
    assert acc == pytest.approx(expected, abs=5 * math.sqrt(expected))
    assert true_hits > acc + 10 * math.sqrt(acc)  # the real pairs stand out at the true delay


def test_clock_offset_and_drift_in_pps(example: WorldConfig, t_pass: float) -> None:
    cfg = variant(
        example,
        source={"pair_rate_hz": 0.0},
        detectors={"dark_cps": (0.0, 0.0, 0.0, 0.0)},
        background=BackgroundConfig(night_sky_cps=0.0, moon_cps=0.0),
        clock=ClockConfig(offset_ns=1500.0, frequency_ppb=20.0),
    )
    world = World(cfg, seed=8)
    t0 = math.floor(t_pass)
    t, ch = world.detections("delingha", t0 - 0.5, t0 + 3.5, pointing=AltAz(0, 90), hwp_deg=0)
    assert list(ch) == [8, 8, 8, 8]
    since = (np.arange(t0, t0 + 4) - cfg.tagger_epoch) * PS
    expected = since + 1_500_000 + 20e-9 * since
    assert np.abs(t - expected).max() <= 1


def test_clock_random_walk_spreads_pps(example: WorldConfig, t_pass: float) -> None:
    cfg = variant(
        example,
        source={"pair_rate_hz": 0.0},
        detectors={"dark_cps": (0.0, 0.0, 0.0, 0.0)},
        background=BackgroundConfig(night_sky_cps=0.0, moon_cps=0.0),
        clock=ClockConfig(random_walk_ps_per_sqrt_s=100.0),
    )
    t, _ = World(cfg, seed=9).detections(
        "delingha", t_pass, t_pass + 400, pointing=AltAz(0, 90), hwp_deg=0
    )
    intervals = np.diff(t) - PS
    assert len(intervals) == 399
    assert np.std(intervals) == pytest.approx(100.0, rel=0.2)


def test_dead_time_respected(example: WorldConfig, t_pass: float) -> None:
    cfg = variant(bright(example), detectors={"afterpulse_prob": 0.0, "dead_time_ns": 50.0})
    world = World(cfg, seed=10)
    t, ch = run(world, "delingha", t_pass, t_pass + 0.2)
    for c in (1, 2, 3, 4):
        tc = t[ch == c]
        assert len(tc) > 1000
        assert np.diff(tc).min() >= 50_000 - 2  # clock drift may shave a ps


def test_afterpulses_add_counts(example: WorldConfig, t_pass: float) -> None:
    def counts(p_ap: float) -> int:
        cfg = variant(
            example,
            source={"pair_rate_hz": 0.0},
            detectors={"afterpulse_prob": p_ap, "dark_cps": (5e4, 5e4, 5e4, 5e4)},
            background=BackgroundConfig(night_sky_cps=0.0, moon_cps=0.0),
        )
        return len(run(World(cfg, seed=11), "delingha", t_pass, t_pass + 0.5)[0])

    base, more = counts(0.0), counts(0.05)
    assert more - base == pytest.approx(0.05 * base, rel=0.15)
