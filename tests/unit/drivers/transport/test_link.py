"""DeviceLink over a real loopback TCP transport: lock, shield, cancel-before-start, resync.

The peer is an asyncio TCP server in the same loop that answers each request line with
``re:<line>``; a request starting with ``hold`` is answered only when the test releases it,
so every interleaving below is forced, not timed. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from drivers.errors import DeviceTimeout, NotConnected, ProtocolError
from drivers.transport import open_transport
from drivers.transport.base import Transport
from drivers.transport.link import DeviceLink

STEP_S = 5.0  #: wall bound on every await in these tests


@dataclass
class Peer:
    """The device side: every request line it received, and a gate for ``hold`` requests."""

    port: int = 0
    received: list[bytes] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    got_request: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                request = line.rstrip(b"\n")
                self.received.append(request)
                self.got_request.set()
                if request.startswith(b"hold"):
                    await self.release.wait()
                if request.startswith(b"two"):  # a two-line reply to a one-line query
                    writer.write(b"re:" + request + b"\nextra\n")
                else:
                    writer.write(b"re:" + request + b"\n")
                await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def serve() -> AsyncIterator[Peer]:
    peer = Peer()
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    async with server:
        yield peer
        peer.release.set()


def query(request: bytes) -> Callable[[Transport], Awaitable[bytes]]:
    async def fn(t: Transport) -> bytes:
        await t.write(request + b"\n")
        return (await t.read_until(b"\n")).rstrip(b"\n")

    return fn


async def ask(link: DeviceLink, request: bytes) -> bytes:
    return await asyncio.wait_for(link.exchange(query(request)), STEP_S)


async def test_exchange_round_trip_and_async_with() -> None:
    async with serve() as peer:
        states: list[bool] = []
        async with DeviceLink(f"tcp://127.0.0.1:{peer.port}", url="dev://x") as link:
            states.append(link.is_open)
            assert await ask(link, b"a") == b"re:a"
            assert link.url == "dev://x"
        states.append(link.is_open)
        assert states == [True, False]
        with pytest.raises(NotConnected, match="dev://x"):
            await ask(link, b"b")


async def test_caller_cancelled_mid_exchange_leaves_no_reply_behind() -> None:
    async with serve() as peer, DeviceLink(f"tcp://127.0.0.1:{peer.port}") as link:
        first = asyncio.ensure_future(ask(link, b"hold 1"))
        await asyncio.wait_for(peer.got_request.wait(), STEP_S)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first  # the caller returns at once; the reply is not there yet
        peer.release.set()
        # The shielded exchange reads "re:hold 1"; the next caller gets its own reply.
        assert await ask(link, b"q2") == b"re:q2"
        assert await ask(link, b"q3") == b"re:q3"
        assert peer.received == [b"hold 1", b"q2", b"q3"]


async def test_caller_cancelled_before_its_exchange_started_sends_nothing() -> None:
    async with serve() as peer, DeviceLink(f"tcp://127.0.0.1:{peer.port}") as link:
        holder = asyncio.ensure_future(ask(link, b"hold"))
        await asyncio.wait_for(peer.got_request.wait(), STEP_S)
        waiting = asyncio.ensure_future(ask(link, b"never"))
        for _ in range(3):
            await asyncio.sleep(0)  # it is queued on the lock now
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        peer.release.set()
        assert await asyncio.wait_for(holder, STEP_S) == b"re:hold"
        assert await ask(link, b"after") == b"re:after"
        assert b"never" not in peer.received


async def test_prepare_is_cancellable_and_on_cancel_runs_after_the_start() -> None:
    async with serve() as peer, DeviceLink(f"tcp://127.0.0.1:{peer.port}") as link:
        forever = asyncio.Event()

        async def prepare() -> None:
            await forever.wait()

        task = asyncio.ensure_future(link.exchange(query(b"x"), prepare=prepare))
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, STEP_S)
        assert peer.received == []  # cancelled while preparing: nothing went out

        seen: list[bool] = []

        async def on_cancel(inner: asyncio.Task[bytes]) -> None:
            seen.append(inner.done())
            peer.release.set()  # e.g. a stop that makes the device answer at once
            await asyncio.wait({inner}, timeout=STEP_S)
            seen.append(inner.done())

        held = asyncio.ensure_future(link.exchange(query(b"hold"), on_cancel=on_cancel))
        await asyncio.wait_for(peer.got_request.wait(), STEP_S)
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(held, STEP_S)
        assert seen == [False, True]  # the hook ran before the cancellation propagated
        assert await ask(link, b"next") == b"re:next"


async def test_error_resyncs_the_input() -> None:
    async with serve() as peer, DeviceLink(f"tcp://127.0.0.1:{peer.port}") as link:

        async def strict(t: Transport) -> bytes:
            await t.write(b"two\n")
            head = await t.read_until(b"\n")  # "extra\n" came in the same loopback segment
            raise ProtocolError(f"a query answered {head!r} and more", device=link.url)

        with pytest.raises(ProtocolError):
            await asyncio.wait_for(link.exchange(strict), STEP_S)
        assert await ask(link, b"ok") == b"re:ok"


async def test_timeout_resyncs_so_a_late_reply_is_dropped() -> None:
    async with serve() as peer, DeviceLink(f"tcp://127.0.0.1:{peer.port}") as link:

        async def impatient(t: Transport) -> bytes:
            await t.write(b"hold\n")
            await asyncio.wait_for(peer.got_request.wait(), STEP_S)
            peer.release.set()
            # the reply is on its way; read a frame that never comes so the read times out
            # after the reply has been buffered (a late reply, as after a real timeout)
            return await t.read_until(b"#", timeout=0.2)

        with pytest.raises(DeviceTimeout):
            await asyncio.wait_for(link.exchange(impatient), STEP_S)
        assert await ask(link, b"fresh") == b"re:fresh"


async def test_injected_transport_cannot_be_reopened() -> None:
    async with serve() as peer:
        transport = await open_transport(f"tcp://127.0.0.1:{peer.port}")
        link = DeviceLink(transport)
        assert link.url == transport.url
        await link.open()
        assert await ask(link, b"a") == b"re:a"
        await link.close()
        await link.close()  # idempotent
        with pytest.raises(NotConnected, match="injected transport is closed"):
            await link.open()


async def test_factory_source() -> None:
    async with serve() as peer:
        opened: list[str] = []

        async def factory() -> Transport:
            opened.append("yes")
            return await open_transport(f"tcp://127.0.0.1:{peer.port}")

        async with DeviceLink(factory, url="dev://f") as link:
            await link.open()  # idempotent while open
            assert await ask(link, b"f") == b"re:f"
        assert opened == ["yes"]
