"""Shared pytest fixtures: opt-in hardware URL, real Mosquitto brokers, free loopback ports.

Hardware tests are opt-in: ``pytest --device-url rotctld://192.0.2.10:4533 -m hardware``
runs the tests marked ``hardware`` against a real device; without the option they are
skipped. Broker tests start a real ``mosquitto`` on a free loopback port (or a Unix socket
in a temporary directory) and stop it by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reliability.broker import USERS, write_passwd

#: autouse leak checks: no process or asyncio task outlives its test (tests/support/leaks.py)
pytest_plugins = ["tests.support.leaks"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device-url",
        action="store",
        default=None,
        help="URL of a real device for tests marked 'hardware' (e.g. rotctld://host:4533)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Driver state (drivers/timetagger/idqrecord.py: DLT streams to end after a crash) goes
    # to a directory of this test session, not the user's ~/.local/state; the processes
    # the tests start inherit it.
    if "QGS_STATE_DIR" not in os.environ:
        state = tempfile.mkdtemp(prefix="qgs-test-state-")
        os.environ["QGS_STATE_DIR"] = state
        config.add_cleanup(lambda: shutil.rmtree(state, ignore_errors=True))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--device-url"):
        return
    skip = pytest.mark.skip(reason="hardware test: give --device-url to run it against a device")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device_url(request: pytest.FixtureRequest) -> str:
    """The real device URL given with --device-url (hardware tests only)."""
    url = request.config.getoption("--device-url")
    assert isinstance(url, str)
    return url


def free_tcp_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    return free_tcp_port()


def stop_process(proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    """SIGTERM, wait (bounded), then SIGKILL: every process a test starts ends here."""
    try:
        _terminate(proc, timeout)
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


@dataclass(frozen=True)
class Broker:
    """A running Mosquitto: where it listens and its PID."""

    host: str
    port: int
    unix_socket: Path | None
    pid: int
    config: Path


def _wait_listening(proc: subprocess.Popen[bytes], probe: socket.socket, addr: object) -> None:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"mosquitto exited with {proc.returncode}: {out}")
        try:
            probe.connect(addr)  # type: ignore[arg-type]
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("mosquitto did not start listening within 10 s")


def _start_mosquitto(
    tmp: Path, *, port: int | None, unix: Path | None, auth: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        pytest.fail("mosquitto is not installed (.ci/run installs it: apt-get install mosquitto)")
    conf = tmp / "mosquitto.conf"
    lines = [
        # Started as root, mosquitto drops to user 'mosquitto', which cannot enter pytest's
        # 0700 temporary directories; tests keep the invoking user (ignored when not root).
        "user root" if os.geteuid() == 0 else "",
        "per_listener_settings false",
        *(auth if auth is not None else ["allow_anonymous true"]),
        "persistence false",
        "set_tcp_nodelay true",
        "log_dest stderr",
        "log_type error",
    ]
    lines.append(f"listener {port} 127.0.0.1" if port is not None else f"listener 0 {unix}")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    return proc, conf


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto on a free loopback TCP port, stopped by PID afterwards."""
    port = free_tcp_port()
    proc, conf = _start_mosquitto(tmp_path, port=port, unix=None)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            _wait_listening(proc, probe, ("127.0.0.1", port))
        yield Broker("127.0.0.1", port, None, proc.pid, conf)
    finally:
        stop_process(proc)


@pytest.fixture
def mosquitto_unix(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto listening on a Unix socket in a temporary directory."""
    path = tmp_path / "mqtt.sock"
    proc, conf = _start_mosquitto(tmp_path, port=None, unix=path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            _wait_listening(proc, probe, str(path))
        yield Broker("", 0, path, proc.pid, conf)
    finally:
        stop_process(proc)


#: users of the secured broker and their passwords (configs/mosquitto/qgs.acl), the same set
#: the reliability harness uses (reliability/broker.py)
TEST_USERS = USERS


@pytest.fixture
def mosquitto_secured(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto as shipped (configs/mosquitto/mosquitto.conf): password file, the shipped
    ACL (configs/mosquitto/qgs.acl) and ``use_username_as_clientid true`` on its listener.

    The password file is hashed with ``mosquitto_passwd -U`` from a 0600 plaintext file, so
    no password appears on a command line (``/proc/<pid>/cmdline``).
    """
    passwd = tmp_path / "passwd"
    if shutil.which("mosquitto_passwd") is None:
        pytest.fail("mosquitto_passwd is not installed (apt-get install mosquitto)")
    write_passwd(passwd, TEST_USERS)
    acl = Path(__file__).resolve().parents[1] / "configs" / "mosquitto" / "qgs.acl"
    port = free_tcp_port()
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        pytest.fail("mosquitto is not installed (.ci/run installs it: apt-get install mosquitto)")
    conf = tmp_path / "mosquitto.conf"
    lines = [
        "user root" if os.geteuid() == 0 else "",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {passwd}",
        f"acl_file {acl}",
        "persistence false",
        "set_tcp_nodelay true",
        "log_dest stderr",
        "log_type error",
        f"listener {port} 127.0.0.1",
        "use_username_as_clientid true",  # a listener option: after its listener line
    ]
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            _wait_listening(proc, probe, ("127.0.0.1", port))
        yield Broker("127.0.0.1", port, None, proc.pid, conf)
    finally:
        stop_process(proc)
