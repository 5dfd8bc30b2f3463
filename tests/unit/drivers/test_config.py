"""TOML config access: errors name the file, the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.config import load_toml
from drivers.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(text)
    return path


def test_typed_reads(tmp_path: Path) -> None:
    table = load_toml(
        write(
            tmp_path,
            '[site]\nlatitude_deg = 37.378\nname = "Delingha"\nmask = [1, 2.5]\nnight = true\n'
            "[[stations]]\nn = 1\n[[stations]]\nn = 2\n",
        )
    )
    site = table.table("site")
    assert site.number("latitude_deg", min=-90, max=90) == 37.378
    assert site.string("name") == "Delingha"
    assert site.numbers("mask") == [1.0, 2.5]
    assert site.boolean("night") is True
    assert site.number("altitude_m", 0.0) == 0.0  # default
    site.finish()
    assert [s.integer("n") for s in table.tables("stations")] == [1, 2]


def test_out_of_range_names_file_key_and_range(tmp_path: Path) -> None:
    path = write(tmp_path, "[site]\nlatitude_deg = 123.0\n")
    with pytest.raises(ConfigError) as info:
        load_toml(path).table("site").number("latitude_deg", min=-90, max=90)
    text = str(info.value)
    assert str(path) in text
    assert "site.latitude_deg" in text
    assert "[-90, 90]" in text
    assert "123.0" in text


@pytest.mark.parametrize("literal", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_even_without_a_range(tmp_path: Path, literal: str) -> None:
    """NaN compares false with everything, so `v < min or v > max` alone lets it through."""
    path = write(tmp_path, f"[site]\nx = {literal}\nxs = [1.0, {literal}]\n")
    site = load_toml(path).table("site")
    with pytest.raises(ConfigError, match="expected a finite number"):
        site.number("x")
    with pytest.raises(ConfigError, match="expected a finite number in \\[0, 10\\]"):
        site.number("x", min=0, max=10)
    with pytest.raises(ConfigError, match="finite numbers"):
        site.numbers("xs")


def test_wrong_type_missing_and_choice(tmp_path: Path) -> None:
    table = load_toml(write(tmp_path, '[m]\nspeed = "fast"\nmode = "warp"\nflag = 1\n')).table("m")
    with pytest.raises(ConfigError, match=r"m\.speed: expected a number"):
        table.number("speed")
    with pytest.raises(ConfigError, match=r"m\.absent: required key is missing"):
        table.number("absent")
    with pytest.raises(ConfigError, match=r"expected one of \['key', 'bell'\], got 'warp'"):
        table.choice("mode", ["key", "bell"])
    with pytest.raises(ConfigError, match="expected true or false"):
        table.boolean("flag")


def test_unknown_keys_are_reported(tmp_path: Path) -> None:
    table = load_toml(write(tmp_path, "[site]\nlatitude_deg = 1.0\nlatitdue_deg = 2.0\n"))
    site = table.table("site")
    site.number("latitude_deg")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['latitdue_deg'\]"):
        site.finish()


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_toml(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(write(tmp_path, "[site\nx = 1\n"))


def test_a_5000_digit_integer_is_a_config_error(tmp_path: Path) -> None:
    """Python refuses to convert > 4300 digits; a hostile file must still get a typed error."""
    path = tmp_path / "big.toml"
    path.write_text(f"x = {'9' * 5000}\n")
    with pytest.raises(ConfigError, match="not usable TOML"):
        load_toml(path)
