"""The campaign plan: common windows of every pair, nights only, conflicts, persistence."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from station.config import load_station_config
from station.network.campaign import CampaignDir, CampaignDirError, summarize
from station.network.config import NetworkConfig, NetworkStation, load_network_config
from station.network.plan import WindowStatus, merge, predict_windows
from station.network.rehearse import result_table, splice
from station.tracking.elements import load_elements, parse_time, select
from station.tracking.ephemeris import look_angles

ROOT = Path(__file__).resolve().parents[4]
START = parse_time("2017-06-16T00:00:00Z")


@pytest.fixture(scope="module")
def cfg() -> NetworkConfig:
    return load_network_config(ROOT / "configs/network/delingha_lijiang_2017.toml")


def _elements(cfg: NetworkConfig):  # type: ignore[no-untyped-def]
    return select(load_elements(cfg.tle_path), norad_id=cfg.norad_id, now_s=START)


def test_windows_are_common_night_and_high_enough(cfg: NetworkConfig) -> None:
    elements = _elements(cfg)
    windows = predict_windows(cfg, elements, START)
    assert len(windows) >= 3
    assert [w.start_s for w in windows] == sorted(w.start_s for w in windows)
    for w in windows:
        assert w.night
        assert w.duration_s >= cfg.min_window_s
        # both stations see the satellite above the campaign's minimum all through the window
        t = np.linspace(w.start_s + 1.0, w.end_s - 1.0, 20)
        for name in w.stations:
            site = cfg.station(name).config.site
            el = look_angles(elements.satrec, site, t, apparent=False, refraction=False).el_deg
            assert el.min() >= cfg.min_common_elevation_deg - 0.05, (w.id, name, el.min())


def test_day_windows_only_when_asked(cfg: NetworkConfig) -> None:
    elements = _elements(cfg)
    nights = predict_windows(cfg, elements, START)
    every = predict_windows(dataclasses.replace(cfg, nights_only=False), elements, START)
    assert len(every) > len(nights)
    assert any(not w.night for w in every)


def test_a_station_takes_one_window_at_a_time(cfg: NetworkConfig) -> None:
    """Three stations: overlapping windows that share a station are marked conflict."""
    nanshan = load_station_config(ROOT / "configs/stations/nanshan.toml")
    three = dataclasses.replace(
        cfg,
        stations=(*cfg.stations, NetworkStation(nanshan, 11.25)),
        nights_only=False,
        horizon_days=3.0,
        min_common_elevation_deg=10.0,
    )
    windows = predict_windows(three, _elements(cfg), START)
    assert {w.stations for w in windows} >= {("delingha", "lijiang"), ("delingha", "nanshan")}
    conflicts = [w for w in windows if w.status is WindowStatus.CONFLICT]
    assert conflicts, "three stations of one network share windows"
    taken = [w for w in windows if w.status is WindowStatus.PLANNED]
    for i, a in enumerate(taken):
        for b in taken[i + 1 :]:
            if set(a.stations) & set(b.stations):
                assert a.end_s <= b.start_s or b.end_s <= a.start_s, (a.id, b.id)


def test_plan_survives_a_restart(tmp_path: Path, cfg: NetworkConfig) -> None:
    windows = predict_windows(cfg, _elements(cfg), START)
    windows[0].status, windows[0].reason = WindowStatus.PARTIAL, "lijiang offline (lwt)"
    windows[0].passes = {"delingha": {"pass_id": "p1", "outcome": "complete"}}
    store = CampaignDir(tmp_path / "c", cfg.campaign)
    store.save_plan(windows)
    back = store.load_plan()
    assert [w.to_json() for w in back] == [w.to_json() for w in windows]
    # a new prediction adds windows but never resets a known one
    merged = merge(back, predict_windows(cfg, _elements(cfg), START))
    assert merged[0].status is WindowStatus.PARTIAL
    assert len(merged) == len(windows)


def test_foreign_or_broken_plans_are_refused(tmp_path: Path) -> None:
    store = CampaignDir(tmp_path, "mine")
    store.plan_path.write_text(json.dumps({"campaign": "theirs", "windows": []}))
    with pytest.raises(CampaignDirError, match="belongs to campaign 'theirs'"):
        store.load_plan()
    store.plan_path.write_text("{not json")
    with pytest.raises(CampaignDirError, match="cannot read"):
        store.load_plan()
    store.plan_path.write_text(json.dumps({"campaign": "mine", "windows": [{"id": "x"}]}))
    with pytest.raises(CampaignDirError, match="malformed window"):
        store.load_plan()
    blocked = CampaignDir(tmp_path / "plan.json" / "sub", "mine")  # a file where a dir goes
    with pytest.raises(CampaignDirError, match="not writable"):
        blocked.check_writable()


def _analysis(s: float, sigma: float, coincidences: int) -> dict[str, object]:
    return {
        "pairs": [
            {
                "coincidences": coincidences,
                "duration_s": 100.0,
                "accidentals": {"mean": 3.0},
                "qber": {"raw": None},
                "chsh": {
                    "raw": {
                        "s": s,
                        "sigma_s": sigma,
                        "violation_sigma": (s - 2) / sigma,
                        "s_ideal": 2 * 2**0.5,
                        "visibility": s / (2 * 2**0.5),
                    }
                },
                "locality": {"fraction_spacelike": 1.0, "min_ps": 7.0e8},
                "sifted": None,
            }
        ]
    }


def test_summary_and_table(tmp_path: Path, cfg: NetworkConfig) -> None:
    f = summarize(_analysis(2.5, 0.1, 400))
    assert f["pair_rate_hz"] == pytest.approx(4.0)
    assert f["qber_from_s"] == pytest.approx((1 - 2.5 / 2**1.5) / 2)
    assert f["locality_min_margin_us"] == pytest.approx(700.0)
    windows = predict_windows(cfg, _elements(cfg), START)[:2]
    for w, (s, sigma) in zip(windows, ((2.5, 0.1), (2.3, 0.2)), strict=True):
        w.status = WindowStatus.DONE
        w.result = {"figures": summarize(_analysis(s, sigma, 400))}
    table = result_table(cfg, windows, None)
    assert "2.500 ± 0.100" in table
    assert "2.300 ± 0.200" in table
    # inverse-variance mean: (2.5/0.01 + 2.3/0.04) / (1/0.01 + 1/0.04) = 2.46, σ 0.0894
    assert "2.460 ± 0.089" in table
    doc = tmp_path / "campaigns.md"
    doc.write_text("# Campaigns\n\nintro\n")
    splice(doc, cfg.campaign, table)
    splice(doc, cfg.campaign, table.replace("2.460", "9.999"))  # regenerated in place
    text = doc.read_text()
    assert text.count(f"<!-- campaign:{cfg.campaign} -->") == 1
    assert "9.999" in text
    assert "2.460" not in text
    assert text.startswith("# Campaigns")
