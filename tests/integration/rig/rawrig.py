"""The rig as its own process, and raw wire clients for it (sockets, ptys, zmq; no drivers).

Everything here is bounded: process start and stop, every read, every loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import struct
import subprocess
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt
import zmq

from drivers.clock import WarpSpec
from station.processes import RigStartError, start_rig
from tests.conftest import stop_process

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "configs" / "rig" / "delingha_lijiang.toml"
HEADER = struct.Struct("<4sHHQQ")
RECORD = np.dtype([("t_ps", "<i8"), ("channel", "<u8")])
WALL_TIMEOUT_S = 5.0  #: bound of any single reply


@dataclass
class RigProcess:
    """A running ``python -m sim_hardware``: its process, URLs, clock and log files."""

    proc: subprocess.Popen[bytes]
    urls: dict[str, Any]
    spec: WarpSpec
    stderr: Path

    def station(self, name: str) -> dict[str, str]:
        value = self.urls[name]
        assert isinstance(value, dict)
        return value

    def sim_now(self) -> float:
        """The shared simulated time (same WarpSpec as the rig)."""
        return self.spec.epoch + (time.time() - self.spec.anchor) * self.spec.rate

    def stderr_text(self) -> str:
        return self.stderr.read_text(errors="replace")


def with_idq_extensions(config: Path, tmp: Path) -> Path:
    """A copy of a rig config whose time-tagger emulators serve the qgs extensions too."""
    text = re.sub(
        r"^(\[devices\.[a-z0-9_]+\.timetagger\][^\n]*\n)",
        r"\1extensions = true\n",
        config.read_text(),
        flags=re.MULTILINE,
    )
    path = tmp / f"ext-{config.name}"
    path.write_text(text)
    return path


@contextlib.contextmanager
def run_rig(
    tmp: Path, *, epoch: float, rate: float, config: Path = CONFIG, bound_s: float = 30.0
) -> Iterator[RigProcess]:
    """Start the rig with a warp clock at ``epoch`` (sim s) now; stop it by PID afterwards.

    The raw clients here (:class:`IdqClient`: ``list``, ``status``, ``--channel all``, port 0)
    use the IDQ emulator's qgs extensions, so the rig runs a copy of ``config`` with
    ``extensions = true`` for every time tagger (the shipped default is the documented
    protocol only, docs/devices/idq-emulator.md).
    """
    config = with_idq_extensions(config, tmp)
    spec = WarpSpec(epoch=epoch, anchor=time.time(), rate=rate)
    err = tmp / "rig.stderr"
    try:
        proc, urls = start_rig(config, spec, tmp / "urls.json", err, bound_s=bound_s)
    except RigStartError as exc:
        raise AssertionError(str(exc)) from None
    try:
        assert WarpSpec.parse(urls["_clock"]) == spec
        yield RigProcess(proc, urls, spec, err)
    finally:
        stop_process(proc)


def tcp_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1", url  # loopback only
    assert parts.port is not None
    return parts.hostname, parts.port


def pty_path(url: str) -> str:
    """The device path of ``elliptec+serial:///dev/pts/N?...`` or ``smc100+visa://ASRL...``."""
    if url.startswith("smc100+visa://ASRL"):
        return url.removeprefix("smc100+visa://ASRL").split("::")[0]
    return urlsplit(url).path


class Rotctld:
    """A raw rotctld client: lines over a TCP socket."""

    def __init__(self, url: str) -> None:
        self.sock = socket.create_connection(tcp_address(url), timeout=WALL_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def lines(self, n: int) -> list[str]:
        while self.buf.count(b"\n") < n:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"rotctld closed the connection; have {self.buf!r}")
            self.buf += chunk
        parts = self.buf.split(b"\n")
        out, self.buf = parts[:n], b"\n".join(parts[n:])
        return [p.decode() for p in out]

    def ask(self, text: str, n: int = 1) -> list[str]:
        self.send(text.encode())
        return self.lines(n)

    def silent_for(self, wall_s: float) -> bool:
        """True if nothing arrives within ``wall_s`` (an unknown command gets no reply)."""
        self.sock.settimeout(wall_s)
        try:
            chunk = self.sock.recv(4096)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(WALL_TIMEOUT_S)
        self.buf += chunk
        return False

    def close(self) -> None:
        self.sock.close()


class RawPty:
    """The slave side of an emulator's pty, raw mode, non-blocking."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def _pull(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self.buf += os.read(self.fd, 65536)

    def read_until(self, term: bytes, bound_s: float = WALL_TIMEOUT_S) -> bytes:
        deadline = time.monotonic() + bound_s
        while True:
            self._pull()
            i = self.buf.find(term)
            if i >= 0:
                out = bytes(self.buf[: i + len(term)])
                del self.buf[: i + len(term)]
                return out
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {term!r} within {bound_s} s; have {bytes(self.buf)!r}")
            time.sleep(0.002)

    def read_exactly(self, n: int, bound_s: float = WALL_TIMEOUT_S) -> bytes:
        deadline = time.monotonic() + bound_s
        while len(self.buf) < n:
            self._pull()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {n} bytes within {bound_s} s; have {bytes(self.buf)!r}")
            time.sleep(0.002)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def drain(self, wall_s: float) -> bytes:
        """Everything that arrives within ``wall_s``."""
        deadline = time.monotonic() + wall_s
        while time.monotonic() < deadline:
            time.sleep(0.01)
            self._pull()
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def close(self) -> None:
        os.close(self.fd)


class Idq:
    """Raw zmq clients of the IDQ emulator: SCPI REQ, DLT REQ and an all-channel PAIR stream."""

    def __init__(self, ctx: zmq.Context[Any], url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1", url
        self.ctx = ctx
        self.scpi_port = parts.port
        self.dlt_port = int(parse_qs(parts.query)["dlt"][0])
        self.sockets: list[zmq.Socket[Any]] = []
        self.scpi = self._req(self.scpi_port)
        self.dlt = self._req(self.dlt_port)
        self.pair: zmq.Socket[Any] | None = None
        self.times: list[npt.NDArray[np.int64]] = []
        self.channels: list[npt.NDArray[np.uint64]] = []
        self.seqs: list[int] = []

    def _req(self, port: int | None) -> zmq.Socket[Any]:
        s = self.ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, int(WALL_TIMEOUT_S * 1000))
        s.setsockopt(zmq.SNDTIMEO, int(WALL_TIMEOUT_S * 1000))
        s.connect(f"tcp://127.0.0.1:{port}")
        self.sockets.append(s)
        return s

    def new_scpi(self) -> zmq.Socket[Any]:
        """A fresh SCPI REQ socket (a REQ that timed out cannot send again)."""
        self.scpi = self._req(self.scpi_port)
        return self.scpi

    def ask(self, text: str | bytes) -> str:
        self.scpi.send(text.encode() if isinstance(text, str) else text)
        return bytes(self.scpi.recv()).decode(errors="replace")

    def ask_dlt(self, text: str | bytes) -> dict[str, Any]:
        self.dlt.send(text.encode() if isinstance(text, str) else text)
        reply = json.loads(self.dlt.recv())
        assert isinstance(reply, dict)
        return reply

    def start_stream(self, channels: list[int]) -> None:
        for c in channels:
            assert self.ask(f"RAW{c}:SEND ON") == ""
        assert self.ask("REC:PLAY") == ""
        assert self.ask("REC:STAG?") == "PLAYING"
        reply = self.ask_dlt("start-stream --address 127.0.0.1 --channel all --stream-port 0")
        pair = self.ctx.socket(zmq.PAIR)
        pair.setsockopt(zmq.LINGER, 0)
        pair.connect(f"tcp://127.0.0.1:{reply['stream_port']}")
        self.sockets.append(pair)
        self.pair = pair

    def drain(self, max_blocks: int = 10_000) -> int:
        """Read every block already delivered (non-blocking); returns how many."""
        assert self.pair is not None
        n = 0
        while n < max_blocks:
            try:
                frames = self.pair.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            header, body = frames
            magic, version, _, seq, count = HEADER.unpack(header)
            assert (magic, version) == (b"QGSE", 1)
            rec = np.frombuffer(body, dtype=RECORD)
            assert len(rec) == count
            self.seqs.append(seq)
            self.times.append(rec["t_ps"].copy())
            self.channels.append(rec["channel"].copy())
            n += 1
        return n

    def last_t_ps(self) -> int | None:
        return int(self.times[-1][-1]) if self.times else None

    def events(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint64]]:
        if not self.times:
            return np.empty(0, np.int64), np.empty(0, np.uint64)
        return np.concatenate(self.times), np.concatenate(self.channels)

    def close(self) -> None:
        for s in self.sockets:
            s.close(linger=0)
