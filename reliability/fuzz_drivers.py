"""Fuzzing of device replies: a driver meets a corrupted wire and raises typed errors only.

Each target puts a mutating proxy between a real protocol driver and our emulator of that
device (both over loopback TCP): requests pass unchanged, and each reply chunk the emulator
sends is passed, bit-flipped, truncated, replaced by random bytes, given a tail, dropped, or
has its digits replaced by hostile number text (``nan``, ``1e999``, 40 digits, ``-0``),
following a plan hypothesis draws (the first few chunks may pass untouched so the mutations
also reach the later exchanges, not only the handshake). The driver then runs its usual
sequence (connect, read the position, one move, close) under a bound:

- any :class:`~drivers.errors.DeviceError` (typed: timeout, protocol, fault, not connected,
  limit) is the documented refusal and counts as ``typed_errors``;
- any other exception, or the sequence outliving :data:`CASE_BOUND_S`, is a failure;
- so is an exception logged by the event loop (a task nobody awaited).

Targets: ``rotctld`` (Hamlib rotctld over TCP), ``lx200`` (OnStep LX200 on ``socket://``)
and ``elliptec`` (Thorlabs ELL14 on ``socket://``): the stream-protocol drivers whose reply
parsing is ours. The drivers run with a short I/O timeout (:data:`IO_TIMEOUT_S`) so a dropped
reply costs a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from drivers.clock import SystemClock
from drivers.datatypes import AltAz, AxisLimits, MountLimits
from drivers.errors import DeviceError
from drivers.registry import open_device
from reliability.fuzz import FuzzResult, _LoopThread, _settings
from sim_hardware.devices.mount import MountModel
from sim_hardware.devices.rotator import RotatorModel
from sim_hardware.servers.elliptec import ElliptecBus, ElliptecDevice
from sim_hardware.servers.lx200 import Lx200Protocol
from sim_hardware.servers.rotctld import RotctldProtocol
from sim_hardware.servers.tcp import TcpServer

IO_TIMEOUT_S = 0.3  #: wall s per exchange in the drivers under test
CASE_BOUND_S = 20.0  #: wall s for one case's whole sequence (a hang beyond it is a failure)
HOSTILE_NUMBERS = (b"nan", b"inf", b"-inf", b"1e999", b"9" * 40, b"-0", b"0x1F", b"")

Op = tuple[str, int, bytes]  #: (kind, integer argument, bytes argument)


def _ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.tuples(st.just("pass"), st.just(0), st.just(b"")),
        st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.just(b"")),
        st.tuples(st.just("truncate"), st.integers(0, 64), st.just(b"")),
        st.tuples(st.just("replace"), st.just(0), st.binary(min_size=1, max_size=48)),
        st.tuples(st.just("append"), st.just(0), st.binary(min_size=1, max_size=48)),
        st.tuples(st.just("drop"), st.just(0), st.just(b"")),
        st.tuples(st.just("number"), st.integers(0, len(HOSTILE_NUMBERS) - 1), st.just(b"")),
    )


def mutate(chunk: bytes, op: Op) -> bytes:
    """``chunk`` after one mutation (see the module doc)."""
    kind, n, data = op
    if kind == "flip" and chunk:
        i = n % len(chunk)
        return chunk[:i] + bytes([chunk[i] ^ (1 << (n % 8))]) + chunk[i + 1 :]
    if kind == "truncate":
        return chunk[: n % (len(chunk) + 1)]
    if kind == "replace":
        return data
    if kind == "append":
        return chunk + data
    if kind == "drop":
        return b""
    if kind == "number":
        out, digits = bytearray(), False
        for b in chunk:
            if chr(b).isdigit():
                if not digits:
                    out += HOSTILE_NUMBERS[n]
                digits = True
            else:
                out.append(b)
                digits = False
        return bytes(out)
    return chunk


@dataclass
class Plan:
    """The mutations of one case: ``skip`` chunks untouched, then ``ops`` in a cycle."""

    skip: int = 0
    ops: list[Op] = field(default_factory=list)
    chunks: int = 0

    def apply(self, chunk: bytes) -> bytes:
        self.chunks += 1
        if self.chunks <= self.skip or not self.ops:
            return chunk
        return mutate(chunk, self.ops[(self.chunks - self.skip - 1) % len(self.ops)])


class MutatingProxy:
    """Loopback TCP proxy: requests verbatim, replies mutated by the current :class:`Plan`."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.plan = Plan()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _on_client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream_port), 5.0
            )
        except (OSError, TimeoutError):
            cw.close()
            return

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, mutating: bool) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while chunk := await r.read(4096):
                    out = self.plan.apply(chunk) if mutating else chunk
                    if out:
                        w.write(out)
                        await w.drain()
            w.close()

        tasks = [
            asyncio.ensure_future(pump(cr, uw, False)),
            asyncio.ensure_future(pump(ur, cw, True)),
        ]
        self._tasks.update(tasks)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()


@dataclass
class Target:
    """One driver and its emulator."""

    name: str
    handler: Callable[[], Any]  #: builds the emulator's TCP handler (on the loop thread)
    url: Callable[[int], str]  #: device URL for the proxy's port
    run: Callable[[Any], Awaitable[None]]  #: the sequence, given the connected driver


def _mount_model() -> MountModel:
    axes = MountLimits(AxisLimits(0.0, 360.0, 20.0, 20.0), AxisLimits(0.0, 90.0, 20.0, 20.0))
    return MountModel(SystemClock(), axes, park=AltAz(0.0, 90.0), name="fuzz.mount")


async def _mount_sequence(mount: Any) -> None:
    here = await mount.position()
    await mount.slew_to(AltAz((here.az_deg + 2.0) % 360.0, min(80.0, here.el_deg + 1.0)))


async def _rotator_sequence(rotator: Any) -> None:
    angle = await rotator.angle()
    await rotator.move_to((angle + 5.0) % 360.0)


TARGETS = (
    Target(
        "rotctld",
        lambda: RotctldProtocol(_mount_model()).handle,
        lambda p: f"rotctld://127.0.0.1:{p}?timeout_s={IO_TIMEOUT_S}",
        _mount_sequence,
    ),
    Target(
        "lx200",
        lambda: Lx200Protocol(_mount_model()).handle,
        lambda p: f"lx200+socket://127.0.0.1:{p}?timeout_s={IO_TIMEOUT_S}",
        _mount_sequence,
    ),
    Target(
        "elliptec",
        lambda: ElliptecBus(
            SystemClock(), {0: ElliptecDevice(RotatorModel(SystemClock(), name="fuzz.hwp"))}
        ),
        lambda p: f"elliptec+socket://127.0.0.1:{p}?address=0&timeout_s={IO_TIMEOUT_S}",
        _rotator_sequence,
    ),
)


async def _case(target: Target, proxy: MutatingProxy) -> str | None:
    """Run the driver's sequence once: None (fine or typed error), else what escaped."""
    device = open_device(target.url(proxy.port), SystemClock())
    try:
        await device.connect()
        await target.run(device)
    except DeviceError:
        return "typed"
    except Exception as exc:  # the thing a fuzzer looks for: reported, not raised
        return f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(DeviceError, OSError):
            await asyncio.wait_for(device.close(), 5.0)
    return None


@contextlib.contextmanager
def _quiet_drivers() -> Iterator[None]:
    """The drivers log every refused reply at WARNING: thousands of lines for a fuzz run."""
    logger = logging.getLogger("drivers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def fuzz_driver(target: Target, cases: int) -> FuzzResult:
    """``cases`` mutation plans against ``target`` (module doc)."""
    with _quiet_drivers():
        return _fuzz_driver(target, cases)


def _fuzz_driver(target: Target, cases: int) -> FuzzResult:
    result = FuzzResult(f"replies/{target.name}")
    lt = _LoopThread()

    async def start() -> tuple[TcpServer, MutatingProxy]:
        server = TcpServer(target.handler(), name=f"fuzz:{target.name}")
        await server.start()
        proxy = MutatingProxy(server.port)
        await proxy.start()
        return server, proxy

    server, proxy = lt.call(start())
    try:

        @_settings(cases)
        @given(skip=st.integers(0, 6), ops=st.lists(_ops(), min_size=1, max_size=6))
        def run(skip: int, ops: list[Op]) -> None:
            result.cases += 1
            proxy.plan = Plan(skip, ops)
            t0 = time.monotonic()
            try:
                outcome = lt.call(_case(target, proxy), CASE_BOUND_S)
            except TimeoutError:
                result.fail(f"hang > {CASE_BOUND_S} s with plan skip={skip} ops={ops}")
                return
            if outcome == "typed":
                result.typed_errors += 1
            elif outcome is not None:
                took = time.monotonic() - t0
                result.fail(f"{outcome} (plan skip={skip} ops={ops}, {took:.1f} s)")

        run()
    finally:
        lt.call(proxy.close())
        lt.call(server.close())
        lt.close()
    result.failures.extend(f"event loop: {e}" for e in lt.errors)
    return result


def fuzz_replies(cases: int) -> list[FuzzResult]:
    """Every target with ``cases`` plans each."""
    return [fuzz_driver(t, cases) for t in TARGETS]
