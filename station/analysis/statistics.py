"""Correlation statistics from the 4x4 coincidence matrix: E(a,b), QBER, visibility, CHSH S.

Conventions (DESIGN.md "Physics conventions"):

* The matrix has rows A's (H, V, D, A) and columns B's (H, V, D, A) outputs, as
  :func:`station.analysis.coincidences.count_matrix` builds it. Each station has two passive
  arms: arm 0 = (H, V), arm 1 = (D, A). The first output of an arm is its "+" outcome, the
  second its "−" outcome.
* Each arm is described by the *effective source-frame angle* of its "+" output, in degrees:
  ``angles_a = (a0, a1)``, ``angles_b = (b0, b1)``; the "−" output is the orthogonal
  projection (angle + 90°). Mirrors (the half-wave plate's reflection, telescope mirrors)
  are the caller's business: a station whose optical train mirrors the frame measures the
  source-frame angle −β with its analyzer at β, and passes the negated angles here.
* The source state is ``"phi+"`` (E(a,b) = cos 2(a−b)) or ``"psi+"`` (E(a,b) = −cos 2(a+b)).

Estimators (reference/physics.md §4 "Count, coincidence, QBER and CHSH model"):

* E = (N++ + N−− − N+− − N−+)/N, σ_E = sqrt((1 − E²)/N) (binomial; equal to bellscript's
  2·sqrt(N_same·N_diff/N³), reference/timetag.md §1.5).
* Key bases (|E_ideal| ≈ 1): errors are the outcomes disagreeing with sign(E_ideal);
  QBER Q = errors/N, visibility V = 1 − 2Q.
* Bell configuration (all four |E_ideal| ≈ 1/√2): S = Σ_k sign(E_ideal,k)·E_k, valid as a
  CHSH expression only if the product of the four signs is −1 (then |S| ≤ 2 for local
  models); σ_S = sqrt(Σ_k (1 − E_k²)/N_k); violation in σ = (|S| − 2)/σ_S. For a Werner-like
  state of visibility V, S = 2√2·V.

Accidental-corrected versions: pass ``matrix - accidentals.matrix``
(:func:`subtract_accidentals`); the estimators accept float matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from station.analysis.errors import AnalysisError

F64Array = npt.NDArray[np.float64]
I64Array = npt.NDArray[np.int64]

State = Literal["psi+", "phi+"]

#: Speed of light in vacuum, m/s (exact, SI).
C_M_PER_S = 299_792_458.0

#: |E_ideal| within this of 1 marks a key basis, within this of 1/√2 a Bell setting.
DEFAULT_TOLERANCE = 0.05

__all__ = [
    "BasisQber",
    "ChshResult",
    "Correlation",
    "CorrelationSummary",
    "LocalityMargin",
    "QberSummary",
    "RateSeries",
    "State",
    "binned_counts",
    "car_series",
    "chsh",
    "correlations",
    "ideal_correlation",
    "locality_margin",
    "predicted_s",
    "qber",
    "subtract_accidentals",
    "summarise",
]


@dataclass(frozen=True)
class Correlation:
    """E for arm ``arm_a`` of A and ``arm_b`` of B (0 = H/V arm, 1 = D/A arm).

    ``n_pp, n_pm, n_mp, n_mm`` are the four counts (float: they may be accidental-corrected),
    ``n`` their sum, ``e`` the measured correlation, ``sigma_e`` its binomial standard
    error, ``e_ideal`` the ideal-state prediction from the angles.
    """

    arm_a: int
    arm_b: int
    n_pp: float
    n_pm: float
    n_mp: float
    n_mm: float
    n: float
    e: float
    sigma_e: float
    e_ideal: float


@dataclass(frozen=True)
class BasisQber:
    """Error rate in one key basis pair: ``errors`` of ``n`` disagree with sign(E_ideal)."""

    arm_a: int
    arm_b: int
    n: float
    errors: float
    qber: float
    sigma_qber: float
    visibility: float


@dataclass(frozen=True)
class QberSummary:
    """QBER per key basis pair and overall (errors and pairs summed over the key bases)."""

    bases: tuple[BasisQber, ...]
    n: float
    errors: float
    qber: float
    sigma_qber: float
    visibility: float


@dataclass(frozen=True)
class ChshResult:
    """CHSH S ± σ_S from the four Bell-setting correlations.

    ``signs[k]`` is sign(E_ideal) of ``terms[k]``; ``s_ideal`` = Σ signs·E_ideal (2√2 for an
    exact Bell configuration); ``violation_sigma`` = (|S| − 2)/σ_S (negative: no violation).
    ``visibility`` is S/s_ideal, the Werner visibility the measured S corresponds to.
    """

    s: float
    sigma_s: float
    violation_sigma: float
    s_ideal: float
    visibility: float
    signs: tuple[int, int, int, int]
    terms: tuple[Correlation, Correlation, Correlation, Correlation]


@dataclass(frozen=True)
class LocalityMargin:
    """Space-like separation margin of the detections (hence of passive setting choices).

    margin = distance/c − |t_A − t_B| per coincidence, in ps (float64: a difference). Positive
    means the two detections, where the passive analyzers choose their settings, cannot
    influence each other at light speed. ``fraction_spacelike`` is the share with margin > 0.
    """

    n: int
    light_time_ps: float
    min_ps: float
    median_ps: float
    max_ps: float
    fraction_spacelike: float


@dataclass(frozen=True)
class RateSeries:
    """Coincidence and accidental rates and CAR per time bin.

    ``bin_edges_ps`` int64 (n_bins + 1) on the caller's timescale; ``coincidences`` raw counts
    in the true window; ``accidentals`` the estimate in the same window (float);
    rates in counts per second; ``car`` = (coincidences − accidentals)/accidentals, the
    true-to-accidental ratio (physics.md SNR = C/C_acc), NaN where no accidental was seen.
    """

    bin_edges_ps: I64Array
    coincidences: I64Array
    accidentals: F64Array
    coincidence_rate_cps: F64Array
    accidental_rate_cps: F64Array
    car: F64Array


# --------------------------------------------------------------------------- correlations


def ideal_correlation(a_deg: float, b_deg: float, state: State) -> float:
    """E(a, b) of the ideal state for linear analyzers at source-frame angles a, b (deg)."""
    if state == "phi+":
        return math.cos(math.radians(2.0 * (a_deg - b_deg)))
    if state == "psi+":
        return -math.cos(math.radians(2.0 * (a_deg + b_deg)))
    raise ValueError(f"state must be 'psi+' or 'phi+', got {state!r}")


def _as_matrix(matrix: npt.ArrayLike) -> F64Array:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"the coincidence matrix must be 4x4 (A's HVDA x B's HVDA), got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("the coincidence matrix has non-finite entries")
    return m


def _correlation(
    m: F64Array,
    i: int,
    j: int,
    angles_a: tuple[float, float],
    angles_b: tuple[float, float],
    state: State,
) -> Correlation:
    block = m[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
    n_pp, n_pm, n_mp, n_mm = (
        float(block[0, 0]),
        float(block[0, 1]),
        float(block[1, 0]),
        float(block[1, 1]),
    )
    n = n_pp + n_pm + n_mp + n_mm
    if n > 0:
        e = (n_pp + n_mm - n_pm - n_mp) / n
        sigma = math.sqrt(max(0.0, 1.0 - e * e) / n)
    else:
        e, sigma = math.nan, math.nan
    return Correlation(
        arm_a=i,
        arm_b=j,
        n_pp=n_pp,
        n_pm=n_pm,
        n_mp=n_mp,
        n_mm=n_mm,
        n=n,
        e=e,
        sigma_e=sigma,
        e_ideal=ideal_correlation(angles_a[i], angles_b[j], state),
    )


def correlations(
    matrix: npt.ArrayLike,
    angles_a: tuple[float, float],
    angles_b: tuple[float, float],
    state: State,
) -> tuple[Correlation, Correlation, Correlation, Correlation]:
    """The four arm-pair correlations (0,0), (0,1), (1,0), (1,1) from the 4x4 matrix."""
    m = _as_matrix(matrix)
    return (
        _correlation(m, 0, 0, angles_a, angles_b, state),
        _correlation(m, 0, 1, angles_a, angles_b, state),
        _correlation(m, 1, 0, angles_a, angles_b, state),
        _correlation(m, 1, 1, angles_a, angles_b, state),
    )


def qber(
    matrix: npt.ArrayLike,
    angles_a: tuple[float, float],
    angles_b: tuple[float, float],
    state: State,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> QberSummary:
    """QBER and visibility per key basis pair (|E_ideal| ≥ 1 − tolerance) and overall.

    Raises AnalysisError when no arm pair is a key basis (e.g. a Bell-mode configuration)
    or the key bases saw no coincidence.
    """
    per: list[BasisQber] = []
    for c in correlations(matrix, angles_a, angles_b, state):
        if abs(c.e_ideal) < 1.0 - tolerance:
            continue
        errors = c.n_pm + c.n_mp if c.e_ideal > 0 else c.n_pp + c.n_mm
        q, sq = _rate(errors, c.n)
        per.append(BasisQber(c.arm_a, c.arm_b, c.n, errors, q, sq, 1.0 - 2.0 * q))
    if not per:
        raise AnalysisError(
            f"no key basis: no arm pair of angles A {angles_a} / B {angles_b} has |E| ≈ 1 for "
            f"{state}; check the analyzer angles and mirrors, or use chsh() in Bell mode"
        )
    n = sum(b.n for b in per)
    errors = sum(b.errors for b in per)
    if n <= 0:
        raise AnalysisError("the key bases have no coincidences: QBER undefined")
    q, sq = _rate(errors, n)
    return QberSummary(tuple(per), n, errors, q, sq, 1.0 - 2.0 * q)


def _rate(errors: float, n: float) -> tuple[float, float]:
    if n <= 0:
        return math.nan, math.nan
    q = errors / n
    return q, math.sqrt(max(0.0, q * (1.0 - q)) / n)


def chsh(
    matrix: npt.ArrayLike,
    angles_a: tuple[float, float],
    angles_b: tuple[float, float],
    state: State,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ChshResult:
    """CHSH S ± σ_S when the angles form a Bell configuration (all |E_ideal| ≈ 1/√2).

    Raises AnalysisError if they do not, if the sign pattern is not a CHSH expression
    (product of the four signs must be −1), or if a setting pair has no coincidence.
    """
    terms = correlations(matrix, angles_a, angles_b, state)
    r = 1.0 / math.sqrt(2.0)
    if any(abs(abs(c.e_ideal) - r) > tolerance for c in terms):
        ideal = [round(c.e_ideal, 3) for c in terms]
        raise AnalysisError(
            f"not a Bell configuration: ideal E {ideal} for A {angles_a} / B {angles_b} "
            f"({state}); all four need |E| ≈ 0.707 (e.g. a (0, 45), b (22.5, 67.5) for phi+)"
        )
    signs = tuple(1 if c.e_ideal > 0 else -1 for c in terms)
    if math.prod(signs) != -1:
        raise AnalysisError(
            f"sign pattern {signs} of the ideal correlations is not a CHSH expression "
            "(their product must be −1): the two arms of one station are not 45° apart"
        )
    if any(c.n <= 0 for c in terms):
        raise AnalysisError("a Bell setting pair has no coincidences: S undefined")
    s = sum(sg * c.e for sg, c in zip(signs, terms, strict=True))
    s_ideal = sum(sg * c.e_ideal for sg, c in zip(signs, terms, strict=True))
    var = sum(max(0.0, 1.0 - c.e * c.e) / c.n for c in terms)
    sigma = math.sqrt(var)
    violation = (abs(s) - 2.0) / sigma if sigma > 0 else math.copysign(math.inf, abs(s) - 2.0)
    return ChshResult(
        s=s,
        sigma_s=sigma,
        violation_sigma=violation,
        s_ideal=s_ideal,
        visibility=s / s_ideal,
        signs=(signs[0], signs[1], signs[2], signs[3]),
        terms=terms,
    )


def predicted_s(visibility: float) -> float:
    """CHSH S of a Werner-like state of visibility V: 2√2·V (physics.md §4)."""
    return 2.0 * math.sqrt(2.0) * visibility


def subtract_accidentals(matrix: npt.ArrayLike, accidentals_matrix: npt.ArrayLike) -> F64Array:
    """Accidental-corrected 4x4 matrix (float), negative entries clipped to 0.

    σ_E and σ_S computed from the corrected matrix ignore the variance of the subtracted
    estimate; quote the raw-matrix figures as the primary result.
    """
    m = _as_matrix(matrix) - _as_matrix(accidentals_matrix)
    return np.clip(m, 0.0, None)


@dataclass(frozen=True)
class CorrelationSummary:
    """Everything the matrix says for one configuration: E's, and QBER and/or CHSH.

    ``qber`` is set when some arm pair is a key basis, ``chsh`` when the angles form a Bell
    configuration; the ``*_corrected`` twins use the accidental-subtracted matrix when an
    accidentals matrix was given (see :func:`subtract_accidentals` for their σ caveat).
    """

    state: State
    angles_a: tuple[float, float]
    angles_b: tuple[float, float]
    correlations: tuple[Correlation, Correlation, Correlation, Correlation]
    qber: QberSummary | None
    chsh: ChshResult | None
    qber_corrected: QberSummary | None
    chsh_corrected: ChshResult | None


def summarise(
    matrix: npt.ArrayLike,
    angles_a: tuple[float, float],
    angles_b: tuple[float, float],
    state: State,
    *,
    accidentals_matrix: npt.ArrayLike | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> CorrelationSummary:
    """Key-mode and/or Bell-mode statistics, whichever the angles make meaningful.

    Raises AnalysisError when the angles give neither a key basis nor a Bell configuration
    (most likely wrong analyzer angles or a missing mirror in the caller's geometry).
    """
    terms = correlations(matrix, angles_a, angles_b, state)
    has_key = any(abs(c.e_ideal) >= 1.0 - tolerance for c in terms)
    is_bell = all(abs(abs(c.e_ideal) - 1.0 / math.sqrt(2.0)) <= tolerance for c in terms)
    if not (has_key or is_bell):
        ideal = [round(c.e_ideal, 3) for c in terms]
        raise AnalysisError(
            f"angles A {angles_a} / B {angles_b} give ideal E {ideal} for {state}: neither a "
            "key basis (|E| ≈ 1) nor a Bell configuration (|E| ≈ 0.707)"
        )
    corrected = (
        None if accidentals_matrix is None else subtract_accidentals(matrix, accidentals_matrix)
    )

    def _q(m: npt.ArrayLike | None) -> QberSummary | None:
        return (
            None
            if m is None or not has_key
            else qber(m, angles_a, angles_b, state, tolerance=tolerance)
        )

    def _s(m: npt.ArrayLike | None) -> ChshResult | None:
        return (
            None
            if m is None or not is_bell
            else chsh(m, angles_a, angles_b, state, tolerance=tolerance)
        )

    return CorrelationSummary(
        state=state,
        angles_a=angles_a,
        angles_b=angles_b,
        correlations=terms,
        qber=_q(matrix),
        chsh=_s(matrix),
        qber_corrected=_q(corrected),
        chsh_corrected=_s(corrected),
    )


# --------------------------------------------------------------------------- locality


def locality_margin(
    t_a_ps: npt.ArrayLike, t_b_ps: npt.ArrayLike, distance_m: float
) -> LocalityMargin:
    """Space-like margin distance/c − |t_A − t_B| of each coincidence, summarised.

    ``t_a_ps``, ``t_b_ps`` (int64 ps) are the detection times of each coincidence at A and B
    on one common UTC scale (e.g. ps since the pass start); ``distance_m`` the A–B distance.
    Passive analyzers choose their basis at the beam splitter just before detection, so the
    detection events stand for the setting choices.
    """
    ta = np.asarray(t_a_ps, dtype=np.int64)
    tb = np.asarray(t_b_ps, dtype=np.int64)
    if ta.shape != tb.shape or ta.ndim != 1 or ta.size == 0:
        raise ValueError("t_a_ps and t_b_ps must be non-empty 1-D arrays of equal length")
    if not distance_m > 0:
        raise ValueError(f"distance_m must be positive, got {distance_m}")
    light_ps = distance_m / C_M_PER_S * 1e12
    # Difference in int64 first (exact), only then float64.
    margin = light_ps - np.abs(tb - ta).astype(np.float64)
    return LocalityMargin(
        n=int(margin.size),
        light_time_ps=light_ps,
        min_ps=float(margin.min()),
        median_ps=float(np.median(margin)),
        max_ps=float(margin.max()),
        fraction_spacelike=float(np.mean(margin > 0)),
    )


# --------------------------------------------------------------------------- rates and CAR


def binned_counts(
    times_ps: npt.ArrayLike, *, start_ps: int, stop_ps: int, bin_ps: int
) -> tuple[I64Array, I64Array]:
    """Counts of int64 ps times in bins [start + k·bin, start + (k+1)·bin) up to ``stop_ps``.

    Returns ``(edges_ps, counts)``; the last bin may be shorter (ends at ``stop_ps``).
    Times outside [start, stop) are ignored.
    """
    if bin_ps <= 0 or stop_ps <= start_ps:
        raise ValueError(f"need bin_ps > 0 and stop > start, got {bin_ps}, {start_ps}..{stop_ps}")
    t = np.asarray(times_ps, dtype=np.int64)
    nbins = -(-(stop_ps - start_ps) // bin_ps)
    edges = start_ps + bin_ps * np.arange(nbins + 1, dtype=np.int64)
    edges[-1] = stop_ps
    inside = t[(t >= start_ps) & (t < stop_ps)]
    counts = np.bincount((inside - start_ps) // bin_ps, minlength=nbins).astype(np.int64)
    return edges, counts


def car_series(
    pair_times_ps: npt.ArrayLike,
    accidentals_per_bin: npt.ArrayLike,
    *,
    start_ps: int,
    stop_ps: int,
    bin_ps: int,
) -> RateSeries:
    """Coincidence rate, accidental rate and CAR per time bin (the caller maps time → elev.).

    ``pair_times_ps`` are the coincidences' times (e.g. ``t_a[pairs.idx_a]``);
    ``accidentals_per_bin`` the accidentals estimated in the true window for each bin, e.g.
    ``binned_counts(est.times_ps, ...)[1] / len(est.displacements_ps)`` from
    :func:`station.analysis.coincidences.accidentals`.
    """
    edges, coinc = binned_counts(pair_times_ps, start_ps=start_ps, stop_ps=stop_ps, bin_ps=bin_ps)
    acc = np.asarray(accidentals_per_bin, dtype=np.float64)
    if acc.shape != coinc.shape:
        raise ValueError(f"accidentals_per_bin has shape {acc.shape}, expected {coinc.shape}")
    width_s = np.diff(edges).astype(np.float64) * 1e-12
    car = np.full(acc.shape, np.nan)
    np.divide(coinc - acc, acc, out=car, where=acc > 0)
    return RateSeries(
        bin_edges_ps=edges,
        coincidences=coinc,
        accidentals=acc,
        coincidence_rate_cps=coinc / width_s,
        accidental_rate_cps=acc / width_s,
        car=car,
    )
