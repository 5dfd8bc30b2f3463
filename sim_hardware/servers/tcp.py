"""Serve one emulated device on a loopback TCP port, one handler per connection.

The TCP twin of :class:`~sim_hardware.servers.pty.PtyServer` with the same
:data:`~sim_hardware.servers.replies.Handler` signature. Transport faults are applied in the
reply path; while ``disconnect`` is active, open connections are closed and new ones are
accepted and closed at once (as a device whose network cable was pulled, seen from behind a
terminal server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from types import TracebackType

from drivers.clock import Clock, SystemClock
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.replies import FaultyReplies, Handler

log = logging.getLogger(__name__)

#: Wall seconds between checks for a ``disconnect`` fault becoming active.
DISCONNECT_POLL_WALL_S = 0.05
#: Wall seconds close() waits for each connection task to finish after cancelling it.
CLOSE_WALL_S = 2.0


class TcpServer:
    """An emulated device on ``host:port`` (port 0: a free port, see :attr:`port`).

    Args:
        handler: the protocol handler, run once per connection.
        faults: the device's fault schedule (None: never faulty).
        name: device name for log messages.
        clock: clock for ``slow`` reply delays (default: the system clock).
        host: listening address (loopback by default; the rig never listens elsewhere).
        port: TCP port, 0 for any free port.
        line_limit: StreamReader buffer limit (bytes) for ``readuntil``/``readline``.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        faults: FaultInjector | None = None,
        name: str = "",
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        line_limit: int = 1 << 16,
    ) -> None:
        self._handler = handler
        self._faults = faults
        self.name = name or "tcp"
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.host = host
        self._port = port
        self._line_limit = line_limit
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def port(self) -> int:
        """The bound TCP port (valid after :meth:`start`)."""
        return self._port

    def _fault(self, kind: FaultKind) -> bool:
        return self._faults is not None and self._faults.active(kind) is not None

    async def start(self) -> None:
        """Start listening (idempotent)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self._port, limit=self._line_limit
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        if self._faults is not None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_disconnect())
        log.info("%s listening on %s:%d", self.name, self.host, self._port)

    async def _watch_disconnect(self) -> None:
        # Faults are scheduled on the clock, not signalled, so poll (bounded per pass).
        while True:
            if self._fault(FaultKind.DISCONNECT):
                for writer in list(self._writers):
                    writer.close()
            await asyncio.sleep(DISCONNECT_POLL_WALL_S)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._fault(FaultKind.DISCONNECT):
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")

        def sink(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        replies = FaultyReplies(
            sink, faults=self._faults, clock=self._clock, seed=zlib.crc32(str(peer).encode())
        )
        try:
            await self._handler(reader, replies)
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # Cancelled by close(): end the connection task normally. asyncio (3.11) calls
            # task.exception() on a finished client_connected_cb task, which for a cancelled
            # task raises and logs a CancelledError traceback for every open connection.
            task.uncancel()
        except (ConnectionError, asyncio.IncompleteReadError):
            log.debug("%s: connection from %s dropped", self.name, peer)
        except Exception:
            log.exception("%s: protocol handler failed on %s; closing it", self.name, peer)
        finally:
            self._connections.discard(task)
            self._writers.discard(writer)
            await replies.close()
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def close(self) -> None:
        """Close every connection and stop listening (idempotent)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        self._closing = True
        server.close()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, CLOSE_WALL_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2.0)
        log.info("%s closed port %d", self.name, self._port)

    async def __aenter__(self) -> TcpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
