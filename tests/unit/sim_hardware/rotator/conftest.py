"""A raw pty client for the serial emulators: bytes in, bytes out, no driver in between."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tty
from collections.abc import AsyncIterator, Callable

import pytest


class RawPty:
    """Opens the slave side of an emulator's pty like a serial port in raw mode."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def _pull(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self.buf += os.read(self.fd, 65536)

    async def read_until(self, term: bytes = b"\r\n", timeout: float = 3.0) -> bytes:
        """One reply up to and including ``term``; TimeoutError after ``timeout`` wall s."""
        deadline = time.monotonic() + timeout
        while True:
            self._pull()
            i = self.buf.find(term)
            if i >= 0:
                out = bytes(self.buf[: i + len(term)])
                del self.buf[: i + len(term)]
                return out
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {term!r} within {timeout} s; have {bytes(self.buf)!r}")
            await asyncio.sleep(0.002)

    async def silence(self, wait: float = 0.2) -> bytes:
        """Everything that arrives within ``wait`` wall seconds (expected: nothing)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self._pull()
        out = bytes(self.buf)
        self.buf.clear()
        return out

    async def query(self, data: bytes, timeout: float = 3.0) -> bytes:
        self.write(data)
        return await self.read_until(timeout=timeout)

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
async def raw_pty() -> AsyncIterator[Callable[[str], RawPty]]:
    opened: list[RawPty] = []

    def open_(path: str) -> RawPty:
        client = RawPty(path)
        opened.append(client)
        return client

    yield open_
    for client in opened:
        client.close()
