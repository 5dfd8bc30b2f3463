"""Sign conventions and estimators of E, QBER, visibility and CHSH on known states.

The expected counts are computed here from the two-photon state vector and projections on
linear polarization states (Born rule), not from the closed-form E(a,b) the module uses, so
a sign or factor-two slip in either shows up. Mirrors are modelled as in DESIGN.md: a
mirrored station at analyzer angle β measures the source-frame angle −β.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.datatypes import ChannelMap
from station.analysis.coincidences import accidentals, count_matrix, match, window_from_width
from station.analysis.errors import AnalysisError
from station.analysis.statistics import (
    C_M_PER_S,
    binned_counts,
    car_series,
    chsh,
    correlations,
    ideal_correlation,
    locality_margin,
    predicted_s,
    qber,
    subtract_accidentals,
    summarise,
)

F64 = npt.NDArray[np.float64]
ROOT2 = math.sqrt(2.0)

STATES: dict[str, F64] = {
    # Basis order |HH>, |HV>, |VH>, |VV>.
    "phi+": np.array([1.0, 0.0, 0.0, 1.0]) / ROOT2,
    "psi+": np.array([0.0, 1.0, 1.0, 0.0]) / ROOT2,
}


def _pol(angle_deg: float) -> F64:
    r = math.radians(angle_deg)
    return np.array([math.cos(r), math.sin(r)])


def joint_probabilities(state: str, a_deg: float, b_deg: float) -> F64:
    """P(x, y) for x, y in (+, −): Born rule on the state vector (2x2, rows A's outcome)."""
    p = np.empty((2, 2))
    for x, alpha in enumerate((a_deg, a_deg + 90.0)):
        for y, beta in enumerate((b_deg, b_deg + 90.0)):
            amp = float(np.kron(_pol(alpha), _pol(beta)) @ STATES[state])
            p[x, y] = amp * amp
    return p


def expected_matrix(
    state: str,
    angles_a: tuple[float, float],
    angles_b: tuple[float, float],
    *,
    pairs: float = 40_000.0,
    visibility: float = 1.0,
) -> F64:
    """Mean 4x4 counts: passive 50/50 arm choice at each station, Werner noise 1 − V."""
    m = np.empty((4, 4))
    for i in range(2):
        for j in range(2):
            p = visibility * joint_probabilities(state, angles_a[i], angles_b[j])
            p += (1.0 - visibility) / 4.0
            m[2 * i : 2 * i + 2, 2 * j : 2 * j + 2] = pairs / 4.0 * p
    return m


def neg(angles: tuple[float, float]) -> tuple[float, float]:
    return (-angles[0], -angles[1])


# --------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("state", ["phi+", "psi+"])
@pytest.mark.parametrize("a", [0.0, 17.0, 45.0, -30.0])
@pytest.mark.parametrize("b", [0.0, 22.5, -67.5, 80.0])
def test_ideal_correlation_agrees_with_born_rule(state: str, a: float, b: float) -> None:
    p = joint_probabilities(state, a, b)
    e_born = p[0, 0] + p[1, 1] - p[0, 1] - p[1, 0]
    assert ideal_correlation(a, b, state) == pytest.approx(e_born, abs=1e-12)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(a=st.floats(-180, 180), b=st.floats(-180, 180))
def test_mirror_rules(a: float, b: float) -> None:
    """psi+: mirror at both stations leaves E; at one station E becomes −cos 2(b − a)."""
    e = ideal_correlation(a, b, "psi+")
    assert ideal_correlation(-a, -b, "psi+") == pytest.approx(e, abs=1e-12)
    one = -math.cos(math.radians(2 * (b - a)))
    assert ideal_correlation(-a, b, "psi+") == pytest.approx(one, abs=1e-12)
    assert ideal_correlation(a, -b, "psi+") == pytest.approx(one, abs=1e-12)


def test_unknown_state_rejected() -> None:
    with pytest.raises(ValueError, match="psi"):
        ideal_correlation(0, 0, "singlet")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- key mode


KEY_CASES = [
    ("phi+", (0.0, 45.0), (0.0, 45.0)),
    ("psi+", (0.0, 45.0), (0.0, -45.0)),  # psi+: D at one side pairs with −45 on the other
    ("psi+", neg((0.0, 45.0)), neg((0.0, 45.0))),  # both stations mirrored: still anti-corr.
    ("psi+", neg((0.0, 45.0)), (0.0, 45.0)),  # one mirrored: E = −cos 2(b − a), key bases
    ("phi+", neg((0.0, 45.0)), (0.0, -45.0)),
]


@pytest.mark.parametrize(("state", "angles_a", "angles_b"), KEY_CASES)
def test_perfect_correlations_give_zero_qber(
    state: str, angles_a: tuple[float, float], angles_b: tuple[float, float]
) -> None:
    m = expected_matrix(state, angles_a, angles_b)
    q = qber(m, angles_a, angles_b, state)  # type: ignore[arg-type]
    assert q.qber == pytest.approx(0.0, abs=1e-12)
    assert q.visibility == pytest.approx(1.0)
    assert {(b.arm_a, b.arm_b) for b in q.bases} == {(0, 0), (1, 1)}
    assert q.n == pytest.approx(m[:2, :2].sum() + m[2:, 2:].sum())


@pytest.mark.parametrize("v", [0.9, 0.75])
def test_qber_and_visibility_of_werner_state(v: float) -> None:
    a, b = (0.0, 45.0), (0.0, -45.0)
    m = expected_matrix("psi+", a, b, visibility=v)
    q = qber(m, a, b, "psi+")
    assert q.qber == pytest.approx((1 - v) / 2)
    assert q.visibility == pytest.approx(v)
    for basis in q.bases:
        assert basis.sigma_qber == pytest.approx(math.sqrt(basis.qber * (1 - basis.qber) / basis.n))


def test_wrong_angles_give_large_qber_not_zero() -> None:
    """A mirror the analysis wrongly assumes flips the D/A basis: QBER 1 there, 0 in H/V."""
    m = expected_matrix("psi+", (0.0, 45.0), (0.0, 45.0))
    q = qber(m, (0.0, 45.0), (0.0, -45.0), "psi+")  # analysis assumes the mirror
    by_arm = {(b.arm_a, b.arm_b): b.qber for b in q.bases}
    assert by_arm[(0, 0)] == pytest.approx(0.0, abs=1e-12)
    assert by_arm[(1, 1)] == pytest.approx(1.0)


def test_qber_needs_a_key_basis() -> None:
    a, b = (0.0, 45.0), (22.5, 67.5)
    with pytest.raises(AnalysisError, match="no key basis"):
        qber(expected_matrix("phi+", a, b), a, b, "phi+")


# --------------------------------------------------------------------------- Bell mode


BELL_CASES = [
    ("phi+", (0.0, 45.0), (22.5, 67.5)),
    ("psi+", (0.0, 45.0), (-22.5, -67.5)),
    ("psi+", neg((0.0, 45.0)), neg((-22.5, -67.5))),  # both mirrored
    ("psi+", neg((0.0, 45.0)), (22.5, 67.5)),  # station A mirrored only
    ("phi+", (0.0, 45.0), (-22.5, 22.5)),
]


@pytest.mark.parametrize(("state", "angles_a", "angles_b"), BELL_CASES)
def test_ideal_bell_configuration_gives_two_root_two(
    state: str, angles_a: tuple[float, float], angles_b: tuple[float, float]
) -> None:
    m = expected_matrix(state, angles_a, angles_b)
    r = chsh(m, angles_a, angles_b, state)  # type: ignore[arg-type]
    assert r.s == pytest.approx(2 * ROOT2)
    assert r.s_ideal == pytest.approx(2 * ROOT2)
    assert math.prod(r.signs) == -1
    assert r.violation_sigma > 10


@pytest.mark.parametrize("v", [0.95, 0.6])
def test_werner_s_and_bellscript_sigma(v: float) -> None:
    a, b = (0.0, 45.0), (22.5, 67.5)
    m = expected_matrix("phi+", a, b, visibility=v, pairs=10_000)
    r = chsh(m, a, b, "phi+")
    assert r.s == pytest.approx(predicted_s(v))
    assert r.visibility == pytest.approx(v)
    # bellscript (reference/timetag.md §1.5): σ_S = 2·sqrt(Σ N_same·N_diff / n³).
    bs = 0.0
    for i in range(2):
        for j in range(2):
            blk = m[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            same, diff = blk[0, 0] + blk[1, 1], blk[0, 1] + blk[1, 0]
            bs += same * diff / (same + diff) ** 3
    assert r.sigma_s == pytest.approx(2 * math.sqrt(bs))
    assert r.violation_sigma == pytest.approx((abs(r.s) - 2) / r.sigma_s)


def test_sigma_s_matches_multinomial_scatter() -> None:
    """σ_S predicts the spread of S over repeated experiments (400 multinomial draws)."""
    a, b = (0.0, 45.0), (22.5, 67.5)
    mean = expected_matrix("phi+", a, b, visibility=0.9, pairs=4_000)
    rng = np.random.default_rng(7)
    draws = rng.multinomial(4_000, (mean / mean.sum()).ravel(), size=400).reshape(-1, 4, 4)
    s = np.array([chsh(d, a, b, "phi+").s for d in draws])
    sigma = chsh(mean, a, b, "phi+").sigma_s
    assert float(np.mean(s)) == pytest.approx(predicted_s(0.9), abs=4 * sigma / math.sqrt(400))
    assert float(np.std(s)) == pytest.approx(sigma, rel=0.15)


def test_chsh_rejects_non_bell_and_degenerate_sign_patterns() -> None:
    key = ((0.0, 45.0), (0.0, 45.0))
    with pytest.raises(AnalysisError, match="not a Bell configuration"):
        chsh(expected_matrix("phi+", *key), *key, "phi+")
    # Arms 90° apart at A: all |E| = 1/√2 but the signs multiply to +1 (no CHSH bound).
    bad = ((0.0, 90.0), (22.5, 67.5))
    with pytest.raises(AnalysisError, match="not a CHSH expression"):
        chsh(expected_matrix("phi+", *bad), *bad, "phi+")


def test_correlations_known_counts() -> None:
    m = np.zeros((4, 4))
    m[0:2, 0:2] = [[40, 10], [5, 45]]  # E = (85 − 15)/100
    c = correlations(m, (0.0, 45.0), (0.0, 45.0), "phi+")
    assert c[0].e == pytest.approx(0.7)
    assert c[0].sigma_e == pytest.approx(math.sqrt((1 - 0.49) / 100))
    assert math.isnan(c[1].e)  # no counts in that arm pair
    with pytest.raises(ValueError, match="4x4"):
        correlations(np.zeros((3, 4)), (0.0, 45.0), (0.0, 45.0), "phi+")


def test_accidental_subtraction_restores_the_state() -> None:
    a, b = (0.0, 45.0), (22.5, 67.5)
    true = expected_matrix("phi+", a, b)
    acc = np.full((4, 4), 120.0)
    raw = true + acc
    assert chsh(raw, a, b, "phi+").s < 2 * ROOT2 - 0.01
    assert chsh(subtract_accidentals(raw, acc), a, b, "phi+").s == pytest.approx(2 * ROOT2)


def test_summarise_picks_the_mode() -> None:
    key = ((0.0, 45.0), (0.0, 45.0))
    acc = np.full((4, 4), 50.0)
    k = summarise(
        expected_matrix("phi+", *key, visibility=0.9) + acc, *key, "phi+", accidentals_matrix=acc
    )
    assert k.chsh is None
    assert k.qber is not None
    assert k.qber_corrected is not None
    assert k.qber_corrected.qber == pytest.approx(0.05)
    assert k.qber.qber > k.qber_corrected.qber
    bell = ((0.0, 45.0), (22.5, 67.5))
    b = summarise(expected_matrix("phi+", *bell), *bell, "phi+")
    assert b.qber is None
    assert b.chsh is not None
    assert b.chsh.s == pytest.approx(2 * ROOT2)
    assert b.chsh_corrected is None
    odd = ((0.0, 45.0), (10.0, 55.0))
    with pytest.raises(AnalysisError, match="neither a key basis"):
        summarise(expected_matrix("phi+", *odd), *odd, "phi+")


def test_end_to_end_streams_to_s() -> None:
    """Pairs drawn from the Born-rule probabilities, timed, matched, binned, then S."""
    rng = np.random.default_rng(21)
    a, b = (0.0, 45.0), (22.5, 67.5)
    n = 20_000
    ta = np.cumsum(rng.integers(200_000, 2_000_000, n)).astype(np.int64)
    tb = ta + 5_000 + rng.integers(-300, 301, n)
    arm_a, arm_b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    out_a = np.empty(n, dtype=np.int64)
    out_b = np.empty(n, dtype=np.int64)
    for i in range(2):
        for j in range(2):
            sel = np.flatnonzero((arm_a == i) & (arm_b == j))
            p = joint_probabilities("phi+", a[i], b[j]).ravel()
            xy = rng.choice(4, size=sel.size, p=p)
            out_a[sel], out_b[sel] = xy // 2, xy % 2
    map_a = ChannelMap(h=1, v=2, d=3, a=4)
    map_b = ChannelMap(h=8, v=7, d=6, a=5)
    chan_a = np.array([map_a.h, map_a.v, map_a.d, map_a.a], dtype=np.uint8)
    chan_b = np.array([map_b.h, map_b.v, map_b.d, map_b.a], dtype=np.uint8)
    ca = chan_a[2 * arm_a + out_a]
    cb = chan_b[2 * arm_b + out_b]
    pairs = match(ta, tb, window_ps=1_000, shift_ps=5_000)
    assert len(pairs) == n
    m = count_matrix(ca[pairs.idx_a], cb[pairs.idx_b], map_a, map_b)
    r = chsh(m, a, b, "phi+")
    assert abs(r.s - 2 * ROOT2) < 4 * r.sigma_s
    assert r.violation_sigma > 20


# --------------------------------------------------------------------------- locality, CAR


def test_locality_margin_known_answer() -> None:
    d = 1_200e3
    light = d / C_M_PER_S * 1e12  # ≈ 4.0 ms
    t0 = 10**15  # large common-UTC epoch: the int64 difference stays exact
    ta = np.array([t0, t0 + 10**9, t0 + 2 * 10**9], dtype=np.int64)
    tb = ta + np.array([0, 3 * 10**9, -5 * 10**9], dtype=np.int64)
    m = locality_margin(ta, tb, d)
    assert m.light_time_ps == pytest.approx(4.0027e9, rel=1e-4)
    assert m.min_ps == pytest.approx(light - 5e9)
    assert m.median_ps == pytest.approx(light - 3e9)
    assert m.max_ps == pytest.approx(light)
    assert m.fraction_spacelike == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="distance"):
        locality_margin(ta, tb, 0.0)


def test_car_series_known_answer() -> None:
    s = 10**12  # 1 s bins
    pairs = np.array([0, 1, 2, s + 5, 2 * s + 1, 2 * s + 2], dtype=np.int64)
    edges, counts = binned_counts(pairs, start_ps=0, stop_ps=3 * s, bin_ps=s)
    np.testing.assert_array_equal(counts, [3, 1, 2])
    np.testing.assert_array_equal(edges, [0, s, 2 * s, 3 * s])
    r = car_series(pairs, np.array([0.5, 0.0, 1.0]), start_ps=0, stop_ps=3 * s, bin_ps=s)
    np.testing.assert_allclose(r.car[[0, 2]], [5.0, 1.0])
    assert math.isnan(r.car[1])
    np.testing.assert_allclose(r.coincidence_rate_cps, [3.0, 1.0, 2.0])
    np.testing.assert_allclose(r.accidental_rate_cps, [0.5, 0.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        car_series(pairs, np.zeros(2), start_ps=0, stop_ps=3 * s, bin_ps=s)


def test_synthetic_streams_qber_through_the_whole_chain() -> None:
    """station.analysis.synthetic (another author's generator): known pairs and QBER 3 %."""
    from station.analysis.synthetic import make_pair_streams

    s = make_pair_streams(
        4,
        duration_s=1.0,
        pair_rate_hz=20e3,
        singles_a_hz=300e3,
        singles_b_hz=300e3,
        offset_ps=12_345.0,
        freq=0.0,
        channels=True,
        qber=0.03,
    )
    assert s.ch_a is not None
    assert s.ch_b is not None
    window = window_from_width(s.jitter_sigma_ps)
    pairs = match(s.t_a, s.t_b, window_ps=window, shift_ps=12_345)
    found = set(zip(pairs.idx_a.tolist(), pairs.idx_b.tolist(), strict=True))
    truth = set(zip(s.pair_a.tolist(), s.pair_b.tolist(), strict=True))
    assert len(found & truth) > 0.99 * len(truth)
    cmap = ChannelMap(h=0, v=1, d=2, a=3)  # the generator's channel = 2·basis + bit
    m = count_matrix(s.ch_a[pairs.idx_a], s.ch_b[pairs.idx_b], cmap, cmap)
    est = accidentals(
        s.t_a,
        s.t_b,
        window_ps=window,
        shift_ps=12_345,
        displacements_ps=[k * 20_000 for k in (-3, -2, -1, 1, 2, 3)],
        ch_a=s.ch_a,
        ch_b=s.ch_b,
        channels_a=cmap,
        channels_b=cmap,
    )
    assert est.matrix is not None
    key = ((0.0, 45.0), (0.0, 45.0))
    summary = summarise(m, *key, "phi+", accidentals_matrix=est.matrix)
    assert summary.qber is not None
    assert summary.qber_corrected is not None
    q_raw, q_corr = summary.qber, summary.qber_corrected
    # Accidentals add ½·A/(C + A) to the QBER (physics.md §4); subtracting them removes it.
    acc_key = float(est.matrix[:2, :2].sum() + est.matrix[2:, 2:].sum())
    expected_raw = (0.03 * (q_raw.n - acc_key) + 0.5 * acc_key) / q_raw.n
    assert abs(q_raw.qber - expected_raw) < 4 * q_raw.sigma_qber
    assert abs(q_corr.qber - 0.03) < 4 * q_corr.sigma_qber
