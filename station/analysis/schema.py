"""The analysis result as versioned JSON, and the JSON Schema (draft 2020-12) that describes it.

Why a schema: ``qgs analyze`` writes one ``analysis.json`` per run and other tools (campaign
summaries, dashboards, the paper's tables) read it long after the code that wrote it has
changed. The document names itself (``schema`` = :data:`SCHEMA_ID`, ``schema_version`` =
:data:`SCHEMA_VERSION`); a reader checks both, and any change that renames, removes or
re-types a field bumps the version. ``docs/analysis-schema.json`` is :func:`json_schema`
written out (``python -m station.analysis.schema docs/analysis-schema.json``); a test keeps
the two in step, and validates a real result against it.

Conventions of the document:

* units are in the key names: ``_ps`` picoseconds, ``_s`` seconds, ``_deg`` degrees,
  ``_cps`` counts per second, ``_ppb`` parts per 10⁹ (frequency offsets), ``_bits``;
  dimensionless ratios (QBER, visibility, CAR, E, S) carry no suffix;
* absolute times are ISO 8601 UTC strings (``...Z``, microseconds) computed with integer
  arithmetic from the int64 ps timescale (float64 POSIX seconds would round to ~0.2 µs);
* every value is plain JSON: numpy scalars become Python numbers, NaN and ±inf become
  ``null`` (JSON has no NaN, and ``json.dumps`` would otherwise write the invalid token);
* the secret key bits are never written, only their length and SHA-256.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from station.analysis import statistics as stats
from station.analysis.bundles import OUTPUTS, StationData
from station.analysis.fibre import FibreComparison, fibre_from_result
from station.analysis.key import KeyResult
from station.analysis.pipeline import PairResult
from station.analysis.timetransfer import TimeTransfer
from station.recording.manifest import software_version

SCHEMA_ID = "qgs-analysis"
SCHEMA_VERSION = 1
#: ``$id`` of the schema document (a name, not a fetchable address)
SCHEMA_URI = f"https://qgs.invalid/schemas/{SCHEMA_ID}-v{SCHEMA_VERSION}.json"
SOFTWARE_NAME = "quantum-ground-station"
PS = 10**12
#: why a document has no key when no pass was in key mode (``distill_key`` returned None)
NO_KEY_MODE_PASS = "no key-mode pass with sifted bits: no key was distilled"

__all__ = [
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "analysis_to_json",
    "iso_utc",
    "json_schema",
    "jsonable",
    "key_to_json",
    "pair_to_json",
    "write_json_schema",
]


# --------------------------------------------------------------------------- plain values


def _num(x: Any) -> float | None:
    """A finite float, or None for NaN/±inf/None (JSON has no NaN)."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _ppb(x: Any) -> float | None:
    """A dimensionless frequency offset in parts per 10⁹ (1e-9 → 1.0)."""
    v = _num(x)
    return None if v is None else v * 1e9


def _nums(a: npt.ArrayLike) -> list[float | None]:
    return [_num(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def _ints(a: npt.ArrayLike) -> list[int]:
    return [int(v) for v in np.asarray(a).ravel()]


def jsonable(obj: Any) -> Any:
    """``obj`` made JSON-safe: numpy → Python, NaN/inf → None, Path → str, dataclass → dict.

    Used for the free-form ``options`` block; tuples and sets become lists, mapping keys str.
    """
    if obj is None or isinstance(obj, bool | str | int):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _num(obj)
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    return str(obj)


def iso_utc(ref_posix_s: int, offset_ps: int = 0) -> str:
    """``ref_posix_s`` + ``offset_ps`` as ISO 8601 UTC with microseconds (integer arithmetic).

    The sub-µs part is truncated toward −∞ (floor), so bin starts sort like their ps values.
    """
    whole_s, rem_ps = divmod(int(offset_ps), PS)
    t = datetime.fromtimestamp(int(ref_posix_s) + whole_s, UTC) + timedelta(
        microseconds=rem_ps // 10**6
    )
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------- pair → JSON


def _station(st: StationData, role: str) -> dict[str, Any]:
    a = st.analyzer
    return {
        "role": role,
        "name": st.station,
        "bundle_path": None if st.path is None else str(st.path),
        "pass_id": st.pass_id,
        "campaign": st.campaign,
        "status": st.status,
        "partial": bool(st.partial),
        "events": st.events,
        "counts": st.counts(),
        "pps_edges": int(st.pps_ps.size),
        "anchor_source": st.anchor_source,
        "anchor_uncertainty_s": _num(st.anchor_uncertainty_s),
        "site": {
            "latitude_deg": _num(st.site.latitude_deg),
            "longitude_deg": _num(st.site.longitude_deg),
            "altitude_m": _num(st.site.altitude_m),
        },
        "analyzer": {
            "mode": a.mode,
            "source_state": a.source_state,
            "angle_h_deg": _num(a.angle_h_deg),
            "angle_d_deg": _num(a.angle_d_deg),
            "compensated": bool(a.compensated),
        },
    }


def _timing(t: TimeTransfer, name: str) -> dict[str, Any]:
    return {
        "station": name,
        "method": t.method,
        "reading_at_utc": iso_utc(t.ref_posix_s),
        "ref_posix_s": int(t.ref_posix_s),
        "offset_ps": int(t.offset_ps),
        "frequency_ppb": _ppb(t.frequency),
        "random_walk_ps_per_sqrt_s": _num(t.random_walk_ps_per_sqrt_s),
        "jitter_ps": _num(t.jitter_ps),
        "residual_rms_ps": _num(t.residual_rms_ps),
        "uncertainty_ps": _num(t.uncertainty_ps),
        "edges_used": int(t.edges_used),
        "edges_rejected": int(t.edges_rejected),
    }


def _basis(b: stats.BasisQber) -> dict[str, Any]:
    return {
        "arm_a": b.arm_a,
        "arm_b": b.arm_b,
        "n": _num(b.n),
        "errors": _num(b.errors),
        "qber": _num(b.qber),
        "sigma_qber": _num(b.sigma_qber),
        "visibility": _num(b.visibility),
    }


def _qber(q: stats.QberSummary | None) -> dict[str, Any] | None:
    if q is None:
        return None
    return {
        "bases": [_basis(b) for b in q.bases],
        "n": _num(q.n),
        "errors": _num(q.errors),
        "qber": _num(q.qber),
        "sigma_qber": _num(q.sigma_qber),
        "visibility": _num(q.visibility),
    }


def _chsh(c: stats.ChshResult | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "s": _num(c.s),
        "sigma_s": _num(c.sigma_s),
        "violation_sigma": _num(c.violation_sigma),
        "s_ideal": _num(c.s_ideal),
        "visibility": _num(c.visibility),
        "signs": list(c.signs),
    }


def _correlation(c: stats.Correlation) -> dict[str, Any]:
    return {
        "arm_a": c.arm_a,
        "arm_b": c.arm_b,
        "n_pp": _num(c.n_pp),
        "n_pm": _num(c.n_pm),
        "n_mp": _num(c.n_mp),
        "n_mm": _num(c.n_mm),
        "n": _num(c.n),
        "e": _num(c.e),
        "sigma_e": _num(c.sigma_e),
        "e_ideal": _num(c.e_ideal),
    }


def _rates(r: PairResult, start_ps: int) -> list[dict[str, Any]]:
    rs = r.rates
    edges = rs.bin_edges_ps
    out: list[dict[str, Any]] = []
    for k in range(len(rs.coincidences)):
        lo, hi = int(edges[k]), int(edges[k + 1])
        out.append(
            {
                "start_utc": iso_utc(r.ref_posix_s, lo),
                "t_s": (lo - start_ps) / PS,
                "duration_s": (hi - lo) / PS,
                "coincidences": int(rs.coincidences[k]),
                "accidentals": _num(rs.accidentals[k]),
                "coincidence_rate_cps": _num(rs.coincidence_rate_cps[k]),
                "accidental_rate_cps": _num(rs.accidental_rate_cps[k]),
                "car": _num(rs.car[k]),
                "singles_a_cps": _num(r.singles_cps[0][k]),
                "singles_b_cps": _num(r.singles_cps[1][k]),
                "elevation_a_deg": _num(r.elevation_deg[0][k]),
                "elevation_b_deg": _num(r.elevation_deg[1][k]),
            }
        )
    return out


def fibre_to_json(f: FibreComparison | None) -> dict[str, Any] | None:
    """The fibre comparison (:mod:`station.analysis.fibre`) of a pair, or None."""
    if f is None:
        return None
    out = f.to_json()
    return {k: (_num(v) if isinstance(v, float) else v) for k, v in out.items()}


def pair_to_json(r: PairResult, *, pair_rate_hz: float | None = None) -> dict[str, Any]:
    """One pair of bundles' result as a JSON-able dict (no numpy types, NaN → null).

    Times of the rate bins are given both as UTC and as seconds since the first bin's start
    (``start_utc`` of the pair), which is how the report's time axes are drawn.
    ``pair_rate_hz`` is the source's pair rate for the fibre comparison (the bundles do not
    record it; None: the rig's documented default, and the ``fibre`` block says so).
    """
    edges = r.rates.bin_edges_ps
    start_ps = int(edges[0]) if edges.size else 0
    est, acc, s = r.estimate, r.accidentals, r.summary
    track = r.track
    return {
        "stations": [_station(r.a, "A"), _station(r.b, "B")],
        "partial": bool(r.partial),
        "partial_reasons": list(r.partial_reasons),
        "ref_utc": iso_utc(r.ref_posix_s),
        "ref_posix_s": int(r.ref_posix_s),
        "overlap_posix": [_num(r.overlap_posix[0]), _num(r.overlap_posix[1])],
        "start_utc": iso_utc(r.ref_posix_s, start_ps),
        "duration_s": _num(r.duration_s),
        "timing": [_timing(r.timing[0], r.a.station), _timing(r.timing[1], r.b.station)],
        "offset_search": {
            "offset_ps": _num(est.offset_ps),
            "offset_err_ps": _num(est.offset_err_ps),
            "frequency_ppb": _ppb(est.freq),
            "frequency_err_ppb": _ppb(est.freq_err),
            "t_ref_utc": iso_utc(r.ref_posix_s, est.t_ref_ps),
            "significance": _num(est.significance),
            "p_global": _num(est.p_global),
            "width_ps": _num(est.width_ps),
            "n_peak": int(est.n_peak),
            "background_per_bin": _num(est.background_per_bin),
            "bin_ps": _num(est.bin_ps),
            "method": est.method,
            "trials": int(est.trials),
        },
        "offset_track": {
            "n_accepted": int(track.n_accepted),
            "n_rejected": int(track.n_rejected),
            "segments": [
                {
                    "t_s": (int(t) - start_ps) / PS,
                    "offset_ps": _num(o),
                    "rms_ps": _num(rms),
                    "n_pairs": int(n),
                }
                for t, o, rms, n in zip(
                    track.seg_t_ps,
                    track.seg_offset_ps,
                    track.seg_rms_ps,
                    track.seg_n_pairs,
                    strict=True,
                )
            ],
        },
        "window_ps": int(r.window_ps),
        "coincidences": r.coincidences,
        "accidentals": {
            "mean": _num(acc.mean),
            "sigma": _num(acc.sigma_mean),
            "std": _num(acc.std),
            "displacements_ps": _ints(acc.displacements_ps),
            "counts": _ints(acc.counts),
        },
        "matrix": {
            "rows": [f"A_{o}" for o in OUTPUTS],
            "cols": [f"B_{o}" for o in OUTPUTS],
            "counts": [_ints(row) for row in np.asarray(r.matrix)],
            "accidentals": (
                None if acc.matrix is None else [_nums(row) for row in np.asarray(acc.matrix)]
            ),
        },
        "source_state": s.state,
        "angles_a_deg": [_num(x) for x in s.angles_a],
        "angles_b_deg": [_num(x) for x in s.angles_b],
        "correlations": [_correlation(c) for c in s.correlations],
        "qber": {"raw": _qber(s.qber), "corrected": _qber(s.qber_corrected)},
        "chsh": {"raw": _chsh(s.chsh), "corrected": _chsh(s.chsh_corrected)},
        "locality": None
        if r.locality is None
        else {
            "n": int(r.locality.n),
            "light_time_ps": _num(r.locality.light_time_ps),
            "min_ps": _num(r.locality.min_ps),
            "median_ps": _num(r.locality.median_ps),
            "max_ps": _num(r.locality.max_ps),
            "fraction_spacelike": _num(r.locality.fraction_spacelike),
        },
        "rate_bins": _rates(r, start_ps),
        "sifted": None
        if r.sifted is None
        else {
            "n_bits": int(r.sifted.n),
            "n_per_basis": [int(r.sifted.n_per_basis[0]), int(r.sifted.n_per_basis[1])],
        },
        # the live classical channel revealed these outcomes: used for statistics, never key
        "live_channel": {
            "revealed_pairs": int(r.live_revealed_pairs),
            "dropped_sifted_bits": int(r.live_dropped_sifted),
        },
        "key": None if r.key is None else key_to_json(r.key),
        "fibre": fibre_to_json(fibre_from_result(r, pair_rate_hz=pair_rate_hz)),
        "notes": list(r.notes),
    }


def key_to_json(k: KeyResult) -> dict[str, Any]:
    """A distilled block's figures; the key bits themselves are never written."""
    return {
        "n_sifted": int(k.n_sifted),
        "n_sample": int(k.n_sample),
        "qber_sample": _num(k.qber_sample),
        "qber_upper": _num(k.qber_upper),
        "qber_sample_per_basis": [_num(q) for q in k.qber_sample_per_basis],
        "n_reconciled": int(k.n_reconciled),
        "leak_ec_bits": int(k.leak_ec_bits),
        "f_ec": _num(k.f_ec),
        "qber_corrected": _num(k.qber_corrected),
        "verified": bool(k.verified),
        "tag_bits": int(k.tag_bits),
        "secure_length_bits": int(k.secure_length),
        "key_length_bits": len(k.key_a),
        "key_sha256": k.key_sha256,
        "no_key_reason": k.no_key_reason,
        "eps_sec": _num(k.eps_sec),
        "eps_cor": _num(k.eps_cor),
    }


def analysis_to_json(
    pairs: Sequence[PairResult],
    key: KeyResult | None,
    *,
    options: Mapping[str, Any],
    created: datetime | None = None,
    pair_rate_hz: float | None = None,
) -> dict[str, Any]:
    """The whole run's document: header, one entry per pair, the pooled key, the options.

    ``key`` is :func:`station.analysis.pipeline.distill_key`'s result; None (no key-mode pass)
    becomes ``{"no_key_reason": ...}`` so a reader always finds a reason when there is no key.
    ``created`` (default: now) is for reproducible documents in tests; ``pair_rate_hz`` goes
    to every pair's fibre comparison (:func:`pair_to_json`).
    """
    when = (created or datetime.now(UTC)).astimezone(UTC)
    return {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "software": {
            "name": SOFTWARE_NAME,
            "version": software_version(),
            "python": ".".join(str(v) for v in sys.version_info[:3]),
            "numpy": np.__version__,
        },
        "created_utc": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "pairs": [pair_to_json(r, pair_rate_hz=pair_rate_hz) for r in pairs],
        "key": {"no_key_reason": NO_KEY_MODE_PASS} if key is None else key_to_json(key),
        "options": jsonable(dict(options)),
    }


# --------------------------------------------------------------------------- the schema

_ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"


def _t(kind: str, *, null: bool = False, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"] if null else kind, **extra}


def _obj(props: dict[str, Any], *, title: str | None = None) -> dict[str, Any]:
    """A closed object: every listed property required, no other allowed (catches drift)."""
    out: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": sorted(props),
        "additionalProperties": False,
    }
    if title:
        out["description"] = title
    return out


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _arr(items: dict[str, Any], n: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "array", "items": items}
    if n is not None:
        out["minItems"] = n
        out["maxItems"] = n
    return out


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}"}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :func:`analysis_to_json`'s document.

    Objects are closed (``additionalProperties: false``, all properties required) so that a
    field added to the writer without the schema, or the reverse, fails validation; only
    ``options`` and ``software`` are open. Numbers that can be NaN are ``["number", "null"]``.
    """
    num, num0 = _t("number", null=True), _t("number")
    integer, count = _t("integer"), _t("integer", minimum=0)
    string, nstring = _t("string"), _t("string", null=True)
    iso = _t("string", pattern=_ISO)
    arm = _t("integer", minimum=0, maximum=1)
    station = _obj(
        {
            "role": {"enum": ["A", "B"]},
            "name": string,
            "bundle_path": nstring,
            "pass_id": nstring,
            "campaign": nstring,
            "status": string,
            "partial": _t("boolean"),
            "events": count,
            "counts": _obj({o: count for o in OUTPUTS}),
            "pps_edges": count,
            "anchor_source": string,
            "anchor_uncertainty_s": num,
            "site": _obj({"latitude_deg": num, "longitude_deg": num, "altitude_m": num}),
            "analyzer": _obj(
                {
                    "mode": string,
                    "source_state": string,
                    "angle_h_deg": num,
                    "angle_d_deg": num,
                    "compensated": _t("boolean"),
                }
            ),
        },
        title="one station's bundle (A first)",
    )
    timing = _obj(
        {
            "station": string,
            "method": {"enum": ["pps", "anchor"]},
            "reading_at_utc": iso,
            "ref_posix_s": integer,
            "offset_ps": integer,
            "frequency_ppb": num,
            "random_walk_ps_per_sqrt_s": num,
            "jitter_ps": num,
            "residual_rms_ps": num,
            "uncertainty_ps": num,
            "edges_used": count,
            "edges_rejected": count,
        },
        title="a station's tagger → UTC map (PPS fit or manifest anchor)",
    )
    basis = _obj(
        {
            "arm_a": arm,
            "arm_b": arm,
            "n": num,
            "errors": num,
            "qber": num,
            "sigma_qber": num,
            "visibility": num,
        }
    )
    qber = _nullable(
        _obj(
            {
                "bases": _arr(basis),
                "n": num,
                "errors": num,
                "qber": num,
                "sigma_qber": num,
                "visibility": num,
            }
        )
    )
    chsh = _nullable(
        _obj(
            {
                "s": num,
                "sigma_s": num,
                "violation_sigma": num,
                "s_ideal": num,
                "visibility": num,
                "signs": _arr({"enum": [-1, 1]}, 4),
            }
        )
    )
    correlation = _obj(
        {
            "arm_a": arm,
            "arm_b": arm,
            "n_pp": num,
            "n_pm": num,
            "n_mp": num,
            "n_mm": num,
            "n": num,
            "e": num,
            "sigma_e": num,
            "e_ideal": num,
        },
        title="E of A's arm arm_a with B's arm arm_b (0 = H/V, 1 = D/A)",
    )
    rate_bin = _obj(
        {
            "start_utc": iso,
            "t_s": num0,
            "duration_s": num0,
            "coincidences": count,
            "accidentals": num,
            "coincidence_rate_cps": num,
            "accidental_rate_cps": num,
            "car": num,
            "singles_a_cps": num,
            "singles_b_cps": num,
            "elevation_a_deg": num,
            "elevation_b_deg": num,
        },
        title="one time bin; t_s from the pair's start_utc",
    )
    key = _obj(
        {
            "n_sifted": count,
            "n_sample": count,
            "qber_sample": num,
            "qber_upper": num,
            "qber_sample_per_basis": _arr(num, 2),
            "n_reconciled": count,
            "leak_ec_bits": count,
            "f_ec": num,
            "qber_corrected": num,
            "verified": _t("boolean"),
            "tag_bits": count,
            "secure_length_bits": integer,
            "key_length_bits": count,
            "key_sha256": _t("string", null=True),
            "no_key_reason": nstring,
            "eps_sec": num,
            "eps_cor": num,
        },
        title="a distilled block (the key bits are never written)",
    )
    fibre = _obj(
        {
            "pair_rate_hz": num,
            "pair_rate_is_default": _t("boolean"),
            "detector_efficiency_a": num,
            "detector_efficiency_b": num,
            "coincidence_rate_hz": num,
            "total_loss_db": num,
            "channel_loss_db": num,
            "distance_km": num,
            "alpha_1550_db_per_km": num,
            "alpha_810_db_per_km": num,
            "equivalent_fibre_1550_km": num,
            "equivalent_fibre_810_km": num,
            "fibre_loss_1550_db": num,
            "fibre_loss_810_db": num,
            "log10_fibre_pairs_1550_per_s": num,
            "log10_fibre_pairs_810_per_s": num,
            "advantage_1550_db": num,
            "geometry": string,
        },
        title=(
            "the pass's two-downlink loss in fibre terms (station/analysis/fibre.py): true "
            "coincidences per second over link time against the source's pair rate "
            "(not recorded in bundles: an input, default the rig's), the equivalent fibre "
            "lengths, and log10 of the pairs/s the same source would give through fibre over "
            "the stations' great-circle distance; null without true coincidences"
        ),
    )
    matrix4 = _arr(_arr(count, 4), 4)
    pair = _obj(
        {
            "stations": _arr(_ref("station"), 2),
            "partial": _t("boolean"),
            "partial_reasons": _arr(string),
            "ref_utc": iso,
            "ref_posix_s": _t("integer"),
            "overlap_posix": _arr(num),
            "start_utc": iso,
            "duration_s": num,
            "timing": _arr(_ref("timing"), 2),
            "offset_search": _obj(
                {
                    "offset_ps": num,
                    "offset_err_ps": num,
                    "frequency_ppb": num,
                    "frequency_err_ppb": num,
                    "t_ref_utc": iso,
                    "significance": num,
                    "p_global": num,
                    "width_ps": num,
                    "n_peak": count,
                    "background_per_bin": num,
                    "bin_ps": num,
                    "method": string,
                    "trials": count,
                },
                title="residual offset of B vs A after the orbit prior (offset.search_offset)",
            ),
            "offset_track": _obj(
                {
                    "n_accepted": count,
                    "n_rejected": count,
                    "segments": _arr(
                        _obj({"t_s": num0, "offset_ps": num, "rms_ps": num, "n_pairs": count})
                    ),
                }
            ),
            "window_ps": count,
            "coincidences": count,
            "accidentals": _obj(
                {
                    "mean": num,
                    "sigma": num,
                    "std": num,
                    "displacements_ps": _arr(integer),
                    "counts": _arr(count),
                },
                title="accidentals per window from displaced windows (mean ± sigma)",
            ),
            "matrix": _obj(
                {
                    "rows": {"const": [f"A_{o}" for o in OUTPUTS]},
                    "cols": {"const": [f"B_{o}" for o in OUTPUTS]},
                    "counts": matrix4,
                    "accidentals": _nullable(_arr(_arr(num, 4), 4)),
                }
            ),
            "source_state": {"enum": ["psi+", "phi+"]},
            "angles_a_deg": _arr(num, 2),
            "angles_b_deg": _arr(num, 2),
            "correlations": _arr(_ref("correlation"), 4),
            "qber": _obj({"raw": qber, "corrected": qber}),
            "chsh": _obj({"raw": chsh, "corrected": chsh}),
            "locality": _nullable(
                _obj(
                    {
                        "n": count,
                        "light_time_ps": num,
                        "min_ps": num,
                        "median_ps": num,
                        "max_ps": num,
                        "fraction_spacelike": num,
                    }
                )
            ),
            "rate_bins": _arr(_ref("rate_bin")),
            "sifted": _nullable(_obj({"n_bits": count, "n_per_basis": _arr(count, 2)})),
            "live_channel": _obj({"revealed_pairs": count, "dropped_sifted_bits": count}),
            "key": _nullable(_ref("key")),
            "fibre": _nullable(_ref("fibre")),
            "notes": _arr(string),
        },
        title="one pair of bundles (station A, station B)",
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_URI,
        "title": "qgs analysis result",
        "description": (
            "Output of `qgs analyze` (station/analysis/schema.py). Units are in the key "
            "names (_ps, _s, _deg, _cps, _ppb, _bits); NaN is null; times are UTC."
        ),
        "type": "object",
        "properties": {
            "schema": {"const": SCHEMA_ID},
            "schema_version": {"const": SCHEMA_VERSION},
            "software": {
                "type": "object",
                "properties": {"name": string, "version": string},
                "required": ["name", "version"],
            },
            "created_utc": iso,
            "pairs": _arr(_ref("pair")),
            "key": {
                "anyOf": [
                    _ref("key"),
                    _obj({"no_key_reason": string}, title="no key-mode pass"),
                ]
            },
            "options": {"type": "object"},
        },
        "required": [
            "schema",
            "schema_version",
            "software",
            "created_utc",
            "pairs",
            "key",
            "options",
        ],
        "additionalProperties": False,
        "$defs": {
            "station": station,
            "timing": timing,
            "correlation": correlation,
            "rate_bin": rate_bin,
            "key": key,
            "fibre": fibre,
            "pair": pair,
        },
    }


def schema_text() -> str:
    """:func:`json_schema` as the text of ``docs/analysis-schema.json`` (sorted, indented)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json_schema(path: Path) -> Path:
    """Write :func:`schema_text` to ``path`` (atomically) and return the path."""
    from station.recording.atomic import atomic_write_bytes

    atomic_write_bytes(path, schema_text().encode("utf-8"))
    return path


if __name__ == "__main__":  # pragma: no cover - regeneration helper
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/analysis-schema.json")
    print(write_json_schema(target))
