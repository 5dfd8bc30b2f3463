"""No ZeroMQ message is lost to a receive timeout or to a cancelled receive (issue 10).

pyzmq's asyncio ``recv``/``recv_multipart`` return a Future that the socket's reader callback
resolves by *taking the message off the socket*. When the awaiting task is cancelled (by
``asyncio.timeout`` or by a caller) after that callback ran but before the task resumed, the
message is gone with the cancelled await. asyncio runs I/O callbacks before the timers that
fell due in the same loop iteration, so this happens whenever a message and a timeout (or a
``call_later`` cancel) coincide, e.g. after a stall of the event loop (a paused daemon, CPU
load). The tests provoke exactly that: a ``_stall`` task blocks the loop for a few
milliseconds at a time while a sender thread keeps sending, so timers and messages pile up
and fall due together.

Real sockets on loopback throughout; every wait is bounded; the random schedules are seeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import zmq
import zmq.asyncio

from drivers.errors import DeviceTimeout, NotConnected
from drivers.transport import open_zmq_stream
from drivers.transport.url import ZmqAddress, parse_transport_url
from drivers.transport.zmqreq import ZmqReqTransport, open_zmq_req

N_MESSAGES = 300  #: sequence-numbered messages per stream test
STALL_S = 0.004  #: one blocking stall of the event loop (a paused/loaded daemon)
END = b""  #: end-of-stream marker (as the IDQ DataLinkTarget sends it)


async def _stall(stop: asyncio.Event, seed: int) -> None:
    """Block the event loop for a few ms at a time, like a paused or CPU-starved daemon."""
    rng = random.Random(seed)
    for _ in range(2000):  # bounded; the test sets ``stop`` long before
        if stop.is_set():
            return
        time.sleep(rng.uniform(0.5, 1.0) * STALL_S)  # blocking on purpose: the stall
        await asyncio.sleep(rng.uniform(0.0, 0.002))


@contextlib.asynccontextmanager
async def _stalling(seed: int) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(_stall(stop, seed))
    try:
        yield
    finally:
        stop.set()
        async with asyncio.timeout(2.0):
            await task


class _Sender:
    """A PAIR sender in a thread: ``n`` two-frame messages ``[b"seq", n]``, then END."""

    def __init__(self, n: int, seed: int) -> None:
        self._ctx = zmq.Context()
        self.sock = self._ctx.socket(zmq.PAIR)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, 3000)  # bounded: never hang the thread
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self._n = n
        self._rng = random.Random(seed)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            for i in range(self._n):
                self.sock.send_multipart([b"seq", i.to_bytes(4, "big")])
                time.sleep(self._rng.uniform(0.0, 0.001))
            self.sock.send(END)
        except zmq.ZMQError as exc:  # pragma: no cover - reported by the test
            self.error = exc

    def stop(self) -> None:
        self._thread.join(timeout=5.0)
        self.sock.close(linger=0)
        self._ctx.term()


@pytest.fixture
def sender() -> Iterator[_Sender]:
    s = _Sender(N_MESSAGES, seed=10)
    yield s
    s.stop()


def _seq(frames: list[bytes]) -> int:
    assert len(frames) == 2, frames
    assert frames[0] == b"seq", frames
    return int.from_bytes(frames[1], "big")


async def test_stream_timeouts_lose_no_message(sender: _Sender) -> None:
    """Tiny receive timeouts racing a steady stream: every message once, in order."""
    stream = await open_zmq_stream(f"zmq+tcp://127.0.0.1:{sender.port}", socket_type="PAIR")
    got: list[int] = []
    timeouts = 0
    try:
        sender.start()
        async with _stalling(seed=1), asyncio.timeout(4.0):
            for _ in range(100_000):  # bounded; ends at the END marker
                try:
                    frames = await stream.recv_multipart(timeout=0.001)
                except DeviceTimeout:
                    timeouts += 1
                    continue
                if frames == [END]:
                    break
                got.append(_seq(frames))
    finally:
        await stream.close()
    assert sender.error is None
    assert timeouts > 0  # the race was exercised
    missing = sorted(set(range(N_MESSAGES)) - set(got))
    assert got == list(range(N_MESSAGES)), f"{len(missing)} lost: {missing[:10]}"


async def test_stream_cancelled_receives_lose_no_message(sender: _Sender) -> None:
    """The daemon's pattern: the receiving task is cancelled at random moments and
    restarted; every message still arrives exactly once, in order."""
    stream = await open_zmq_stream(f"zmq+tcp://127.0.0.1:{sender.port}", socket_type="PAIR")
    got: list[int] = []
    ended = asyncio.Event()
    loop = asyncio.get_running_loop()
    rng = random.Random(2)

    async def receive() -> None:
        for _ in range(N_MESSAGES + 1):
            frames = await stream.recv_multipart(timeout=2.0)
            if frames == [END]:
                ended.set()
                return
            got.append(_seq(frames))

    cancels = 0
    try:
        sender.start()
        async with _stalling(seed=3), asyncio.timeout(4.0):
            for _ in range(100_000):  # bounded; ends at the END marker
                task = asyncio.create_task(receive())
                handle = loop.call_later(rng.uniform(0.0, 0.003), task.cancel)
                await asyncio.wait({task})  # the outer timeout still cancels *this* task
                handle.cancel()
                if not task.cancelled():
                    task.result()  # re-raise a failure of the receiver
                if ended.is_set():
                    break
                cancels += 1
    finally:
        await stream.close()
    assert sender.error is None
    assert cancels > 0
    missing = sorted(set(range(N_MESSAGES)) - set(got))
    assert got == list(range(N_MESSAGES)), f"{len(missing)} lost: {missing[:10]}"


async def test_stream_recv_single_frame_survives_cancellation() -> None:
    """``recv`` (single frame) is as safe as ``recv_multipart``."""
    ctx = zmq.asyncio.Context.instance()
    push = ctx.socket(zmq.PAIR)
    push.setsockopt(zmq.LINGER, 0)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    stream = await open_zmq_stream(f"zmq+tcp://127.0.0.1:{port}", socket_type="PAIR")
    n = 200
    got: list[int] = []
    rng = random.Random(4)
    loop = asyncio.get_running_loop()

    async def send_all() -> None:
        for i in range(n):
            await push.send(i.to_bytes(4, "big"))
            if i % 7 == 0:
                time.sleep(0.003)  # stall, messages in flight
            await asyncio.sleep(rng.uniform(0.0, 0.001))
        await push.send(END)

    try:
        async with asyncio.timeout(4.0):
            sending = asyncio.create_task(send_all())
            for _ in range(100_000):  # bounded; ends at the END marker
                task = asyncio.create_task(stream.recv(timeout=1.0))
                handle = loop.call_later(rng.uniform(0.0, 0.002), task.cancel)
                await asyncio.wait({task})
                handle.cancel()
                if task.cancelled():
                    continue
                message = task.result()
                if message == END:
                    break
                got.append(int.from_bytes(message, "big"))
            await sending
    finally:
        await stream.close()
        push.close(linger=0)
    assert got == list(range(n))


# -- REQ/REP ------------------------------------------------------------------------------


class _SlowRep:
    """A REP server in a thread echoing each request after a random delay of up to
    ``max_delay`` seconds; ``replied`` lists what it answered, in order."""

    def __init__(self, max_delay: float, seed: int) -> None:
        self._ctx = zmq.Context()
        self.sock = self._ctx.socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 50)  # so the loop can notice ``stop``
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self._max_delay = max_delay
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self.replied: list[bytes] = []
        self.delay_next = 0.0  #: extra delay of the next reply (once)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for _ in range(100_000):  # bounded
            if self._stop.is_set():
                return
            try:
                request = self.sock.recv()
            except zmq.Again:
                continue
            except zmq.ZMQError:  # pragma: no cover - closed under us
                return
            time.sleep(self._rng.uniform(0.0, self._max_delay) + self.delay_next)
            self.delay_next = 0.0
            self.sock.send(request)
            self.replied.append(request)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.sock.close(linger=0)
        self._ctx.term()


@contextlib.asynccontextmanager
async def _req_to(rep: _SlowRep) -> AsyncIterator[ZmqReqTransport]:
    address = parse_transport_url(f"zmq+tcp://127.0.0.1:{rep.port}")
    assert isinstance(address, ZmqAddress)
    transport = await open_zmq_req(address, timeout=1.0)
    try:
        yield transport
    finally:
        await transport.close()


async def test_req_cancelled_request_does_not_desync_the_next() -> None:
    """A request cancelled at a random moment (its reply possibly already arrived) leaves
    the transport usable: the next request gets its own reply, promptly, never an old one."""
    rep = _SlowRep(max_delay=0.003, seed=5)
    rng = random.Random(6)
    loop = asyncio.get_running_loop()
    cancelled = answered = 0
    try:
        async with _req_to(rep) as req, _stalling(seed=7), asyncio.timeout(4.5):
            for i in range(80):
                task = asyncio.create_task(req.request(b"c%d" % i, timeout=1.0))
                handle = loop.call_later(rng.uniform(0.0, 0.006), task.cancel)
                await asyncio.wait({task})
                if not task.cancelled():
                    assert task.result() == b"c%d" % i
                    answered += 1
                else:
                    cancelled += 1
                    # The next request must get its own reply, not the cancelled one's and
                    # not a timeout because the cancelled one's reply went missing.
                    assert await req.request(b"p%d" % i, timeout=0.5) == b"p%d" % i
                handle.cancel()
    finally:
        rep.stop()
    assert cancelled > 0
    assert answered > 0


async def test_req_cancelled_read_keeps_the_reply_for_the_next_read() -> None:
    """Byte-stream use (write, then read_until): a read cancelled at a random moment
    loses no reply; the next read returns exactly that reply."""
    rep = _SlowRep(max_delay=0.003, seed=8)
    rng = random.Random(9)
    loop = asyncio.get_running_loop()
    cancelled = 0
    try:
        async with _req_to(rep) as req, _stalling(seed=10), asyncio.timeout(4.5):
            for i in range(80):
                await req.write(b"r%d\n" % i)
                task = asyncio.create_task(req.read_until(b"\n", timeout=1.0))
                handle = loop.call_later(rng.uniform(0.0, 0.006), task.cancel)
                await asyncio.wait({task})
                if not task.cancelled():
                    line = task.result()
                else:
                    cancelled += 1
                    line = await req.read_until(b"\n", timeout=0.5)
                handle.cancel()
                assert line == b"r%d\n" % i
    finally:
        rep.stop()
    assert cancelled > 0


async def test_req_reply_at_the_timeout_boundary_does_not_desync() -> None:
    """Replies arriving around the request timeout: a request either gets its own reply or
    DeviceTimeout (and the REQ socket is recreated); the next one is never answered with
    the previous request's reply."""
    rep = _SlowRep(max_delay=0.008, seed=11)
    timeouts = answered = 0
    try:
        async with _req_to(rep) as req, _stalling(seed=12), asyncio.timeout(4.5):
            for i in range(120):
                try:
                    assert await req.request(b"t%d" % i, timeout=0.004) == b"t%d" % i
                    answered += 1
                except DeviceTimeout:
                    timeouts += 1
            assert await req.request(b"last", timeout=1.0) == b"last"
            assert req.recreated == timeouts
    finally:
        rep.stop()
    assert timeouts + answered == 120


async def test_stream_closed_while_receiving_is_not_connected() -> None:
    """close() from another task ends a waiting receive with NotConnected (it used to leak
    the socket's internal CancelledError into a task nobody cancelled)."""
    ctx = zmq.asyncio.Context.instance()
    peer = ctx.socket(zmq.PAIR)
    peer.setsockopt(zmq.LINGER, 0)
    port = peer.bind_to_random_port("tcp://127.0.0.1")
    stream = await open_zmq_stream(f"zmq+tcp://127.0.0.1:{port}", socket_type="PAIR")
    try:
        async with asyncio.timeout(2.0):
            receiving = asyncio.create_task(stream.recv_multipart(timeout=1.5))
            await asyncio.sleep(0.05)
            await stream.close()
            await asyncio.wait({receiving})
        assert not receiving.cancelled()
        assert isinstance(receiving.exception(), NotConnected)
    finally:
        await stream.close()
        peer.close(linger=0)


async def test_req_closed_while_waiting_is_not_connected() -> None:
    """close() during a request ends it with NotConnected, as before the rewrite."""
    rep = _SlowRep(max_delay=0.0, seed=13)
    rep.delay_next = 0.4
    try:
        async with _req_to(rep) as req, asyncio.timeout(3.0):
            requesting = asyncio.create_task(req.request(b"slow", timeout=1.5))
            await asyncio.sleep(0.1)
            await req.close()
            await asyncio.wait({requesting})
            assert not requesting.cancelled()
            assert isinstance(requesting.exception(), NotConnected)
    finally:
        rep.stop()
