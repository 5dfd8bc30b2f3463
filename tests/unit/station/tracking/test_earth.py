"""IERS table parsing and UT1 interpolation across a leap second."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from drivers.errors import ConfigError
from station.tracking.earth import EarthOrientation, default_eop, gmst_at, load_finals


def test_default_table_values_and_leap_second_continuity() -> None:
    eop = default_eop()
    leap = datetime(2017, 1, 1, tzinfo=UTC).timestamp()  # UTC leap second before this
    before, _, _ = eop.at(np.array([leap - 3600.0]))
    after, _, _ = eop.at(np.array([leap + 3600.0]))
    assert before[0] == pytest.approx(-0.41, abs=0.05)  # UT1-UTC end of 2016
    assert after[0] - before[0] == pytest.approx(1.0, abs=0.01)  # the leap second
    # POSIX time skips the leap second, UT1 does not: 7200 POSIX s hold 7201 s of UT1
    t = np.array([leap - 3600.0, leap + 3600.0])
    g = gmst_at(t, eop)
    rate = 2 * np.pi * 1.00273781191135448 / 86400.0  # rad per UT1 second
    assert (g[1] - g[0]) % (2 * np.pi) == pytest.approx(7201.0 * rate % (2 * np.pi), abs=2e-6)
    _, xp, yp = eop.at(np.array([leap]))
    assert abs(xp[0]) < 0.5
    assert abs(yp[0]) < 0.6


def test_zero_table_and_malformed_file(tmp_path: Path) -> None:
    z = EarthOrientation.zero()
    dut1, xp, yp = z.at(np.array([1.5e9]))
    assert dut1[0] == xp[0] == yp[0] == 0.0
    bad = tmp_path / "finals.all"
    bad.write_text(
        "73 1 2 4168x.00 I  0.120733 0.009786  0.136966 0.015902  I 0.8084178 0.0002710\n"
    )
    with pytest.raises(ConfigError, match="malformed IERS finals row"):
        load_finals(bad)
    with pytest.raises(ConfigError, match="cannot read IERS finals file"):
        load_finals(tmp_path / "missing.all")
