"""`passes` and `track-plan` through argparse: output, plots, and one-line errors (exit 2)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from station.tracking.commands import register

from .conftest import CONFIGS, REPO

DELINGHA = str(CONFIGS / "stations" / "delingha.toml")
LIJIANG = str(CONFIGS / "stations" / "lijiang.toml")
NANSHAN = str(CONFIGS / "stations" / "nanshan.toml")
TLE = str(CONFIGS / "satellites" / "micius.tle")


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="qgs")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    code = args.func(args)
    assert isinstance(code, int)
    return code


def test_passes_json_lists_iso_times(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(
            [
                "passes",
                "--station",
                DELINGHA,
                "--tle",
                TLE,
                "--days",
                "2",
                "--json",
                "--now",
                "2017-06-17T12:00:00Z",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert isinstance(doc, list)
    assert len(doc) == 8
    for p in doc:
        assert p["aos"].endswith("Z")
        assert p["aos"] < p["tca"] < p["los"]
        assert 10.0 <= p["max_elevation_deg"] <= 90.0


@pytest.mark.parametrize("fmt", ["tle", "json", "xml"])
def test_passes_table_and_common_windows(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    tle = str(CONFIGS / "satellites" / f"micius.{fmt}")
    assert (
        run(["passes", "--station", DELINGHA, "--with", LIJIANG, "--tle", tle, "--now", "epoch"])
        == 0
    )
    out = capsys.readouterr().out
    assert "delingha: 8 passes" in out
    assert "lijiang:" in out
    assert "common-visibility windows (delingha + lijiang): 5" in out
    assert "night" in out


def test_passes_json_common_windows_three_stations(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(
            [
                "passes",
                "--station",
                DELINGHA,
                "--with",
                NANSHAN,
                "--with",
                LIJIANG,
                "--now",
                "epoch",
                "--json",
                "--days",
                "3",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["stations"]) == {"delingha", "nanshan", "lijiang"}
    for w in doc["common_windows"]:
        assert len(w["passes"]) == 3
        assert w["start"] < w["end"]


def test_track_plan_writes_png_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "plan.png"
    assert (
        run(
            [
                "track-plan",
                "--station",
                LIJIANG,
                "--now",
                "epoch",
                "--pass",
                "0",
                "--png",
                str(png),
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["safe"] is True
    assert doc["keyhole_strategy"] in ("none", "flip", "skip")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000
    assert doc["samples"] > 1000  # 10 Hz over minutes


def test_track_plan_unsafe_pass_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "day.png"  # the 80 deg daytime pass runs near the Sun
    assert (
        run(
            ["track-plan", "--station", LIJIANG, "--now", "epoch", "--pass", "2", "--png", str(png)]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: unsafe (sun)")
    assert err.count("\n") == 1
    assert png.exists()  # the plot is still drawn, to show why


def _bad_tle(tmp_path: Path) -> str:
    lines = Path(TLE).read_text().splitlines()
    lines[2] = lines[2][:68] + "0"
    p = tmp_path / "bad.tle"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["passes", "--station", DELINGHA, "--now", "2026-01-01T00:00:00Z"], "days from"),
        (["passes", "--station", DELINGHA], "beyond the allowed 14 days"),
        (["passes", "--station", DELINGHA, "--now", "tomorrow"], "not an ISO-8601 time"),
        (["passes", "--station", "/nonexistent.toml", "--now", "epoch"], "file not found"),
        (["passes", "--station", DELINGHA, "--now", "epoch", "--days", "0"], "--days"),
        (
            ["passes", "--station", DELINGHA, "--now", "epoch", "--norad", "25544"],
            "no element set for NORAD 25544",
        ),
        (["track-plan", "--station", DELINGHA, "--now", "epoch", "--pass", "99"], "out of range"),
    ],
)
def test_bad_input_is_one_line_on_stderr_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expect: str
) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert expect in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_malformed_tle_impossible_site_and_impossible_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run(["passes", "--station", DELINGHA, "--tle", _bad_tle(tmp_path), "--now", "epoch"]) == 2
    )
    assert "line 3 column 69: checksum" in capsys.readouterr().err
    text = Path(DELINGHA).read_text().replace('"../satellites/micius.tle"', f'"{TLE}"')
    site = tmp_path / "site.toml"
    site.write_text(text.replace("latitude_deg = 37.379008", "latitude_deg = 97.0"))
    assert run(["passes", "--station", str(site), "--now", "epoch"]) == 2
    assert "site.latitude_deg: expected a number in [-90, 90]" in capsys.readouterr().err
    narrow = tmp_path / "narrow.toml"  # elevation axis cannot go below 60: whole pass excluded
    narrow.write_text(text.replace("el_min_deg = 5.0", "el_min_deg = 60.0"))
    assert run(["track-plan", "--station", str(narrow), "--now", "epoch"]) == 2
    err = capsys.readouterr().err
    assert "elevation position" in err
    assert "exceeds the limit 60" in err


def test_module_entry_point_runs_without_traceback() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "station.tracking.commands",
            "passes",
            "--station",
            DELINGHA,
            "--now",
            "epoch",
            "--days",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "delingha:" in proc.stdout
