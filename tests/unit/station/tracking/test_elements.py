"""TLE and OMM loading: the three shipped formats agree; faults name line and column."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from station.tracking.elements import (
    ElementsError,
    StaleElementsError,
    load_catalog,
    load_elements,
    parse_omm_json,
    parse_omm_xml,
    parse_tle,
    select,
    tle_checksum,
)
from station.tracking.ephemeris import propagate_teme

from .conftest import CONFIGS

SAT = CONFIGS / "satellites"
L1 = "1 41731U 16051A   17168.50000000  .00000632  00000-0  29820-4 0  9993"
L2 = "2 41731  97.3713 273.1500 0013100 115.2000 245.0600 15.23951680 46333"
ISS1 = "1 25544U 98067A   18184.80969102  .00001614  00000-0  31745-4 0  9993"
ISS2 = "2 25544  51.6414 295.8524 0003435 262.6267 204.2868 15.54005638121106"


def test_shipped_tle_is_micius_with_valid_checksums() -> None:
    (e,) = load_elements(SAT / "micius.tle")
    assert e.norad_id == 41731
    assert e.name == "MICIUS (QUESS)"
    assert e.epoch.isoformat() == "2017-06-17T12:00:00+00:00"
    lines = e.text.splitlines()[1:]
    assert all(int(ln[68]) == tle_checksum(ln) for ln in lines)
    assert 97.0 < np.degrees(e.satrec.inclo) < 98.0


def test_tle_json_and_xml_propagate_identically() -> None:
    sets = [load_elements(SAT / f"micius.{ext}")[0] for ext in ("tle", "json", "xml")]
    t = sets[0].epoch_s + np.arange(0.0, 2 * 86400.0, 900.0)
    ref, _ = propagate_teme(sets[0].satrec, t)
    for e in sets[1:]:
        assert e.epoch_s == sets[0].epoch_s
        r, _ = propagate_teme(e.satrec, t)
        assert np.abs(r - ref).max() < 1e-6  # km


def test_two_line_and_mixed_sets_parse() -> None:
    text = f"{L1}\n{L2}\nISS (ZARYA)\n{ISS1}\n{ISS2}\n"
    sets = parse_tle(text)
    assert [s.norad_id for s in sets] == [41731, 25544]
    assert sets[0].name == "NORAD 41731"
    assert sets[1].name == "ISS (ZARYA)"


def test_catalog_directory_and_selection(tmp_path: Path) -> None:
    (tmp_path / "a.tle").write_text(f"X\n{L1}\n{L2}\n")
    (tmp_path / "b.txt").write_text(f"ISS\n{ISS1}\n{ISS2}\n")
    (tmp_path / "README.md").write_text("not elements")
    pool = load_catalog(tmp_path)
    assert {e.norad_id for e in pool} == {41731, 25544}
    assert select(pool, norad_id=25544).name == "ISS"
    with pytest.raises(ElementsError, match="no element set for NORAD 1"):
        select(pool, norad_id=1)


def _put(line: str, col: int, text: str, *, fix_checksum: bool = True) -> str:
    """Overwrite ``line`` at 1-based column ``col``; recompute the checksum if asked."""
    out = line[: col - 1] + text + line[col - 1 + len(text) :]
    return out[:68] + str(tle_checksum(out)) if fix_checksum and len(out) == 69 else out


# file lines: 1 = name, 2 = TLE line 1, 3 = TLE line 2
@pytest.mark.parametrize(
    ("l1", "l2", "where", "what"),
    [
        (
            _put(L1, 69, "4", fix_checksum=False),
            L2,
            "line 2 column 69",
            "checksum digit is 4, computed 3",
        ),
        (L1, _put(L2, 69, "0", fix_checksum=False), "line 3 column 69", "checksum"),
        (L1[:60], L2, "line 2 column 61", "69 characters long, got 60"),
        (L1, _put(L2, 9, " 97.3X13"), "line 3 column 9", "inclination"),
        (L1, _put(L2, 9, "197.3713"), "line 3 column 9", "inclination (deg) 197.371 is outside"),
        (L1, _put(L2, 27, "0013X00"), "line 3 column 27", "eccentricity"),
        (L1, _put(L2, 53, "15.2395x680"), "line 3 column 53", "mean motion"),
        (_put(L1, 19, "17168x50000000"), L2, "line 2 column 19", "epoch"),
        (_put(L1, 54, " 2982X-4"), L2, "line 2 column 54", "BSTAR"),
        (L1, _put(L2, 3, "41732"), "line 3 column 3", "satellite number differs"),
        (L1, _put(L2, 1, "3"), "line 3 column 1", "start with '2 '"),
    ],
)
def test_malformed_tle_names_line_and_column(l1: str, l2: str, where: str, what: str) -> None:
    with pytest.raises(ElementsError) as info:
        parse_tle(f"MICIUS\n{l1}\n{l2}\n", source="bad.tle")
    msg = str(info.value)
    assert msg.startswith(f"bad.tle:{where}: ")
    assert what in msg


def test_malformed_tle_line_numbers_are_file_lines() -> None:
    text = f"\nMICIUS\n{L1}\n{L2[:68]}0\n"
    with pytest.raises(ElementsError, match=r"line 4 column 69: checksum digit is 0, computed 3"):
        parse_tle(text, source="x.tle")


def test_truncated_set_and_empty_file() -> None:
    with pytest.raises(ElementsError, match="without a line 2"):
        parse_tle(f"{L1}\n")
    with pytest.raises(ElementsError, match="no element sets"):
        parse_tle("\n\n")


def test_omm_json_missing_and_bad_fields() -> None:
    good = (SAT / "micius.json").read_text()
    with pytest.raises(ElementsError, match=r"\[0\]\.MEAN_MOTION: required OMM field is missing"):
        parse_omm_json(good.replace('"MEAN_MOTION":15.2395168,', ""), source="m.json")
    with pytest.raises(ElementsError, match=r"\[0\]\.INCLINATION: expected a number in \[0, 180\]"):
        parse_omm_json(good.replace('"INCLINATION":97.3713', '"INCLINATION":297.3'))
    with pytest.raises(ElementsError, match=r"EPOCH: expected an ISO time"):
        parse_omm_json(good.replace("2017-06-17T12:00:00.000000", "yesterday"))
    with pytest.raises(ElementsError, match=r"line 1 column \d+: not valid JSON"):
        parse_omm_json("[{,}]")


def test_omm_xml_faults() -> None:
    good = (SAT / "micius.xml").read_text()
    with pytest.raises(ElementsError, match=r"segment\[0\]\.ECCENTRICITY: expected a number"):
        parse_omm_xml(good.replace("<ECCENTRICITY>.00131", "<ECCENTRICITY>abc"))
    with pytest.raises(ElementsError, match="not valid XML"):
        parse_omm_xml(good.replace("</omm>", ""))


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("x")
    with pytest.raises(ElementsError, match=r"unknown element file type '\.csv'"):
        load_elements(tmp_path / "m.csv")
    with pytest.raises(ElementsError, match="file not found"):
        load_elements(tmp_path / "none.tle")


def test_epoch_age_warns_then_refuses(caplog: pytest.LogCaptureFixture) -> None:
    (e,) = parse_tle(f"{L1}\n{L2}\n", source="m.tle")
    day = 86400.0
    with caplog.at_level(logging.WARNING):
        assert e.check_age(e.epoch_s + 1 * day) == pytest.approx(1.0)
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        assert e.check_age(e.epoch_s + 5 * day) == pytest.approx(5.0)
    assert "5.0 days old" in caplog.text
    with pytest.raises(StaleElementsError, match=r"m.tle: .* 15.0 days .* allowed 14 days"):
        e.check_age(e.epoch_s + 15 * day)
    assert e.check_age(e.epoch_s + 15 * day, max_age_days=20) == pytest.approx(15.0)
    with pytest.raises(StaleElementsError):
        e.check_age(e.epoch_s - 30 * day)  # epoch far in the future of "now"


@pytest.mark.parametrize(
    ("norad", "words"),
    [("9" * 5000, "not usable JSON"), ("4862541039", "OMM rejected by SGP4")],
)
def test_omm_with_an_impossible_catalog_number_is_an_elements_error(norad: str, words: str) -> None:
    """Found by fuzzing (reliability/fuzz.py): these escaped as bare ValueErrors."""
    text = (
        f'[{{"OBJECT_NAME": "X", "NORAD_CAT_ID": {norad}, "EPOCH": "2021-04-27T10:09:19.800576",'
        ' "MEAN_MOTION": 15.25507799, "ECCENTRICITY": 0.0012844, "INCLINATION": 97.3499,'
        ' "RA_OF_ASC_NODE": 30.8507, "ARG_OF_PERICENTER": 347.0485, "MEAN_ANOMALY": 124.2616,'
        ' "EPHEMERIS_TYPE": 0, "CLASSIFICATION_TYPE": "U", "ELEMENT_SET_NO": 999,'
        ' "REV_AT_EPOCH": 26142, "BSTAR": 3.026e-05, "MEAN_MOTION_DOT": 6.96e-06,'
        ' "MEAN_MOTION_DDOT": 0}]'
    )
    with pytest.raises(ElementsError, match=words):
        parse_omm_json(text)
