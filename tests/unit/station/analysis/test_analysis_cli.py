"""`qgs analyze` on real pass bundles on disk: the result, and one sentence + one exit code
for each kind of bad input (and no output overwritten without --force).

The bundles are written by the station's own BundleWriter from synthetic streams with a
known answer (:mod:`station.analysis.synthetic`, QBER 4 %): Delingha and Lijiang, the 2021
Micius TLE, 20 s from 2021-04-29 17:24:00 UTC; B's times carry the orbit-predicted
differential time of flight and both taggers tick PPS edges on input 8, with the manifest's
`timescale` anchor and `analyzer` section as the daemon writes them.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.clock import WarpClock
from drivers.datatypes import ChannelMap, EventBlock
from station.analysis.commands import main_analyze
from station.analysis.orbitprior import orbit_prior
from station.analysis.synthetic import make_pair_streams
from station.recording import BundleWriter
from station.tracking.site import Site

ROOT = Path(__file__).resolve().parents[4]
PS = 10**12
T0 = 1_619_717_040  # 2021-04-29 17:24:00 UTC
DURATION_S = 20.0
TAGGER0 = 5 * PS  #: tagger reading of the PPS edge at UTC T0


def _site(name: str) -> dict[str, Any]:
    site: dict[str, Any] = tomllib.loads((ROOT / f"configs/stations/{name}.toml").read_text())[
        "site"
    ]
    return site


def _tle() -> tuple[str, str]:
    lines = (ROOT / "configs/satellites/micius-2021.tle").read_text().splitlines()
    return lines[1].strip(), lines[2].strip()


def _as_site(name: str) -> Site:
    s = _site(name)
    return Site(
        name,
        s["latitude_deg"],
        s["longitude_deg"],
        s["altitude_m"],
        pressure_hpa=s["pressure_hpa"],
        temperature_c=s["temperature_c"],
    )


async def _write(
    root: Path,
    name: str,
    t: np.ndarray[Any, Any],
    ch: np.ndarray[Any, Any],
    *,
    analyzer: bool,
    pps_input: bool = True,
) -> Path:
    pps = TAGGER0 + PS * np.arange(-1, int(DURATION_S) + 2, dtype=np.int64)
    if not pps_input:
        pps = pps[:0]
    t_all = np.concatenate([t, pps])
    ch_all = np.concatenate([ch.astype(np.uint8) + 1, np.full(pps.size, 8, np.uint8)])
    order = np.argsort(t_all, kind="stable")
    t_all, ch_all = t_all[order], ch_all[order]
    path = root / name
    writer = await BundleWriter.create(
        path,
        clock=WarpClock(float(T0)),
        station=name,
        run_start_utc=datetime.fromtimestamp(T0, UTC),
        tle=_tle(),
        config={"site": _site(name)},
        channel_map=ChannelMap(1, 2, 3, 4),
        info={
            "pass_id": f"{name}-0429",
            "aos_utc": "2021-04-29T17:20:00Z",
            "los_utc": "2021-04-29T17:29:00Z",
        },
    )
    for i, s in enumerate(range(0, t_all.size, 50_000)):
        await writer.events.write(EventBlock(i, t_all[s : s + 50_000], ch_all[s : s + 50_000]))
    if pps_input:
        anchor = {"tagger_ps": TAGGER0, "posix_s": T0, "source": "pps", "uncertainty_s": 0.0}
    else:  # the first event and its arrival: good to the stream latency
        first = int(t_all[0])
        anchor = {
            "tagger_ps": first,
            "posix_s": T0 + (first - TAGGER0) / PS + 0.003,
            "source": "first_event",
            "uncertainty_s": 1.0,
        }
    writer.annotate("timescale", {"pps_channel": 8 if pps_input else None, "anchor": anchor})
    if analyzer:
        writer.annotate(
            "analyzer",
            {
                "mode": "key",
                "source_state": "phi+",
                "parity": 1,
                "compensated": True,
                "source_frame_angles_deg": {"H": 0.0, "V": 90.0, "D": 45.0, "A": 135.0},
            },
        )
    await writer.close("complete")
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import asyncio

    root = tmp_path_factory.mktemp("bundles")
    syn = make_pair_streams(
        7,
        duration_s=DURATION_S,
        pair_rate_hz=40.0,
        singles_a_hz=10_000.0,
        singles_b_hz=8_000.0,
        offset_ps=0.0,
        freq=0.0,
        random_walk_ps_per_sqrt_s=10.0,
        t0_ps=TAGGER0,
        channels=True,
        qber=0.04,
    )
    ch_a, ch_b = syn.ch_a, syn.ch_b
    assert ch_a is not None
    assert ch_b is not None
    prior = orbit_prior(
        _tle(),
        _as_site("delingha"),
        _as_site("lijiang"),
        start_posix=T0 - 3.0,
        stop_posix=T0 + DURATION_S + 3.0,
    )
    posix_b = T0 + (syn.t_b - TAGGER0).astype(np.float64) / PS
    t_b = syn.t_b + np.rint(prior.differential_ps(posix_b)).astype(np.int64)
    order = np.argsort(t_b, kind="stable")
    t_b, ch_b = t_b[order], ch_b[order]
    # a B station that saw no pair (background only): a flat correlation
    flat_t = np.sort(np.random.default_rng(3).integers(TAGGER0, TAGGER0 + 20 * PS, 160_000))
    # lab-like rates for the no-PPS case: a blind search over the anchor's ±200 ms needs
    # ~10^4 pairs (a folded FFT: C >> sqrt(n_A n_B / N)); a Micius pass has a few hundred
    lab = make_pair_streams(
        8,
        duration_s=DURATION_S,
        pair_rate_hz=2000.0,
        singles_a_hz=10_000.0,
        singles_b_hz=8_000.0,
        offset_ps=0.0,
        freq=0.0,
        t0_ps=TAGGER0,
        channels=True,
        qber=0.04,
    )
    lab_ch_a, lab_ch_b = lab.ch_a, lab.ch_b
    assert lab_ch_a is not None
    assert lab_ch_b is not None
    lab_posix_b = T0 + (lab.t_b - TAGGER0).astype(np.float64) / PS
    lab_t_b = lab.t_b + np.rint(prior.differential_ps(lab_posix_b)).astype(np.int64)
    lab_order = np.argsort(lab_t_b, kind="stable")

    async def make() -> dict[str, Path]:
        return {
            "a": await _write(root, "delingha", syn.t_a, ch_a, analyzer=True),
            "b": await _write(root, "lijiang", t_b, ch_b, analyzer=True),
            "old": await _write(root / "old", "lijiang", t_b, ch_b, analyzer=False),
            "flat": await _write(
                root / "flat", "lijiang", flat_t, np.zeros(flat_t.size, np.uint8), analyzer=True
            ),
            "a_nopps": await _write(
                root / "nopps", "delingha", lab.t_a, lab_ch_a, analyzer=True, pps_input=False
            ),
            "b_nopps": await _write(
                root / "nopps",
                "lijiang",
                lab_t_b[lab_order],
                lab_ch_b[lab_order],
                analyzer=True,
                pps_input=False,
            ),
        }

    return asyncio.run(make())


def test_analyze_writes_json_report_and_finds_the_known_qber(
    bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = bundles["a"], bundles["b"]
    out = tmp_path / "result.json"
    png = tmp_path / "report.png"
    assert main_analyze([str(a), str(b), "--json", str(out), "--report", str(png)]) == 0
    text = capsys.readouterr().out
    assert "delingha + lijiang" in text
    assert "QBER" in text
    doc = json.loads(out.read_text())
    assert doc["schema"] == "qgs-analysis"
    assert doc["schema_version"] == 1
    pair = doc["pairs"][0]
    assert pair["coincidences"] > 500  # 40 pairs/s for 20 s, plus accidentals
    assert abs(pair["offset_search"]["offset_ps"]) < 100.0
    q = pair["qber"]["corrected"]
    assert q["qber"] == pytest.approx(0.04, abs=4 * q["sigma_qber"])
    assert png.read_bytes()[:4] == b"\x89PNG"
    # nothing is overwritten without --force; the first outputs are left as they were
    before = out.read_bytes()
    assert main_analyze([str(a), str(b), "--json", str(out)]) == 16
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main_analyze([str(a), str(b), "--json", str(out), "--force"]) == 0


def test_bad_inputs_get_one_sentence_and_their_own_exit_code(
    bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, old = bundles["a"], bundles["b"], bundles["old"]
    assert main_analyze([str(a)]) == 2  # bundles come in pairs
    assert main_analyze([str(a), str(a)]) == 12  # one station twice
    assert "both bundles are from station 'delingha'" in capsys.readouterr().err
    assert main_analyze([str(a), str(old)]) == 13  # recorded before the frame fix
    assert "analyzer" in capsys.readouterr().err
    assert main_analyze([str(a), str(tmp_path)]) == 11  # not a bundle
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "not a readable pass bundle" in err[0]
    # a corrupted chunk: verify fails and says which file
    broken = tmp_path / "broken"
    shutil.copytree(b, broken)
    chunk = max((broken / "events").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(chunk.read_bytes())
    data[200] ^= 0xFF
    chunk.write_bytes(bytes(data))
    assert main_analyze([str(a), str(broken)]) == 11
    assert "verify failed" in capsys.readouterr().err
    # a station that saw no pair: no significant peak, said in one sentence
    assert main_analyze([str(a), str(bundles["flat"])]) == 15
    assert "No significant coincidence peak" in capsys.readouterr().err


def test_fibre_comparison_is_printed_and_takes_the_source_rate(
    bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = bundles["a"], bundles["b"]
    out = tmp_path / "fibre.json"
    assert main_analyze([str(a), str(b), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if "two-downlink loss" in x)
    assert "km of 1550 nm fibre" in line
    assert "source 5.90e6 pairs/s assumed" in line
    fibre = json.loads(out.read_text())["pairs"][0]["fibre"]
    assert fibre["pair_rate_is_default"] is True
    assert f"{fibre['channel_loss_db']:.1f} dB" in line
    # the source's rate given: no "assumed", every loss 10 dB higher for a 10x brighter source
    assert (
        main_analyze([str(a), str(b), "--json", str(out), "--force", "--pair-rate-hz", "5.9e7"])
        == 0
    )
    assert "assumed" not in capsys.readouterr().out
    fibre2 = json.loads(out.read_text())["pairs"][0]["fibre"]
    assert fibre2["total_loss_db"] == pytest.approx(fibre["total_loss_db"] + 10.0)
    assert json.loads(out.read_text())["options"]["pair_rate_hz"] == 5.9e7
    # a source fainter than the measured coincidences is refused in one sentence
    assert main_analyze([str(a), str(b), "--pair-rate-hz", "1"]) == 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--pair-rate-hz" in err[0]
    with pytest.raises(SystemExit):
        main_analyze([str(a), str(b), "--pair-rate-hz", "-3"])
    assert "pair rate > 0" in capsys.readouterr().err


def test_without_pps_the_anchor_and_a_blind_search_still_find_the_pairs(
    bundles: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_analyze([str(bundles["a_nopps"]), str(bundles["b_nopps"]), "--json", "-"]) == 0
    pair = json.loads(capsys.readouterr().out)["pairs"][0]
    assert [t["method"] for t in pair["timing"]] == ["anchor", "anchor"]
    assert any("no PPS" in n for n in pair["notes"])
    assert pair["coincidences"] > 30_000
    q = pair["qber"]["corrected"]
    assert q["qber"] == pytest.approx(0.04, abs=4 * q["sigma_qber"] + 0.005)


def test_campaign_directory_pairs_bundles_by_pass(
    bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = bundles["a"], bundles["b"]
    campaign = tmp_path / "campaign"
    shutil.copytree(a, campaign / "delingha" / a.name)
    shutil.copytree(b, campaign / "lijiang" / b.name)
    assert main_analyze(["--campaign", str(campaign), "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in doc["pairs"][0]["stations"]] == ["delingha", "lijiang"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main_analyze(["--campaign", str(empty)]) == 12
