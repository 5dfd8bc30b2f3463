"""The `qgs` entry point: help, device URL checks, clean errors instead of tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from station.cli import main


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: qgs" in capsys.readouterr().out


def test_devices_lists_every_driver(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    for name in ("rotctld", "lx200", "elliptec", "smc100", "idq"):
        assert name in out


def test_devices_check_explains_a_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--check", "elliptec+serial:///dev/ttyUSB1?address=2"]) == 0
    out = capsys.readouterr().out
    assert "transport serial:///dev/ttyUSB1" in out
    assert "param     address=2" in out


def test_bad_url_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--check", "warp://x:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unknown device driver 'warp'" in err


def test_unknown_arguments_are_refused() -> None:
    with pytest.raises(SystemExit) as info:
        main(["devices", "--bogus"])
    assert info.value.code == 2


def test_console_script_runs_as_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "station.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.startswith("qgs ")


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ([], "cannot use the broker mqtt://127.0.0.1:9: "),  # nothing listens on port 9
        (["--password-file", "/nonexistent/pw"], "cannot read the password file"),
        (["--ca-file", "/nonexistent/ca.crt"], "cannot read the CA file"),
    ],
)
def test_cmd_failures_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], extra: list[str], words: str
) -> None:
    code = main(["cmd", "delingha", "get_schedule", "--broker", "mqtt://127.0.0.1:9", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err
    assert "Traceback" not in err
    assert err.count("\n") == 1
