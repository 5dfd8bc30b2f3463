"""Pass prediction vs skyfield's find_events; horizon mask; common windows; Sun/Moon."""

from __future__ import annotations

import numpy as np
import pytest

from station.config import StationConfig
from station.tracking.elements import OrbitElements
from station.tracking.ephemeris import look_angles
from station.tracking.passes import Pass, common_windows, find_passes
from station.tracking.site import HorizonMask, Site
from station.tracking.sunmoon import moon_altaz, separation_deg, sun_altaz

from .conftest import Reference


def test_aos_tca_los_match_skyfield_find_events(
    skyfield_ref: Reference, micius: OrbitElements, delingha: StationConfig
) -> None:
    from skyfield.api import EarthSatellite, wgs84

    site = Site(
        "flat",
        delingha.site.latitude_deg,
        delingha.site.longitude_deg,
        delingha.site.altitude_m,
        min_elevation_deg=10.0,
    )
    ours = find_passes(micius.satrec, site, micius.epoch_s, 2.0)
    ts = skyfield_ref.ts_pm
    l1, l2 = micius.text.splitlines()[-2:]
    sat = EarthSatellite(l1, l2, "m", ts)
    topos = wgs84.latlon(site.latitude_deg, site.longitude_deg, elevation_m=site.altitude_m)
    t0 = skyfield_ref.times(ts, np.array([micius.epoch_s]))[0]
    t1 = skyfield_ref.times(ts, np.array([micius.epoch_s + 2 * 86400.0]))[0]
    times, events = sat.find_events(topos, t0, t1, altitude_degrees=10.0)
    posix = np.array([x.utc_datetime().timestamp() for x in times])
    rises, culms, sets = (posix[events == k] for k in (0, 1, 2))
    assert len(ours) == len(rises) == len(sets) == 8
    for p, r, c, s in zip(ours, rises, culms, sets, strict=True):
        assert p.aos_s == pytest.approx(r, abs=0.5)
        assert p.los_s == pytest.approx(s, abs=0.5)
        assert p.tca_s == pytest.approx(c, abs=1.0)
        assert 10.0 < p.max_elevation_deg < 90.0


def test_pass_fields_are_consistent(micius: OrbitElements, delingha: StationConfig) -> None:
    site = delingha.site
    ps = find_passes(micius.satrec, site, micius.epoch_s, 2.0)
    assert ps
    for p in ps:
        assert p.aos_s < p.tca_s < p.los_s
        la = look_angles(
            micius.satrec,
            site,
            np.array([p.aos_s, p.tca_s, p.los_s]),
            apparent=False,
            refraction=False,
        )
        limit = site.limit_deg(la.az_deg)
        assert la.el_deg[0] == pytest.approx(limit[0], abs=0.02)  # AOS on the limit
        assert la.el_deg[2] == pytest.approx(limit[2], abs=0.02)
        assert la.el_deg[1] == pytest.approx(p.max_elevation_deg, abs=1e-6)
        assert p.night == (p.sun_el_at_tca_deg < -12.0)
        js = p.to_json()
        assert {"aos", "tca", "los", "max_elevation_deg"} <= js.keys()
        assert str(js["aos"]).endswith("Z")
    assert any(p.night for p in ps)
    assert any(not p.night for p in ps)


def test_horizon_mask_shortens_and_removes_passes(micius: OrbitElements) -> None:
    flat = Site("s", 37.379008, 97.726947, 3153.0, min_elevation_deg=10.0)
    masked = Site(
        "s",
        37.379008,
        97.726947,
        3153.0,
        min_elevation_deg=10.0,
        horizon_mask=HorizonMask(((0.0, 20.0), (180.0, 20.0))),
    )
    a = find_passes(micius.satrec, flat, micius.epoch_s, 2.0)
    b = find_passes(micius.satrec, masked, micius.epoch_s, 2.0)
    assert len(b) < len(a)
    assert all(p.max_elevation_deg > 20.0 for p in b)
    assert sum(p.duration_s for p in b) < sum(p.duration_s for p in a)


def test_clipped_pass_at_span_start(micius: OrbitElements, delingha: StationConfig) -> None:
    first = find_passes(micius.satrec, delingha.site, micius.epoch_s, 1.0)[0]
    mid = 0.5 * (first.aos_s + first.los_s)
    clipped = find_passes(micius.satrec, delingha.site, mid, 0.01)
    assert len(clipped) == 1
    assert clipped[0].aos_s == mid
    assert clipped[0].los_s == pytest.approx(first.los_s, abs=0.2)


def test_common_windows_delingha_lijiang_within_two_days(
    micius: OrbitElements, delingha: StationConfig, lijiang: StationConfig
) -> None:
    a = find_passes(micius.satrec, delingha.site, micius.epoch_s, 2.0)
    b = find_passes(micius.satrec, lijiang.site, micius.epoch_s, 2.0)
    windows = common_windows([a, b])
    assert len(windows) >= 2
    assert any(w.all_night for w in windows)
    for w in windows:
        t = np.linspace(w.start_s + 0.2, w.end_s - 0.2, 50)
        for cfg in (delingha, lijiang):
            la = look_angles(micius.satrec, cfg.site, t, apparent=False, refraction=False)
            assert np.all(la.el_deg >= cfg.site.limit_deg(la.az_deg) - 1e-3)


def _pass(site: str, aos: float, los: float) -> Pass:
    return Pass(site, aos, (aos + los) / 2, los, 30.0, 0, 0, 0, -30.0, True, 90.0, 90.0)


def test_common_windows_intersection_logic() -> None:
    a = [_pass("a", 0, 100), _pass("a", 200, 300)]
    b = [_pass("b", 50, 250)]
    c = [_pass("c", 60, 90), _pass("c", 210, 400)]
    two = common_windows([a, b])
    assert [(w.start_s, w.end_s) for w in two] == [(50, 100), (200, 250)]
    three = common_windows([a, b, c])
    assert [(w.start_s, w.end_s) for w in three] == [(60, 90), (210, 250)]
    assert common_windows([a, b, c], min_duration_s=35) == [three[1]]
    assert common_windows([a, [_pass("b", 100, 200)]]) == []


def test_sun_moon_low_precision_vs_de421(skyfield_ref: Reference) -> None:
    from skyfield.api import wgs84

    site = Site("d", 37.379008, 97.726947, 3153.0)
    t = 1497700000.0 + np.arange(0.0, 86400.0 * 365 * 3, 86400.0 * 2.9)
    ts = skyfield_ref.ts
    import datetime as dt

    tt = ts.from_datetimes([dt.datetime.fromtimestamp(x, tz=dt.UTC) for x in t])
    topos = wgs84.latlon(site.latitude_deg, site.longitude_deg, elevation_m=site.altitude_m)
    obs = (skyfield_ref.eph["earth"] + topos).at(tt)
    for name, fn, tol in (("sun", sun_altaz, 0.02), ("moon", moon_altaz, 0.5)):
        alt, az, _ = obs.observe(skyfield_ref.eph[name]).apparent().altaz()
        ours = fn(t, site)
        err = separation_deg(ours.az_deg, ours.el_deg, az.degrees, alt.degrees)
        assert err.max() < tol, f"{name} max error {err.max():.4f} deg"
