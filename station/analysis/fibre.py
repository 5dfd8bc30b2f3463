"""Fibre comparison: the measured two-downlink loss of a pass against standard optical fibre.

Why: the point of a satellite link is that its loss grows with distance far more slowly than
a fibre's (issue 11, item 4). For one pass this module states what the measured loss is
worth in fibre, and what the same source would deliver through fibre between the stations.

Definitions (all losses in dB, rates per second):

- *total loss* L_tot = −10 log₁₀(C / R): true (accidental-subtracted) coincidences C per
  second against the source's pair rate R, i.e. from emission to both detectors' clicks.
  This is physics.md's "two-photon loss" convention (its L_fixed includes the detectors).
- *channel loss* (the two-downlink loss proper) L_ch = L_tot + 10 log₁₀(e_A e_B): the same
  without the two detectors' efficiencies e_A, e_B, because a fibre link would end on the
  same detectors. The fibre-equivalent lengths use L_ch: ℓ = L_ch / α.
- *fibre pairs*: the same source through fibre over the stations' ground distance D, on
  the same detectors: C_fibre = R · e_A e_B · 10^(−α D / 10). Geometry: the source midway
  with two arms of D/2 (the usual comparison, and the one whose locality is like the
  satellite's); the two-photon loss α·(D/2 + D/2) = α·D is the same with the source at one
  station and a single arm of D (the local photon is then detected without loss), so the
  rate does not depend on that choice. Fibre rates go to 10^(−360) and below, under the
  float64 range: they are carried as log₁₀ values (``log10_..._per_s``).
- D is the great-circle distance between the sites on a sphere of the mean Earth radius
  (a fibre follows the ground; the straight chord differs by < 0.2 % at 1200 km), a lower
  bound for any real fibre route.

Attenuation figures:

- 1550 nm: 0.2 dB/km, standard single-mode telecom fibre (ITU-T G.652.D; vendor data sheets
  specify ≤ 0.20–0.22 dB/km at 1550 nm) — the issue's figure.
- 810 nm (the rig source's wavelength, physics.md: 405 nm pump → 810 nm pairs [V]):
  3.0 dB/km. Rayleigh scattering alone is α_R = C/λ⁴ with C ≈ 0.7–0.9 (dB/km)·µm⁴ for
  silica cores (Agrawal, *Fiber-Optic Communication Systems*, §2.5 "Fiber Losses"): 0.12–0.16
  dB/km at 1.55 µm but 1.6–2.1 dB/km at 0.81 µm [D], the intrinsic floor. The first telecom
  window (800–900 nm) is quoted at ~2 dB/km in Gisin, Ribordy, Tittel, Zbinden, Rev. Mod.
  Phys. 74, 145 (2002), §III.B [R: recalled, not re-read here], and cabled single-mode fibre
  for this band is specified at ≤ 3.5–4 dB/km (780HP-type fibre at 850 nm) [R]. 3.0 dB/km
  sits inside that 2–4 dB/km range; pass another value to :func:`compare_fibre` to see the
  spread (1200 km at 2 or 4 dB/km is 2400 or 4800 dB: no pair either way).

The bundles record neither the source's pair rate nor the detector efficiencies (they are
properties of the satellite and of the receivers, not of a pass recording). Both are inputs
here, with the rig's values as documented defaults: R = 5.9 × 10⁶ pairs/s (physics.md §1
[S], the rig's ``[source] pair_rate_hz``) and e = 0.5 (physics.md §1 [S], the rig's
``[stations.detectors] efficiency``). A different R shifts every loss by 10 log₁₀(R'/R).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from station.analysis.errors import AnalysisError

if TYPE_CHECKING:
    from station.analysis.pipeline import PairResult

#: standard single-mode fibre at 1550 nm (dB/km), see the module docstring
ALPHA_1550_DB_PER_KM = 0.2
#: the same fibre at the rig source's 810 nm (dB/km), see the module docstring
ALPHA_810_DB_PER_KM = 3.0
#: the rig's source pair rate (pairs/s), physics.md §1 [S]; not recorded in the bundles
DEFAULT_PAIR_RATE_HZ = 5.9e6
#: the rig's detector efficiency, physics.md §1 [S]; not recorded in the bundles
DEFAULT_DETECTOR_EFFICIENCY = 0.5
#: mean Earth radius (km), IUGG
EARTH_RADIUS_KM = 6371.0088
#: elevation below which a rate bin is not counted as link time when the manifest does not
#: name the station's limit (deg; the shipped stations' min_elevation_deg)
DEFAULT_MIN_ELEVATION_DEG = 10.0
GEOMETRY = "source midway, two fibre arms of D/2 (same two-photon loss as one arm of D)"

PS = 10**12


@dataclass(frozen=True)
class FibreComparison:
    """A pass's measured loss in fibre terms (see the module docstring for definitions)."""

    pair_rate_hz: float  #: source pairs per second assumed (input or the rig default)
    pair_rate_is_default: bool  #: True when ``pair_rate_hz`` is the rig default
    detector_efficiency_a: float
    detector_efficiency_b: float
    coincidence_rate_hz: float  #: true coincidences per second the loss was derived from
    total_loss_db: float  #: source to both detector clicks
    channel_loss_db: float  #: the two downlinks without the detectors
    distance_km: float  #: ground (great-circle) distance between the stations
    alpha_1550_db_per_km: float
    alpha_810_db_per_km: float
    equivalent_fibre_1550_km: float  #: fibre at 1550 nm with loss ``channel_loss_db``
    equivalent_fibre_810_km: float  #: fibre at 810 nm with loss ``channel_loss_db``
    fibre_loss_1550_db: float  #: two-photon loss of ``distance_km`` of fibre at 1550 nm
    fibre_loss_810_db: float
    log10_fibre_pairs_1550_per_s: float  #: log₁₀ of the pairs/s through the fibre at 1550 nm
    log10_fibre_pairs_810_per_s: float
    geometry: str = GEOMETRY

    @property
    def advantage_1550_db(self) -> float:
        """How much less the satellite lost than the 1550 nm fibre over the same distance."""
        return self.fibre_loss_1550_db - self.channel_loss_db

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (every field finite by construction)."""
        return {
            "pair_rate_hz": self.pair_rate_hz,
            "pair_rate_is_default": self.pair_rate_is_default,
            "detector_efficiency_a": self.detector_efficiency_a,
            "detector_efficiency_b": self.detector_efficiency_b,
            "coincidence_rate_hz": self.coincidence_rate_hz,
            "total_loss_db": self.total_loss_db,
            "channel_loss_db": self.channel_loss_db,
            "distance_km": self.distance_km,
            "alpha_1550_db_per_km": self.alpha_1550_db_per_km,
            "alpha_810_db_per_km": self.alpha_810_db_per_km,
            "equivalent_fibre_1550_km": self.equivalent_fibre_1550_km,
            "equivalent_fibre_810_km": self.equivalent_fibre_810_km,
            "fibre_loss_1550_db": self.fibre_loss_1550_db,
            "fibre_loss_810_db": self.fibre_loss_810_db,
            "log10_fibre_pairs_1550_per_s": self.log10_fibre_pairs_1550_per_s,
            "log10_fibre_pairs_810_per_s": self.log10_fibre_pairs_810_per_s,
            "advantage_1550_db": self.advantage_1550_db,
            "geometry": self.geometry,
        }

    def summary(self) -> str:
        """One line for ``qgs analyze`` and the report."""
        return (
            f"two-downlink loss {self.channel_loss_db:.1f} dB "
            f"({self.total_loss_db:.1f} dB with the detectors) = "
            f"{self.equivalent_fibre_1550_km:.0f} km of 1550 nm fibre "
            f"({self.equivalent_fibre_810_km:.0f} km at 810 nm); through "
            f"{self.distance_km:.0f} km of fibre the same source would give "
            f"{format_power_of_ten(self.log10_fibre_pairs_1550_per_s)} pairs/s at 1550 nm, "
            f"{format_power_of_ten(self.log10_fibre_pairs_810_per_s)} at 810 nm "
            f"(satellite: {self.coincidence_rate_hz:.3g} pairs/s)"
            + (
                ""
                if not self.pair_rate_is_default
                else f"; source {self.pair_rate_hz:.2e} pairs/s assumed".replace("e+0", "e")
            )
        )


# --------------------------------------------------------------------------- closed forms


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_efficiency(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


def fibre_length_km(loss_db: float, alpha_db_per_km: float) -> float:
    """Length of fibre (km) whose attenuation ``alpha_db_per_km`` adds up to ``loss_db``."""
    if not (math.isfinite(loss_db) and loss_db >= 0.0):
        raise ValueError(f"loss_db must be a finite number >= 0, got {loss_db!r}")
    _check_positive("alpha_db_per_km", alpha_db_per_km)
    return loss_db / alpha_db_per_km


def total_loss_db(coincidence_rate_hz: float, pair_rate_hz: float) -> float:
    """−10 log₁₀(C/R): from pair emission to a detected coincidence (dB)."""
    _check_positive("coincidence_rate_hz", coincidence_rate_hz)
    _check_positive("pair_rate_hz", pair_rate_hz)
    if coincidence_rate_hz > pair_rate_hz:
        raise ValueError(
            f"coincidence rate {coincidence_rate_hz:g}/s exceeds the source's pair rate "
            f"{pair_rate_hz:g}/s: the pair rate given is too low"
        )
    return -10.0 * math.log10(coincidence_rate_hz / pair_rate_hz)


def great_circle_km(
    lat_a_deg: float, lon_a_deg: float, lat_b_deg: float, lon_b_deg: float
) -> float:
    """Great-circle distance (km) on the mean-radius sphere (haversine)."""
    la, lb = math.radians(lat_a_deg), math.radians(lat_b_deg)
    dlat, dlon = lb - la, math.radians(lon_b_deg - lon_a_deg)
    h = math.sin(dlat / 2) ** 2 + math.cos(la) * math.cos(lb) * math.sin(dlon / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def format_power_of_ten(log10_value: float) -> str:
    """10^x as ``3e-110`` (mantissa rounded to one digit), also where float64 underflows."""
    if not math.isfinite(log10_value):
        return "0"
    exponent = math.floor(log10_value)
    mantissa = 10.0 ** (log10_value - exponent)
    if round(mantissa) >= 10:
        mantissa, exponent = 1.0, exponent + 1
    if -3 <= exponent <= 3:
        return f"{10.0**log10_value:.3g}"
    return f"{mantissa:.0f}e{exponent:+d}".replace("e+", "e")


def compare_fibre(
    coincidence_rate_hz: float,
    distance_km: float,
    *,
    pair_rate_hz: float | None = None,
    detector_efficiency: tuple[float, float] = (
        DEFAULT_DETECTOR_EFFICIENCY,
        DEFAULT_DETECTOR_EFFICIENCY,
    ),
    alpha_1550_db_per_km: float = ALPHA_1550_DB_PER_KM,
    alpha_810_db_per_km: float = ALPHA_810_DB_PER_KM,
) -> FibreComparison:
    """The fibre comparison for a measured true-coincidence rate (pairs/s).

    ``pair_rate_hz`` None takes :data:`DEFAULT_PAIR_RATE_HZ` (and says so in the result).
    Raises ValueError for a non-positive or non-finite rate, distance or attenuation, an
    efficiency outside (0, 1], or more coincidences than source pairs.
    """
    is_default = pair_rate_hz is None
    rate = DEFAULT_PAIR_RATE_HZ if pair_rate_hz is None else float(pair_rate_hz)
    _check_positive("distance_km", distance_km)
    e_a, e_b = (float(x) for x in detector_efficiency)
    _check_efficiency("detector_efficiency[0]", e_a)
    _check_efficiency("detector_efficiency[1]", e_b)
    _check_positive("alpha_1550_db_per_km", alpha_1550_db_per_km)
    _check_positive("alpha_810_db_per_km", alpha_810_db_per_km)
    total = total_loss_db(coincidence_rate_hz, rate)
    detectors_db = -10.0 * math.log10(e_a * e_b)
    channel = max(total - detectors_db, 0.0)
    loss_1550 = alpha_1550_db_per_km * distance_km
    loss_810 = alpha_810_db_per_km * distance_km
    log_r = math.log10(rate * e_a * e_b)
    return FibreComparison(
        pair_rate_hz=rate,
        pair_rate_is_default=is_default,
        detector_efficiency_a=e_a,
        detector_efficiency_b=e_b,
        coincidence_rate_hz=float(coincidence_rate_hz),
        total_loss_db=total,
        channel_loss_db=channel,
        distance_km=float(distance_km),
        alpha_1550_db_per_km=float(alpha_1550_db_per_km),
        alpha_810_db_per_km=float(alpha_810_db_per_km),
        equivalent_fibre_1550_km=fibre_length_km(channel, alpha_1550_db_per_km),
        equivalent_fibre_810_km=fibre_length_km(channel, alpha_810_db_per_km),
        fibre_loss_1550_db=loss_1550,
        fibre_loss_810_db=loss_810,
        log10_fibre_pairs_1550_per_s=log_r - loss_1550 / 10.0,
        log10_fibre_pairs_810_per_s=log_r - loss_810 / 10.0,
    )


# --------------------------------------------------------------------------- from a pass


def _min_elevation_deg(manifest: dict[str, Any]) -> float:
    site = (manifest.get("config") or {}).get("site") or {}
    value = site.get("min_elevation_deg") if isinstance(site, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return DEFAULT_MIN_ELEVATION_DEG


def link_rate_hz(
    coincidences: Sequence[float] | np.ndarray[Any, Any],
    accidentals: Sequence[float] | np.ndarray[Any, Any],
    durations_s: Sequence[float] | np.ndarray[Any, Any],
    up: Sequence[bool] | np.ndarray[Any, Any],
) -> tuple[float, float]:
    """True coincidences per second over the bins where both links are up, and that time (s).

    Averaging over link time only (both stations above their limits) keeps the minutes of
    recording before AOS and after LOS from diluting the loss. Returns (nan, 0) without
    link time.
    """
    c = np.asarray(coincidences, dtype=np.float64)
    a = np.asarray(accidentals, dtype=np.float64)
    d = np.asarray(durations_s, dtype=np.float64)
    mask = np.asarray(up, dtype=bool) & np.isfinite(a)
    seconds = float(d[mask].sum())
    if seconds <= 0.0:
        return math.nan, 0.0
    return float((c[mask] - a[mask]).sum()) / seconds, seconds


def fibre_from_result(
    r: PairResult,
    *,
    pair_rate_hz: float | None = None,
    detector_efficiency: tuple[float, float] = (
        DEFAULT_DETECTOR_EFFICIENCY,
        DEFAULT_DETECTOR_EFFICIENCY,
    ),
) -> FibreComparison | None:
    """The fibre comparison of one analysed pass, or None when it has no true coincidences.

    Raises :class:`~station.analysis.errors.AnalysisError` when the pass saw more true
    coincidences per second than the source's assumed pair rate (a wrong ``pair_rate_hz``).

    The rate is the accidental-subtracted coincidences per second over the rate bins in
    which both stations' elevations are at or above their limits (``config.site.
    min_elevation_deg`` of each manifest, else 10°), each bin counted for its time inside the
    recorded overlap; the distance is the sites' great circle.
    """
    rs = r.rates
    edges = np.asarray(rs.bin_edges_ps, dtype=np.int64)
    if edges.size < 2:
        return None
    # each bin's time inside the interval both stations recorded (the outer bins overhang it)
    lo_ps = (r.overlap_posix[0] - r.ref_posix_s) * PS
    hi_ps = (r.overlap_posix[1] - r.ref_posix_s) * PS
    starts = np.maximum(edges[:-1].astype(np.float64), lo_ps)
    stops = np.minimum(edges[1:].astype(np.float64), hi_ps)
    durations = np.clip(stops - starts, 0.0, None) / PS
    lim_a, lim_b = _min_elevation_deg(r.a.manifest), _min_elevation_deg(r.b.manifest)
    el_a, el_b = (np.asarray(e, dtype=np.float64) for e in r.elevation_deg)
    up = (el_a >= lim_a) & (el_b >= lim_b)
    rate, _ = link_rate_hz(rs.coincidences, rs.accidentals, durations, up)
    if not (math.isfinite(rate) and rate > 0.0):
        return None
    source = DEFAULT_PAIR_RATE_HZ if pair_rate_hz is None else pair_rate_hz
    if rate > source:
        raise AnalysisError(
            f"{r.a.station} + {r.b.station}: {rate:.3g} true coincidences/s exceed the "
            f"source's {source:.3g} pairs/s assumed for the fibre comparison; give the "
            "source's real pair rate (qgs analyze --pair-rate-hz)"
        )
    sa, sb = r.a.site, r.b.site
    distance = great_circle_km(sa.latitude_deg, sa.longitude_deg, sb.latitude_deg, sb.longitude_deg)
    if distance <= 0.0:
        return None
    return compare_fibre(
        rate, distance, pair_rate_hz=pair_rate_hz, detector_efficiency=detector_efficiency
    )
