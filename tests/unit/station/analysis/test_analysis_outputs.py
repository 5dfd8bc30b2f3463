"""The analysis outputs: versioned JSON (checked against its own JSON Schema) and the PNG report.

The PairResults come from :func:`analyze_pair` on synthetic streams with a known answer
(:mod:`station.analysis.synthetic`): Delingha and Lijiang from ``configs/stations``, the
Micius TLE of ``configs/satellites/micius-2021.tle``, 20 s from 2021-04-29 17:24:00 UTC.
B's times get the orbit-predicted differential flight time added, as the real link would,
so the pipeline's prior removes it again.

``jsonschema`` is not a dependency of the project, so :func:`_validate` below implements the
small subset of draft 2020-12 that :func:`json_schema` uses, and refuses any keyword it does
not implement (a schema feature that is not checked cannot silently pass).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import struct
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.analysis.bundles import AnalyzerInfo, SiteInfo, StationData
from station.analysis.fibre import DEFAULT_PAIR_RATE_HZ, fibre_from_result, great_circle_km
from station.analysis.key import KeyResult
from station.analysis.orbitprior import orbit_prior
from station.analysis.pipeline import AnalysisOptions, PairResult, analyze_pair, distill_key
from station.analysis.report import (
    DPI,
    PAGE_IN,
    binned_statistic,
    fibre_lines,
    pair_codes_b,
    write_report,
)
from station.analysis.schema import (
    NO_KEY_MODE_PASS,
    SCHEMA_ID,
    SCHEMA_VERSION,
    analysis_to_json,
    iso_utc,
    json_schema,
    jsonable,
    pair_to_json,
    schema_text,
)
from station.analysis.synthetic import make_pair_streams
from station.tracking.site import Site

ROOT = Path(__file__).resolve().parents[4]
PS = 10**12
T0_POSIX = 1_619_717_040  # 2021-04-29 17:24:00 UTC, Micius over Delingha and Lijiang
DURATION_S = 20.0
QBER_TRUE = 0.04
OPTIONS = AnalysisOptions(rate_bin_s=5.0)


# --------------------------------------------------------------------------- fixtures


def _site(name: str) -> SiteInfo:
    s = tomllib.loads((ROOT / f"configs/stations/{name}.toml").read_text())["site"]
    return SiteInfo(
        name,
        s["latitude_deg"],
        s["longitude_deg"],
        s["altitude_m"],
        s["pressure_hpa"],
        s["temperature_c"],
    )


def _tle() -> tuple[str, str]:
    lines = (ROOT / "configs/satellites/micius-2021.tle").read_text().splitlines()
    return lines[1].strip(), lines[2].strip()


def _as_site(s: SiteInfo) -> Site:
    return Site(
        s.name,
        s.latitude_deg,
        s.longitude_deg,
        s.altitude_m,
        pressure_hpa=s.pressure_hpa,
        temperature_c=s.temperature_c,
    )


def _station(
    name: str,
    site: SiteInfo,
    t_ps: np.ndarray[Any, Any],
    code: np.ndarray[Any, Any],
    tagger0_ps: int,
    analyzer: AnalyzerInfo,
) -> StationData:
    # PPS edges every second on the tagger; the edge at tagger0_ps is UTC T0_POSIX
    pps = tagger0_ps + PS * np.arange(-1, int(DURATION_S) + 2, dtype=np.int64)
    return StationData(
        path=Path(f"/data/{name}/pass-0429"),
        station=name,
        status="complete",
        partial=False,
        pass_id="2021-04-29-micius",
        campaign="test",
        site=site,
        tle=_tle(),
        analyzer=analyzer,
        anchor_tagger_ps=tagger0_ps,
        anchor_posix_s=float(T0_POSIX),
        anchor_uncertainty_s=0.0,
        anchor_source="pps",
        pps_channel=8,
        t_ps=t_ps,
        code=code.astype(np.uint8),
        pps_ps=pps,
        channels=(1, 2, 3, 4),
        aos_posix=None,
        los_posix=None,
        quality={},
        manifest={},
    )


def _pair(mode: str) -> PairResult:
    """Key mode: analyzers at (0°, 45°) for φ+; Bell mode: A (0°, 45°), B (22.5°, −22.5°)."""
    sa, sb = _site("delingha"), _site("lijiang")
    t0 = 5 * PS
    syn = make_pair_streams(
        7,
        duration_s=DURATION_S,
        pair_rate_hz=40.0,
        singles_a_hz=10_000.0,
        singles_b_hz=8_000.0,
        offset_ps=0.0,
        freq=0.0,
        random_walk_ps_per_sqrt_s=10.0,
        t0_ps=t0,
        channels=True,
        qber=QBER_TRUE,
    )
    assert syn.ch_a is not None
    assert syn.ch_b is not None
    prior = orbit_prior(
        _tle(),
        _as_site(sa),
        _as_site(sb),
        start_posix=T0_POSIX - 3.0,
        stop_posix=T0_POSIX + DURATION_S + 3.0,
    )
    # B sees each photon later by the differential flight time of the real geometry
    posix_b = T0_POSIX + (syn.t_b - t0).astype(np.float64) / PS
    t_b = syn.t_b + np.rint(prior.differential_ps(posix_b)).astype(np.int64)
    order = np.argsort(t_b, kind="stable")
    bell = mode == "bell"
    an_a = AnalyzerInfo(mode, "phi+", 0.0, 45.0, 0, True)
    an_b = AnalyzerInfo(mode, "phi+", 22.5 if bell else 0.0, -22.5 if bell else 45.0, 0, True)
    a = _station("delingha", sa, syn.t_a, syn.ch_a, t0, an_a)
    b = _station("lijiang", sb, t_b[order], syn.ch_b[order], t0, an_b)
    return analyze_pair(a, b, OPTIONS)


@pytest.fixture(scope="module")
def key_pair() -> PairResult:
    return _pair("key")


@pytest.fixture(scope="module")
def bell_pair() -> PairResult:
    return _pair("bell")


# --------------------------------------------------------------------------- mini validator

_ANNOTATIONS = {"$schema", "$id", "title", "description", "$defs"}
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def _validate(value: Any, schema: dict[str, Any], root: dict[str, Any], at: str = "$") -> None:
    """Raise AssertionError naming the path where ``value`` breaks ``schema``."""
    unknown = set(schema) - _ANNOTATIONS - {
        "type", "properties", "required", "additionalProperties", "items", "minItems",
        "maxItems", "enum", "const", "anyOf", "$ref", "minimum", "maximum", "pattern",
    }  # fmt: skip
    assert not unknown, f"{at}: the test validator does not implement {unknown}"
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        _validate(value, root["$defs"][name], root, at)
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                _validate(value, option, root, at)
                break
            except AssertionError as exc:
                errors.append(str(exc))
        else:
            raise AssertionError(f"{at}: matches no anyOf option: {errors}")
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert any(_is_type(value, k) for k in kinds), f"{at}: {value!r} is not {kinds}"
    if "const" in schema:
        assert value == schema["const"], f"{at}: {value!r} != {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{at}: {value!r} not in {schema['enum']}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert value >= schema.get("minimum", -math.inf), f"{at}: {value} < minimum"
        assert value <= schema.get("maximum", math.inf), f"{at}: {value} > maximum"
    if isinstance(value, str) and "pattern" in schema:
        assert re.search(schema["pattern"], value), f"{at}: {value!r} !~ {schema['pattern']}"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            assert name in value, f"{at}: missing required {name!r}"
        if schema.get("additionalProperties") is False:
            extra = set(value) - set(props)
            assert not extra, f"{at}: properties not in the schema: {sorted(extra)}"
        for name, sub in props.items():
            if name in value:
                _validate(value[name], sub, root, f"{at}.{name}")
    if isinstance(value, list):
        assert len(value) >= schema.get("minItems", 0), f"{at}: fewer than minItems"
        assert len(value) <= schema.get("maxItems", math.inf), f"{at}: more than maxItems"
        if "items" in schema:
            for i, item in enumerate(value):
                _validate(item, schema["items"], root, f"{at}[{i}]")


def _document(r: PairResult, key: KeyResult | None) -> dict[str, Any]:
    created = datetime(2021, 4, 29, 18, 0, tzinfo=UTC)
    doc = analysis_to_json([r], key, options=dataclasses.asdict(OPTIONS), created=created)
    # strict JSON: json.dumps refuses NaN/inf with allow_nan=False
    return dict(json.loads(json.dumps(doc, allow_nan=False)))


# --------------------------------------------------------------------------- JSON


def test_document_validates_against_its_schema_and_round_trips(key_pair: PairResult) -> None:
    key = distill_key([key_pair])
    assert key is not None
    doc = _document(key_pair, key)
    schema = json_schema()
    _validate(doc, schema, schema)
    assert doc["schema"] == SCHEMA_ID
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["created_utc"] == "2021-04-29T18:00:00.000000Z"
    assert doc["options"]["rate_bin_s"] == 5.0
    assert doc["key"]["n_sifted"] == key.n_sifted == key_pair.sifted.n  # type: ignore[union-attr]


def test_validator_catches_drift_between_writer_and_schema(key_pair: PairResult) -> None:
    schema = json_schema()
    doc = _document(key_pair, None)
    extra = json.loads(json.dumps(doc))
    extra["pairs"][0]["offset_search"]["offset_ns"] = 1.0
    with pytest.raises(AssertionError, match="not in the schema"):
        _validate(extra, schema, schema)
    missing = json.loads(json.dumps(doc))
    del missing["pairs"][0]["rate_bins"][0]["car"]
    with pytest.raises(AssertionError, match="missing required 'car'"):
        _validate(missing, schema, schema)
    wrong = json.loads(json.dumps(doc))
    wrong["pairs"][0]["coincidences"] = 12.5
    with pytest.raises(AssertionError, match="coincidences"):
        _validate(wrong, schema, schema)


def test_pair_figures_are_the_result_s_with_units_in_the_names(key_pair: PairResult) -> None:
    r = key_pair
    p = _document(r, None)["pairs"][0]
    assert [s["name"] for s in p["stations"]] == ["delingha", "lijiang"]
    assert p["stations"][0]["counts"] == r.a.counts()
    assert sum(p["stations"][1]["counts"].values()) == p["stations"][1]["events"] == r.b.events
    assert p["coincidences"] == r.coincidences == int(np.sum(p["matrix"]["counts"]))
    assert p["matrix"]["counts"] == r.matrix.tolist()
    assert p["window_ps"] == r.window_ps
    assert p["accidentals"]["mean"] == pytest.approx(r.accidentals.mean)
    assert p["offset_search"]["width_ps"] == pytest.approx(r.estimate.width_ps)
    assert p["timing"][0]["frequency_ppb"] == pytest.approx(r.timing[0].frequency * 1e9)
    assert p["timing"][0]["method"] == "pps"
    # known answer: the synthetic pairs have QBER 4 % in the matching bases
    q = p["qber"]["corrected"]
    assert abs(q["qber"] - QBER_TRUE) < 4 * q["sigma_qber"]
    assert p["chsh"] == {"raw": None, "corrected": None}  # key configuration: no S
    assert [(c["arm_a"], c["arm_b"]) for c in p["correlations"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert p["correlations"][0]["e_ideal"] == pytest.approx(1.0)
    # the rate bins cover the pass: every coincidence is in one, consecutive 5 s bins
    bins = p["rate_bins"]
    assert sum(b["coincidences"] for b in bins) == r.coincidences
    assert bins[0]["start_utc"] == p["start_utc"]
    assert bins[0]["t_s"] == 0.0
    starts = [datetime.strptime(b["start_utc"], "%Y-%m-%dT%H:%M:%S.%f%z") for b in bins]
    for s0, s1, b in zip(starts, starts[1:], bins[1:], strict=False):
        assert (s1 - s0).total_seconds() == pytest.approx(OPTIONS.rate_bin_s)
        assert (s1 - starts[0]).total_seconds() == pytest.approx(b["t_s"])
    assert abs((starts[0] - datetime.fromtimestamp(T0_POSIX, UTC)).total_seconds()) < 10.0
    assert bins[1]["elevation_a_deg"] == pytest.approx(float(r.elevation_deg[0][1]))
    assert p["locality"]["fraction_spacelike"] == pytest.approx(1.0)


def test_fibre_block_is_the_pass_s_loss_in_fibre_terms(key_pair: PairResult) -> None:
    """Known answer: 40 detected pairs/s for 20 s from a 5.9e6 pairs/s source is 51.7 dB."""
    r = key_pair
    f = _document(r, None)["pairs"][0]["fibre"]
    assert f == fibre_from_result(r).to_json()  # type: ignore[union-attr]
    overlap_s = r.overlap_posix[1] - r.overlap_posix[0]
    true_pairs = r.coincidences - r.accidentals.mean
    # every rate bin is link time (both stations above 10 deg), clipped to the overlap
    assert f["coincidence_rate_hz"] == pytest.approx(true_pairs / overlap_s, rel=0.02)
    sigma = math.sqrt(true_pairs) / overlap_s
    assert abs(f["coincidence_rate_hz"] - 40.0) < 4 * sigma
    assert f["pair_rate_hz"] == DEFAULT_PAIR_RATE_HZ
    assert f["pair_rate_is_default"] is True
    assert f["total_loss_db"] == pytest.approx(
        -10 * math.log10(f["coincidence_rate_hz"] / DEFAULT_PAIR_RATE_HZ)
    )
    assert f["channel_loss_db"] == pytest.approx(f["total_loss_db"] - 10 * math.log10(4.0))
    assert f["equivalent_fibre_1550_km"] == pytest.approx(f["channel_loss_db"] / 0.2)
    assert f["distance_km"] == pytest.approx(
        great_circle_km(
            r.a.site.latitude_deg, r.a.site.longitude_deg, r.b.site.latitude_deg,
            r.b.site.longitude_deg,
        )
    )  # fmt: skip
    assert 1190.0 < f["distance_km"] < 1220.0  # Delingha-Lijiang, 1203 km in Yin 2017
    # a given source rate moves every loss by 10 log10(R'/R)
    p2 = pair_to_json(r, pair_rate_hz=5.9e7)["fibre"]
    assert p2["pair_rate_is_default"] is False
    assert p2["total_loss_db"] == pytest.approx(f["total_loss_db"] + 10.0)
    assert p2["log10_fibre_pairs_1550_per_s"] == pytest.approx(
        f["log10_fibre_pairs_1550_per_s"] + 1.0
    )
    lines = fibre_lines(r)
    assert lines[0].startswith(f"fibre: {f['channel_loss_db']:.1f} dB = ")
    assert lines[-1].endswith("(source rate assumed)")
    assert all(len(x) <= 50 for x in lines)  # the text panel's width (TEXT_COLUMNS)


def test_no_true_coincidences_give_a_null_fibre_block(key_pair: PairResult) -> None:
    r = key_pair
    # both stations below their limits in every bin: no link time, no comparison
    low = (np.full_like(r.elevation_deg[0], 5.0), np.full_like(r.elevation_deg[1], 5.0))
    r2 = dataclasses.replace(r, elevation_deg=low)
    assert pair_to_json(r2)["fibre"] is None
    assert fibre_lines(r2) == ["fibre: no true coincidences over link time"]


def test_nan_and_numpy_values_become_plain_json(key_pair: PairResult) -> None:
    r = key_pair
    n = r.rates.car.size
    no_acc = dataclasses.replace(r.rates, car=np.full(n, np.nan))
    r2 = dataclasses.replace(
        r, rates=no_acc, estimate=dataclasses.replace(r.estimate, freq_err=math.inf)
    )
    p = pair_to_json(r2)
    json.dumps(p, allow_nan=False)  # raises on any NaN/inf left
    assert all(b["car"] is None for b in p["rate_bins"])
    assert p["offset_search"]["frequency_err_ppb"] is None
    assert p["offset_search"]["offset_ps"] == pytest.approx(r.estimate.offset_ps)
    opts = jsonable(
        {"a": np.float32(1.5), "b": np.int64(3), "c": (Path("/x"), np.nan), "d": OPTIONS}
    )
    assert opts == {"a": 1.5, "b": 3, "c": ["/x", None], "d": dataclasses.asdict(OPTIONS)}
    assert type(opts["b"]) is int


def test_key_block_has_the_figures_but_never_the_bits() -> None:
    bits = np.random.default_rng(3).integers(0, 2, 4096, dtype=np.uint8)
    sha = hashlib.sha256(np.packbits(bits).tobytes()).hexdigest()
    key = KeyResult(
        n_sifted=200_000, n_sample=20_000, qber_sample=0.03, qber_upper=0.034,
        qber_sample_per_basis=(0.029, math.nan), n_reconciled=180_000, leak_ec_bits=40_000,
        f_ec=1.1, qber_corrected=0.03, verified=True, tag_bits=64, secure_length=4096,
        key_a=bits, key_b=bits.copy(), key_sha256=sha, no_key_reason=None,
        eps_sec=1e-10, eps_cor=1e-15,
    )  # fmt: skip
    doc = analysis_to_json([], key, options={})
    schema = json_schema()
    _validate(json.loads(json.dumps(doc, allow_nan=False)), schema, schema)
    k = doc["key"]
    assert k["key_length_bits"] == k["secure_length_bits"] == 4096
    assert k["key_sha256"] == sha
    assert k["qber_sample_per_basis"] == [0.029, None]
    assert not any(isinstance(v, list) and len(v) > 2 for v in k.values())
    assert analysis_to_json([], None, options={})["key"] == {"no_key_reason": NO_KEY_MODE_PASS}


def test_docs_schema_file_is_in_step_with_the_code() -> None:
    path = ROOT / "docs/analysis-schema.json"
    assert path.read_text(encoding="utf-8") == schema_text(), (
        "docs/analysis-schema.json is stale: run "
        "`.venv/bin/python -m station.analysis.schema docs/analysis-schema.json`"
    )
    assert json.loads(schema_text())["$schema"].endswith("/draft/2020-12/schema")


def test_iso_utc_known_answers() -> None:
    assert iso_utc(T0_POSIX) == "2021-04-29T17:24:00.000000Z"
    assert iso_utc(T0_POSIX, 1_500_000_000_000) == "2021-04-29T17:24:01.500000Z"
    assert iso_utc(T0_POSIX, -1) == "2021-04-29T17:23:59.999999Z"  # floor, not round


@given(st.integers(-(10**18), 10**18))
def test_iso_utc_is_the_floor_to_the_microsecond(offset_ps: int) -> None:
    text = iso_utc(T0_POSIX, offset_ps)
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    base = datetime.fromtimestamp(T0_POSIX, UTC)
    assert parsed == base + timedelta(microseconds=offset_ps // 10**6)


# --------------------------------------------------------------------------- report


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return int(w), int(h)


def test_report_is_a_one_page_png_written_atomically(key_pair: PairResult, tmp_path: Path) -> None:
    key = distill_key([key_pair])
    out = write_report(key_pair, tmp_path / "pass.png", key=key)
    data = out.read_bytes()
    assert out == tmp_path / "pass.png"
    assert len(data) > 20_000
    w, h = _png_size(data)
    assert abs(w - PAGE_IN[0] * DPI) <= 2
    assert abs(h - PAGE_IN[1] * DPI) <= 2
    assert [p.name for p in tmp_path.iterdir()] == ["pass.png"]  # no temporary left behind


def test_binned_qber_and_s_pool_to_the_pass_figures(
    key_pair: PairResult, bell_pair: PairResult
) -> None:
    for r, kind in ((key_pair, "qber"), (bell_pair, "s")):
        codes = pair_codes_b(r)
        assert codes is not None
        per_bin = binned_statistic(r, codes)
        assert per_bin is not None
        assert per_bin.kind == kind
        assert per_bin.value.size == r.rates.coincidences.size
        # one bin spanning the pass must give exactly the pass's figure
        edges = r.rates.bin_edges_ps
        whole = dataclasses.replace(
            r, rates=dataclasses.replace(r.rates, bin_edges_ps=edges[[0, -1]])
        )
        one = binned_statistic(whole, codes)
        assert one is not None
        expected = r.summary.qber.qber if kind == "qber" else r.summary.chsh.s  # type: ignore[union-attr]
        assert one.value[0] == pytest.approx(expected)
    chsh = bell_pair.summary.chsh
    assert chsh is not None
    assert bell_pair.summary.qber is None
    # known answer: the synthetic source correlates only matching bases (E = 1 − 2Q there,
    # 0 across), so with signs (+, +, +, −) S = E00 + E01 + E10 − E11 ≈ 0: no violation
    assert abs(chsh.s) < 4 * chsh.sigma_s
    assert chsh.violation_sigma < 0
