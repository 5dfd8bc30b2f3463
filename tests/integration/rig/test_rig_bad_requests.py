"""Bad requests to every emulator of the running rig: the device's own error reply, then
normal service; the rig process survives all of it and stops cleanly (no traceback).

One raw client per front-end, through the transport the rig really serves it on: rotctld
(TCP socket), LX200, ELL14 and SMC100 (ptys), IDQ SCPI and DataLinkTarget (zmq REQ, plus a
non-zmq TCP peer sending junk at the zmq port).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import zmq

from .rawrig import Idq, RawPty, RigProcess, Rotctld, pty_path, run_rig, tcp_address

PASS_START = 1619716680.0  # 2021-04-29T17:18:00Z, the rig config's [world] start_utc
JUNK = bytes(range(256)) + b"\xff\xfe\x00garbage\x1b[2J"
#: Bytes that are no command of any ASCII protocol (rotctld would run the letters in JUNK).
BINARY = bytes(range(0x80, 0x100)) + b"\x00\x01\x02\x1b\x7f"


@pytest.fixture
def rig(tmp_path: Path) -> Any:
    with run_rig(tmp_path, epoch=PASS_START, rate=5.0) as rig:
        yield rig


def _alive(rig: RigProcess) -> None:
    assert rig.proc.poll() is None, rig.stderr_text()


def test_rotctld(rig: RigProcess) -> None:
    client = Rotctld(rig.station("delingha")["mount"])
    try:
        assert client.ask("P abc 10\n") == ["RPRT -1"]  # not a number: RIG_EINVAL
        assert client.ask("P 10 95\n") == ["RPRT -1"]  # above the firmware limit
        assert client.ask("\\set_pos 1e999 10\n") == ["RPRT -1"]  # not finite
        assert client.ask("+\\set_pos x y\n", 2) == ["set_pos: x y", "RPRT -1"]
        assert client.ask("C min_az 0\n") == ["RPRT -9"]  # firmware limits are fixed
        client.send(BINARY + b" \\no_such_command\n")  # unknown commands: no reply (Hamlib)
        client.send(b"x" * 10_000 + b"\n")  # over-long line: discarded
        assert client.silent_for(0.3)
        assert client.ask("p\n", 2) == ["0.00", "90.00"]  # still parked, still serving
    finally:
        client.close()
    _alive(rig)


def test_lx200(rig: RigProcess) -> None:
    port = RawPty(pty_path(rig.station("delingha")["mount_lx200"]))
    try:
        port.write(b":XY#")
        assert port.read_exactly(1) == b"0"  # unknown command
        port.write(b":Sa+95*00#")
        assert port.read_exactly(1) == b"0"  # invalid altitude
        port.write(b":Saabc#")
        assert port.read_exactly(1) == b"0"
        port.write(JUNK.replace(b":", b"").replace(b"\x06", b""))  # outside any frame: ignored
        assert port.drain(0.2) == b""
        port.write(b":GVP#")
        assert port.read_until(b"#") == b"On-Step#"
        port.write(b":GA#")
        assert port.read_until(b"#") == b"+90*00'00#"
    finally:
        port.close()
    _alive(rig)


def test_elliptec(rig: RigProcess) -> None:
    port = RawPty(pty_path(rig.station("delingha")["hwp"]))
    try:
        port.write(b"0zz")
        assert port.read_until(b"\r\n") == b"0GS03\r\n"  # unknown command
        port.write(b"0sv7F")
        assert port.read_until(b"\r\n") == b"0GS04\r\n"  # value out of range
        port.write(b"0gs")
        assert port.read_until(b"\r\n") == b"0GS04\r\n"  # latched until read
        port.write(b"0maXYZ00000")
        assert port.read_until(b"\r\n") == b"0GS03\r\n"  # non-hex data
        # Bytes that cannot start a command are skipped; flush any half command with CRs.
        port.write(bytes(b for b in JUNK if not chr(b).isalnum()) + b"\r" * 9)
        port.drain(0.3)
        port.write(b"0in")
        assert port.read_until(b"\r\n").startswith(b"0IN0E")
    finally:
        port.close()
    _alive(rig)


def test_smc100(rig: RigProcess) -> None:
    port = RawPty(pty_path(rig.station("lijiang")["smc100"]))
    try:
        port.write(b"1XX\r\n")
        port.write(b"1TE\r\n")
        assert port.read_until(b"\r\n") == b"1TEA\r\n"  # unknown command
        port.write(b"1PA\r\n1TE\r\n")
        assert port.read_until(b"\r\n") == b"1TEC\r\n"  # parameter missing
        port.write(JUNK + b"\r\n")
        port.drain(0.3)  # whatever the junk line did, the line keeps serving
        port.write(b"1TE\r\n")
        assert port.read_until(b"\r\n").startswith(b"1TE")
        port.write(b"1VE\r\n")
        assert port.read_until(b"\r\n").startswith(b"1VE")
    finally:
        port.close()
    _alive(rig)


def test_idq(rig: RigProcess) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    idq = Idq(ctx, rig.station("lijiang")["timetagger"])
    try:
        assert idq.ask("FOO:BAR 1").startswith("SCPI_ERR_UNDEFINED_HEADER")
        assert idq.ask("INPU9:ENAB ON").startswith("SCPI_ERR_HEADER_SUFFIX_OUT_OF_RANGE")
        assert idq.ask("INPU1:THRE 5V").startswith("SCPI_ERR_DATA_OUT_OF_RANGE")
        assert idq.ask(JUNK).startswith("SCPI_ERR_")  # not even UTF-8
        assert idq.ask("SYST:ERR?").startswith("SCPI_ERR_UNDEFINED_HEADER")  # oldest first
        assert "error" in idq.ask_dlt(JUNK)
        assert (
            "--channel"
            in idq.ask_dlt("start-stream --address 127.0.0.1 --channel 99 --stream-port 0")[
                "error"
            ]["description"]
        )
        # A peer that does not speak ZMTP at all: the zmq socket drops it.
        for port in (idq.scpi_port, idq.dlt_port):
            assert port is not None
            with socket.create_connection(("127.0.0.1", port), timeout=5) as junk:
                junk.sendall(JUNK * 4)
        fresh = idq.new_scpi()
        assert fresh is idq.scpi
        assert idq.ask("*IDN?").startswith("ID Quantique,ID1000")
        assert idq.ask("INPU8:ENAB?") == "ON"  # the world's PPS input exists
        assert idq.ask_dlt("list") == {"ids": []}
    finally:
        idq.close()
        ctx.term()
    _alive(rig)


def test_rig_stops_cleanly_after_abuse(rig: RigProcess) -> None:
    """Junk on every front-end at once, clients left connected, then SIGTERM: exit 0."""
    mount = Rotctld(rig.station("lijiang")["mount"])
    mount.send(BINARY)  # half a line, connection left open
    ports = [RawPty(pty_path(rig.station("delingha")[k])) for k in ("hwp", "mount_lx200")]
    for p in ports:
        p.write(JUNK)
    host, port = tcp_address(rig.station("delingha")["mount"])
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(JUNK)
        _alive(rig)
        rig.proc.terminate()
        assert rig.proc.wait(timeout=15) == 0
    mount.close()
    for p in ports:
        p.close()
    err = rig.stderr_text()
    assert "Traceback" not in err, err
