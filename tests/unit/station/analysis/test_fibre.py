"""The fibre comparison: closed-form numbers checked by hand, and bad input refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from station.analysis.fibre import (
    ALPHA_810_DB_PER_KM,
    DEFAULT_PAIR_RATE_HZ,
    EARTH_RADIUS_KM,
    compare_fibre,
    fibre_length_km,
    format_power_of_ten,
    great_circle_km,
    link_rate_hz,
    total_loss_db,
)


def test_fibre_length_is_loss_over_attenuation() -> None:
    assert fibre_length_km(10.0, 0.2) == pytest.approx(50.0)
    assert fibre_length_km(71.3, 0.2) == pytest.approx(356.5)
    assert fibre_length_km(0.0, 3.0) == 0.0


def test_total_loss_of_one_pair_in_ten_million_is_70_db() -> None:
    assert total_loss_db(0.59, 5.9e6) == pytest.approx(70.0)
    assert total_loss_db(5.9e6, 5.9e6) == pytest.approx(0.0)


def test_comparison_by_hand() -> None:
    # C/R = 1e-7 -> 70 dB in total; two detectors at 0.5 are 6.0206 dB of it
    f = compare_fibre(0.59, 1000.0, pair_rate_hz=5.9e6, detector_efficiency=(0.5, 0.5))
    assert not f.pair_rate_is_default
    assert f.total_loss_db == pytest.approx(70.0)
    assert f.channel_loss_db == pytest.approx(70.0 - 10 * math.log10(4.0))
    assert f.equivalent_fibre_1550_km == pytest.approx(f.channel_loss_db / 0.2)
    assert f.equivalent_fibre_1550_km == pytest.approx(319.897, abs=1e-3)
    assert f.equivalent_fibre_810_km == pytest.approx(f.channel_loss_db / ALPHA_810_DB_PER_KM)
    # 1000 km of fibre: 200 dB at 1550 nm, 3000 dB at 810 nm, on the same detectors
    assert f.fibre_loss_1550_db == pytest.approx(200.0)
    assert f.fibre_loss_810_db == pytest.approx(1000.0 * ALPHA_810_DB_PER_KM)
    assert f.log10_fibre_pairs_1550_per_s == pytest.approx(math.log10(5.9e6 * 0.25) - 20.0)
    assert f.log10_fibre_pairs_810_per_s == pytest.approx(
        math.log10(5.9e6 * 0.25) - 100.0 * ALPHA_810_DB_PER_KM
    )
    assert f.advantage_1550_db == pytest.approx(200.0 - f.channel_loss_db)
    assert "midway" in f.geometry


def test_perfect_detectors_make_channel_and_total_loss_equal() -> None:
    f = compare_fibre(1.0, 500.0, pair_rate_hz=1e6, detector_efficiency=(1.0, 1.0))
    assert f.channel_loss_db == pytest.approx(f.total_loss_db) == pytest.approx(60.0)
    assert f.log10_fibre_pairs_1550_per_s == pytest.approx(6.0 - 10.0)


def test_default_pair_rate_is_the_rig_s_and_is_flagged() -> None:
    f = compare_fibre(1.0, 100.0)
    assert f.pair_rate_hz == DEFAULT_PAIR_RATE_HZ == 5.9e6
    assert f.pair_rate_is_default
    assert "assumed" in f.summary()
    assert "assumed" not in compare_fibre(1.0, 100.0, pair_rate_hz=5.9e6).summary()


def test_rates_far_below_float64_stay_finite_as_logs() -> None:
    f = compare_fibre(0.5, 1203.0)
    # 1203 km at 3 dB/km: 3609 dB, 10^-354: zero as a float, finite as a log
    assert 10.0**f.log10_fibre_pairs_810_per_s == 0.0
    assert math.isfinite(f.log10_fibre_pairs_810_per_s)
    assert f.log10_fibre_pairs_810_per_s == pytest.approx(math.log10(5.9e6 / 4) - 360.9)
    text = f.summary()
    assert "1203 km of fibre" in text
    assert "e-355" in text  # 10^(6.17 - 360.9) = 5e-355


def test_json_has_units_in_the_names_and_plain_values() -> None:
    doc = compare_fibre(0.5, 1203.0).to_json()
    for key, value in doc.items():
        assert isinstance(value, float | bool | str), key
        if isinstance(value, float):
            assert math.isfinite(value), key
    assert {"total_loss_db", "channel_loss_db", "distance_km", "equivalent_fibre_1550_km"} <= set(
        doc
    )


def test_power_of_ten_text() -> None:
    assert format_power_of_ten(-109.5) == "3e-110"
    assert format_power_of_ten(-18.0) == "1e-18"
    assert format_power_of_ten(-0.30103) == "0.5"
    assert format_power_of_ten(2.0) == "100"
    assert format_power_of_ten(-4.00001) == "1e-4"  # mantissa 9.99.. rounds up
    assert format_power_of_ten(-math.inf) == "0"


def test_great_circle_known_answers() -> None:
    assert great_circle_km(0.0, 0.0, 0.0, 90.0) == pytest.approx(math.pi / 2 * EARTH_RADIUS_KM)
    assert great_circle_km(10.0, 20.0, 10.0, 20.0) == 0.0
    # the shipped station coordinates against the papers' ground distances (±0.5 %)
    delingha = (37.379008, 97.726947)
    lijiang = (26.693931, 100.029319)
    nanshan = (43.475461, 87.176686)
    assert great_circle_km(*delingha, *lijiang) == pytest.approx(1203.0, rel=5e-3)
    assert great_circle_km(*delingha, *nanshan) == pytest.approx(1120.0, rel=5e-3)


def test_link_rate_counts_only_bins_with_both_links_up() -> None:
    rate, seconds = link_rate_hz(
        coincidences=np.array([100, 12, 30, 50]),
        accidentals=np.array([1.0, 2.0, 0.0, np.nan]),
        durations_s=np.array([10.0, 10.0, 10.0, 10.0]),
        up=np.array([False, True, True, True]),
    )
    assert seconds == 20.0  # the NaN-accidentals bin is not counted either
    assert rate == pytest.approx((12 - 2 + 30 - 0) / 20.0)
    rate, seconds = link_rate_hz([1], [0.0], [10.0], [False])
    assert math.isnan(rate)
    assert seconds == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"coincidence_rate_hz": 0.0, "distance_km": 100.0}, "coincidence_rate_hz"),
        ({"coincidence_rate_hz": -1.0, "distance_km": 100.0}, "coincidence_rate_hz"),
        ({"coincidence_rate_hz": math.nan, "distance_km": 100.0}, "coincidence_rate_hz"),
        ({"coincidence_rate_hz": 1.0, "distance_km": 0.0}, "distance_km"),
        ({"coincidence_rate_hz": 1.0, "distance_km": math.inf}, "distance_km"),
        ({"coincidence_rate_hz": 1.0, "distance_km": 1.0, "pair_rate_hz": 0.0}, "pair_rate"),
        ({"coincidence_rate_hz": 10.0, "distance_km": 1.0, "pair_rate_hz": 5.0}, "exceeds"),
        (
            {"coincidence_rate_hz": 1.0, "distance_km": 1.0, "detector_efficiency": (0.0, 0.5)},
            "detector_efficiency",
        ),
        (
            {"coincidence_rate_hz": 1.0, "distance_km": 1.0, "detector_efficiency": (0.5, 1.5)},
            "detector_efficiency",
        ),
        ({"coincidence_rate_hz": 1.0, "distance_km": 1.0, "alpha_810_db_per_km": 0.0}, "alpha"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compare_fibre(**kwargs)  # type: ignore[arg-type]


def test_fibre_length_refuses_negative_loss_and_zero_attenuation() -> None:
    with pytest.raises(ValueError, match="loss_db"):
        fibre_length_km(-1.0, 0.2)
    with pytest.raises(ValueError, match="alpha"):
        fibre_length_km(1.0, 0.0)
