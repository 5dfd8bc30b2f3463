"""``python -m sim_hardware`` as a subprocess: URLs JSON, raw clients per device, clean stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tty
import urllib.request
from pathlib import Path

import pytest
import zmq

from drivers.clock import WarpSpec

ROOT = Path(__file__).resolve().parents[4]
CONFIG = ROOT / "configs" / "rig" / "delingha_lijiang.toml"
PASS_START = 1619716680.0  # 2021-04-29T17:18:00Z, the config's [world] start_utc


def start_rig(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sim_hardware", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    """Terminate by PID (kill after a bound) and close the pipes."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)


def wait_file(path: Path, proc: subprocess.Popen[str], bound: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if path.exists():
            return dict(json.loads(path.read_text()))
        if proc.poll() is not None:
            pytest.fail(
                f"rig exited early ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.05)
    pytest.fail("rig did not write its URLs in time")


def serial_query(path: str, request: bytes, bound: float = 5.0) -> bytes:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        tty.setraw(fd)
        os.write(fd, request)
        buf = b""
        deadline = time.monotonic() + bound
        while b"\r\n" not in buf and time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                buf += os.read(fd, 1024)
            time.sleep(0.005)
        return buf
    finally:
        os.close(fd)


def test_rig_serves_every_device_and_stops_cleanly(tmp_path: Path) -> None:
    urls_file = tmp_path / "urls.json"
    spec = WarpSpec(epoch=PASS_START, anchor=time.time(), rate=10.0)
    proc = start_rig(
        "--config", str(CONFIG), "--urls-json", str(urls_file), "--clock", spec.to_string()
    )
    try:
        urls = wait_file(urls_file, proc)
        assert WarpSpec.parse(str(urls["_clock"])) == spec
        assert set(urls) == {"delingha", "lijiang", "_clock"}
        dl = urls["delingha"]
        lj = urls["lijiang"]
        assert isinstance(dl, dict)
        assert isinstance(lj, dict)
        # rotctld over TCP
        host, port = dl["mount"].removeprefix("rotctld://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"p\n")
            s.settimeout(5)
            reply = b""
            while reply.count(b"\n") < 2:
                reply += s.recv(1024)
        _az, el = (float(x) for x in reply.split()[:2])
        assert el == pytest.approx(90.0, abs=0.1)
        # LX200 on a pty
        assert dl["mount_lx200"].startswith("lx200+serial:///dev/pts/")
        # ASCOM Alpaca over HTTP (device 0): NotConnected (0x407) until a client connects
        base = dl["mount_alpaca"].removeprefix("alpaca://").removesuffix("/0")
        with urllib.request.urlopen(f"http://{base}/api/v1/telescope/0/altitude", timeout=5) as r:
            assert json.loads(r.read())["ErrorNumber"] == 0x407
        # ELL14 on a pty
        hwp_path = dl["hwp"].removeprefix("elliptec+serial://").split("?")[0]
        assert serial_query(hwp_path, b"0in").startswith(b"0IN0E")
        # SMC100 on a pty (VISA resource name around the path)
        smc_path = lj["smc100"].removeprefix("smc100+visa://ASRL").split("::")[0]
        assert serial_query(smc_path, b"1TS\r\n") == b"1TS00000A\r\n"
        # IDQ over zmq
        ctx = zmq.Context()
        try:
            req = ctx.socket(zmq.REQ)
            req.setsockopt(zmq.LINGER, 0)
            req.setsockopt(zmq.RCVTIMEO, 5000)
            req.connect(
                lj["timetagger"].removeprefix("idq+zmq://").split("?")[0].join(["tcp://", ""])
            )
            req.send_string("*IDN?")
            assert req.recv_string().startswith("ID Quantique")
            req.close()
        finally:
            ctx.term()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        stop(proc)


def test_config_error_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[rig]\nseed = 1\nbogus = 2\n[devices.x.mount]\n")
    proc = start_rig("--config", str(bad))
    try:
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1
        assert "bogus" in lines[0]
    finally:
        stop(proc)


def test_missing_file_and_bad_fault_device(tmp_path: Path) -> None:
    proc = start_rig("--config", str(tmp_path / "nope.toml"))
    try:
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 2
        assert "file not found" in err
    finally:
        stop(proc)
    cfg = tmp_path / "faults.toml"
    cfg.write_text('[devices.a.mount]\n[[faults]]\ndevice = "b.mount"\nkind = "hang"\nat_s = 1.0\n')
    proc = start_rig("--config", str(cfg))
    try:
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 2
        assert "faults[0].device" in err
    finally:
        stop(proc)
