"""The generic pty server: raw byte path, re-opening, and robustness of the serving task."""

from __future__ import annotations

import asyncio
import os

import pytest

from sim_hardware.servers.pty import PtyServer, ReplyWriter


async def echo_lines(reader: asyncio.StreamReader, writer: ReplyWriter) -> None:
    while True:
        line = await reader.readuntil(b"\r")
        if line == b"boom\r":
            raise RuntimeError("handler bug")
        writer.write(b"<" + line + b">")


async def read_some(fd: int, n: int, timeout: float = 5.0) -> bytes:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    out = b""
    while len(out) < n and loop.time() < deadline:
        try:
            out += os.read(fd, n - len(out))
        except BlockingIOError:
            await asyncio.sleep(0.005)
    return out


async def test_bytes_pass_unchanged_and_port_can_be_reopened() -> None:
    async with PtyServer(echo_lines, name="echo") as server:
        for _ in range(2):  # a client closing the port must not break the server
            fd = os.open(server.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                os.write(fd, b"a\nb\x00\xff\r")  # raw mode: no CR/LF translation, no echo
                assert await read_some(fd, 8) == b"<a\nb\x00\xff\r>"
            finally:
                os.close(fd)


async def test_handler_failure_is_contained_and_close_is_idempotent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = PtyServer(echo_lines, name="buggy")
    await server.start()
    fd = os.open(server.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        os.write(fd, b"boom\r")
        for _ in range(100):  # bounded wait for the log record
            if "handler failed" in caplog.text:
                break
            await asyncio.sleep(0.01)
        assert "handler failed" in caplog.text
        assert server.running
    finally:
        os.close(fd)
        await server.close()
        await server.close()
    assert not server.running
    # devpts removes the slave once both ends are closed
    assert not await asyncio.to_thread(os.path.exists, server.path)
