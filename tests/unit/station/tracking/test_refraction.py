"""Refraction formulas: against skyfield's, mutual consistency, pressure/temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest

from station.tracking.refraction import apparent_elevation_deg, bennett_deg, saemundsson_deg


def test_saemundsson_matches_skyfield_refract_above_5_deg() -> None:
    from skyfield.earthlib import refract

    el = np.linspace(5.0, 89.0, 100)
    for p, t in ((1010.0, 10.0), (690.0, 5.0), (800.0, -10.0)):
        ours = apparent_elevation_deg(el, p, t)
        ref = refract(el, t, p)
        assert np.abs(ours - ref).max() * 60 < 0.1  # arcmin (formula-level agreement)


def test_bennett_inverts_saemundsson() -> None:
    el = np.linspace(5.0, 85.0, 200)
    app = el + saemundsson_deg(el, 700.0, 0.0)
    back = app - bennett_deg(app, 700.0, 0.0)
    assert np.abs(back - el).max() * 60 < 0.1


def test_scaling_and_limits() -> None:
    r_sea = float(saemundsson_deg(10.0, 1010.0, 10.0))
    assert 5.0 < r_sea * 60 < 5.6  # ~5.3 arcmin at 10 deg, sea level
    assert float(saemundsson_deg(10.0, 696.0, 10.0)) == pytest.approx(r_sea * 696.0 / 1010.0)
    assert float(saemundsson_deg(10.0, 0.0, 10.0)) == 0.0  # vacuum
    assert float(saemundsson_deg(90.0, 1010.0, 10.0)) == 0.0  # zenith, clamped not negative
    assert float(saemundsson_deg(-5.0, 1010.0, 10.0)) == 0.0
    assert float(saemundsson_deg(10.0, 1010.0, -20.0)) > r_sea  # colder air bends more
