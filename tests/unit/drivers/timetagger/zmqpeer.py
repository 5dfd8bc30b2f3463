"""A scripted ZeroMQ peer for the IDQ driver's byte-exact protocol tests.

A ROUTER socket plays the device's SCPI port or its DataLinkTarget: it checks every request
in order against a script and sends the scripted replies (PyMeasure's ``expected_protocol``
idea, over a real ZeroMQ transport).
"""

from __future__ import annotations

import asyncio
import contextlib

import zmq
import zmq.asyncio

#: (expected request, reply or None for no reply) pairs, in order
Script = list[tuple[bytes, bytes | None]]


class ScriptedPeer:
    """A ROUTER that expects ``script`` requests in order and sends the scripted replies."""

    def __init__(self, script: Script) -> None:
        self.script = list(script)
        self.sock = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.errors: list[str] = []
        self.used = 0
        self.task = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        for expected, reply in self.script:
            ident, empty, payload = await self.sock.recv_multipart()
            self.used += 1
            if payload != expected:
                self.errors.append(f"expected {expected!r}, got {payload!r}")
                return
            if reply is not None:
                await self.sock.send_multipart([ident, empty, reply])

    async def finish(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.shield(self.task)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.sock.close(linger=0)
        assert not self.errors, self.errors
        assert self.used == len(self.script), f"only {self.used}/{len(self.script)} pairs used"
