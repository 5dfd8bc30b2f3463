"""A real Mosquitto for the harness: open, or with the shipped password file and ACL.

Like tests/conftest.py's fixtures, but usable outside pytest: a free loopback port, started as
a child process, stopped by PID (SIGTERM, bounded wait, SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_ACL = ROOT / "configs" / "mosquitto" / "qgs.acl"
#: users of the secured broker (configs/mosquitto/qgs.acl) and their passwords: one per
#: station, an operator, the coordinator's three connections, two monitors (tests/conftest.py
#: uses this set; a user holds one connection at a time)
USERS = {
    "delingha": "dl-pass",
    "nanshan": "ns-pass",
    "operator": "op-pass",
    "coordinator": "co-pass",
    "coordinator-watch": "co-pass",
    "coordinator-cmd": "co-pass",
    "monitor": "mon-pass",
    "dashboard": "dash-pass",
}
START_BOUND_S = 10.0  #: wall seconds for Mosquitto to listen


@dataclass(frozen=True)
class Mosquitto:
    """A running broker: its loopback port and PID."""

    port: int
    pid: int
    config: Path


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, wait (bounded), then SIGKILL — by PID, never by name."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)


def exe(name: str) -> str:
    """A Mosquitto tool's path (it lives in /usr/sbin on Debian)."""
    found = shutil.which(name) or f"/usr/sbin/{name}"
    if not Path(found).exists():
        raise RuntimeError(f"{name} is not installed (apt-get install mosquitto)")
    return found


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_BOUND_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {log.read_text(errors='replace')[-800:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"mosquitto did not listen on {port} within {START_BOUND_S} s")


def write_passwd(path: Path, users: dict[str, str]) -> None:
    """A hashed Mosquitto password file (``mosquitto_passwd -U``: no password on a command line).

    The plaintext is written to a file created 0600 (never readable by others, not even
    between a write and a chmod) and hashed in place."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{u}:{p}\n" for u, p in users.items()))
    subprocess.run(
        [exe("mosquitto_passwd"), "-U", str(path)], check=True, timeout=30, capture_output=True
    )


@contextlib.contextmanager
def mosquitto(
    tmp: Path, *, secured: bool = False, extra: Sequence[str] = (), port: int | None = None
) -> Iterator[Mosquitto]:
    """Mosquitto on a free loopback port; ``secured``: as shipped (configs/mosquitto/
    mosquitto.conf): the shipped ACL, :data:`USERS` and ``use_username_as_clientid``."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    auth = ["allow_anonymous true"]
    if secured:
        write_passwd(tmp / "passwd", USERS)
        auth = [
            "allow_anonymous false",
            f"password_file {tmp / 'passwd'}",
            f"acl_file {SHIPPED_ACL}",
        ]
    lines = [
        "user root" if os.geteuid() == 0 else "",
        "per_listener_settings false",
        *auth,
        "persistence false",
        "set_tcp_nodelay true",
        "log_dest stderr",
        "log_type error",
        f"listener {port} 127.0.0.1",
        # a listener option (after its listener line): a client id is its user name
        "use_username_as_clientid true" if secured else "",
        *extra,
    ]
    conf = tmp / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    log = tmp / "mosquitto.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [exe("mosquitto"), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        _wait_listening(proc, port, log)
        yield Mosquitto(port, proc.pid, conf)
    finally:
        stop(proc)
