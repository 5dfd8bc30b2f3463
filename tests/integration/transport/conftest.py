"""Real endpoints for transport tests: a loopback TCP server, a pty pair, a ZeroMQ REP socket.

Every peer plays the same tiny line protocol, so one parametrized test runs against every
transport (tcp://, socket://, serial pty, visa TCPIP SOCKET, visa ASRL pty, zmq+tcp://):

    ping     -> pong\\n                 multi  -> a\\nb\\n
    bin      -> 8 raw bytes 00..07      late   -> late\\n after LATE_S seconds
    silent   -> nothing                 garbage-> GARBAGE_LEN bytes of 'x', no terminator
    bye      -> the peer closes / disconnects
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import zmq
import zmq.asyncio

LATE_S = 0.3  #: delay of the reply to ``late``
GARBAGE_LEN = 300
BIN = bytes(range(8))

Reply = bytes | None | type[ConnectionAbortedError]
CLOSE = ConnectionAbortedError  #: sentinel action: the peer hangs up


def respond(request: bytes) -> tuple[float, Reply]:
    """(delay in seconds, reply or None or CLOSE) for one request line (without newline)."""
    table: dict[bytes, tuple[float, Reply]] = {
        b"ping": (0.0, b"pong\n"),
        b"multi": (0.0, b"a\nb\n"),
        b"bin": (0.0, BIN),
        b"late": (LATE_S, b"late\n"),
        b"silent": (0.0, None),
        b"garbage": (0.0, b"x" * GARBAGE_LEN),
        b"bye": (0.0, CLOSE),
    }
    return table.get(request.strip(), (0.0, b"unknown\n"))


@dataclass
class Endpoint:
    kind: str
    url: str
    requests: list[bytes]  #: request lines the peer received, in order


class TcpPeer:
    """asyncio TCP server on 127.0.0.1 (ephemeral port) speaking the line protocol."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            for _ in range(1000):  # bounded
                line = await reader.readline()
                if not line:
                    break
                self.requests.append(line.strip())
                delay, reply = respond(line)
                if reply is CLOSE:
                    writer.close()
                    return
                if isinstance(reply, bytes):
                    if delay:
                        await asyncio.sleep(delay)
                    writer.write(reply)
                    await writer.drain()
        writer.close()

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self.server.wait_closed()


class PtyPeer:
    """The master side of a pty pair, served from the event loop (protocols.md §4)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo/line editing even before pyserial opens the slave
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.requests: list[bytes] = []
        self._pending = bytearray()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._readable)
        self._open = True
        self._later: list[asyncio.TimerHandle] = []

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return  # EIO while no slave is open
        self._pending += data
        while b"\n" in self._pending:
            line, _, rest = bytes(self._pending).partition(b"\n")
            self._pending = bytearray(rest)
            self.requests.append(line.strip())
            delay, reply = respond(line)
            if reply is CLOSE:
                self.hang_up()
                return
            if isinstance(reply, bytes):
                self._later.append(self._loop.call_later(delay, self._write, reply))

    def _write(self, data: bytes) -> None:
        if self._open:
            os.write(self.master, data)

    def hang_up(self) -> None:
        if self._open:
            self._open = False
            self._loop.remove_reader(self.master)
            os.close(self.master)

    def stop(self) -> None:
        for handle in self._later:
            handle.cancel()
        self.hang_up()
        os.close(self.slave)


class ZmqRepPeer:
    """A ZeroMQ REP socket on 127.0.0.1 (random port) speaking the line protocol."""

    def __init__(self) -> None:
        self.context = zmq.asyncio.Context.instance()
        self.socket = self.context.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.requests: list[bytes] = []
        self.task = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        for _ in range(1000):  # bounded
            request = bytes(await self.socket.recv())
            self.requests.append(request.strip())
            delay, reply = respond(request)
            if reply is CLOSE:
                self.socket.close(linger=0)
                return
            if reply is None:
                return  # a REP that never answers cannot serve again: stop here
            if delay:
                await asyncio.sleep(delay)
            assert isinstance(reply, bytes)
            await self.socket.send(reply)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.socket.close(linger=0)


KINDS = ["tcp", "socket", "serial-pty", "visa-socket", "visa-asrl", "zmq"]


@contextlib.asynccontextmanager
async def endpoint_for(kind: str) -> AsyncIterator[Endpoint]:
    """Start a peer of ``kind`` and yield the transport URL that reaches it."""
    if kind in ("tcp", "socket", "visa-socket"):
        tcp = TcpPeer()
        port = await tcp.start()
        url = {
            "tcp": f"tcp://127.0.0.1:{port}",
            "socket": f"socket://127.0.0.1:{port}",
            "visa-socket": f"visa://TCPIP::127.0.0.1::{port}::SOCKET",
        }[kind]
        try:
            yield Endpoint(kind, url, tcp.requests)
        finally:
            await tcp.stop()
    elif kind in ("serial-pty", "visa-asrl"):
        pty = PtyPeer()
        url = {
            "serial-pty": f"serial://{pty.path}?baud=115200",
            "visa-asrl": f"visa://ASRL{pty.path}::INSTR?baud=115200",
        }[kind]
        try:
            yield Endpoint(kind, url, pty.requests)
        finally:
            pty.stop()
    elif kind == "zmq":
        rep = ZmqRepPeer()
        try:
            yield Endpoint(kind, f"zmq+tcp://127.0.0.1:{rep.port}", rep.requests)
        finally:
            await rep.stop()
    else:  # pragma: no cover - guarded by KINDS
        raise ValueError(kind)


@pytest.fixture(params=KINDS)
async def endpoint(request: pytest.FixtureRequest) -> AsyncIterator[Endpoint]:
    async with endpoint_for(request.param) as ep:
        yield ep
