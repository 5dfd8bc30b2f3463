"""TcpServer shutdown: open connections end quietly (no CancelledError traceback in the log)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sim_hardware.servers.replies import ReplyWriter
from sim_hardware.servers.tcp import TcpServer

TIMEOUT = 5.0


async def echo(reader: asyncio.StreamReader, writer: ReplyWriter) -> None:
    while line := await reader.readline():
        writer.write(line)


async def test_close_with_open_connections_logs_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = TcpServer(echo, name="echo")
    await server.start()
    clients = [
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), TIMEOUT)
        for _ in range(3)
    ]
    for reader, writer in clients:  # every handler is parked in a read when close() comes
        writer.write(b"ping\n")
        assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"ping\n"
    await asyncio.wait_for(server.close(), TIMEOUT)
    for reader, writer in clients:
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # closed by the server
        writer.close()
    for _ in range(5):  # asyncio reports a failed connection callback on a later iteration
        await asyncio.sleep(0)
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert bad == [], [r.getMessage() for r in bad]
    assert any("closed port" in r.getMessage() for r in caplog.records)
    await server.close()  # idempotent
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), TIMEOUT)
