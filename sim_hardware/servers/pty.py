"""Serve one emulated serial device on a pseudo-terminal.

A client (driver, pyserial, minicom) opens :attr:`PtyServer.path` (e.g. ``/dev/pts/7``) as
if it were a USB serial adapter. The slave side is put in raw mode (no echo, no line editing,
no CR/LF translation) so bytes pass through unchanged, as on a real UART; baud rate settings
made by the client are accepted and ignored, as a pty has no line speed.

The server keeps its own handle on the slave open for its whole life: otherwise the master
would read EIO every time the last client closes the port, and a client could not re-open it.

Transport faults (hang, garbage, slow, disconnect) are applied in the reply path
(:class:`~sim_hardware.servers.replies.FaultyReplies`); while ``disconnect`` is active,
incoming bytes are also discarded, like a device whose cable was pulled.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import termios
import tty
import zlib
from types import TracebackType

from drivers.clock import Clock, SystemClock
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.replies import FaultyReplies, Handler, ReplyWriter

__all__ = ["Handler", "PtyServer", "ReplyWriter"]

log = logging.getLogger(__name__)

#: Replies not yet read by the client beyond this many bytes are dropped (a UART with
#: nobody listening loses bytes too; this also bounds memory if a client never reads).
MAX_PENDING_BYTES = 1 << 16


class PtyServer:
    """One emulated serial device on a pseudo-terminal.

    Args:
        handler: the protocol handler, run once for the life of the server.
        faults: the device's fault schedule (None: never faulty).
        name: device name for log messages.
        clock: clock for ``slow`` reply delays (default: the system clock).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        faults: FaultInjector | None = None,
        name: str = "",
        clock: Clock | None = None,
    ) -> None:
        self._handler = handler
        self._faults = faults
        self.name = name or "pty"
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._master: int | None = None
        self._slave: int | None = None
        self._path = ""
        self._reader: asyncio.StreamReader | None = None
        self._replies: FaultyReplies | None = None
        self._task: asyncio.Task[None] | None = None
        self._out = bytearray()
        self._writer_registered = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def path(self) -> str:
        """Slave device path for clients, e.g. ``/dev/pts/7`` (empty before :meth:`start`)."""
        return self._path

    @property
    def running(self) -> bool:
        return self._master is not None

    async def start(self) -> None:
        """Open the pty and start the handler (idempotent)."""
        if self._master is not None:
            return
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        try:
            tty.setraw(slave, termios.TCSANOW)
            os.set_blocking(master, False)
            self._path = os.ttyname(slave)
        except OSError:
            os.close(master)
            os.close(slave)
            raise
        self._master, self._slave, self._loop = master, slave, loop
        self._reader = asyncio.StreamReader(limit=MAX_PENDING_BYTES)
        self._replies = FaultyReplies(
            self._send, faults=self._faults, clock=self._clock, seed=zlib.crc32(self.name.encode())
        )
        loop.add_reader(master, self._on_readable)
        self._task = loop.create_task(self._run_handler(), name=f"pty-{self.name}")
        log.info("%s serving on %s", self.name, self._path)

    async def _run_handler(self) -> None:
        assert self._reader is not None
        assert self._replies is not None
        try:
            await self._handler(self._reader, self._replies)
        except asyncio.CancelledError:
            raise
        except Exception:
            # An emulator never crashes on bad input; a handler bug is logged loudly.
            log.exception("%s: protocol handler failed; device stops answering", self.name)

    def _fault(self, kind: FaultKind) -> bool:
        return self._faults is not None and self._faults.active(kind) is not None

    def _on_readable(self) -> None:
        if self._master is None or self._reader is None:
            return
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave open (cannot happen while we hold one)
                return
            raise
        if data and not self._fault(FaultKind.DISCONNECT):
            self._reader.feed_data(data)

    def _send(self, data: bytes) -> None:
        if self._master is None:
            return
        if len(self._out) + len(data) > MAX_PENDING_BYTES:
            log.warning("%s: client is not reading; dropping %d reply bytes", self.name, len(data))
            return
        self._out += data
        self._flush()

    def _flush(self) -> None:
        if self._master is None:
            return
        while self._out:
            try:
                n = os.write(self._master, self._out)
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning("%s: write to pty failed: %s", self.name, exc)
                self._out.clear()
                break
            del self._out[:n]
        want_writer = bool(self._out)
        if want_writer != self._writer_registered and self._loop is not None:
            if want_writer:
                self._loop.add_writer(self._master, self._flush)
            else:
                self._loop.remove_writer(self._master)
            self._writer_registered = want_writer

    async def close(self) -> None:
        """Stop the handler and close the pty (idempotent)."""
        if self._master is None:
            return
        master, slave = self._master, self._slave
        if self._loop is not None:
            self._loop.remove_reader(master)
            if self._writer_registered:
                self._loop.remove_writer(master)
                self._writer_registered = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._replies is not None:
            await self._replies.close()
        if self._reader is not None:
            self._reader.feed_eof()
        self._master = self._slave = None
        os.close(master)
        if slave is not None:
            os.close(slave)
        log.info("%s closed %s", self.name, self._path)

    async def __aenter__(self) -> PtyServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
