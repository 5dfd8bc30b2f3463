"""One request/reply link to a device: the transaction layer every protocol driver shares.

A :class:`DeviceLink` owns one byte transport (opened from a transport URL, a factory, or
injected by a test) and runs each request/reply *exchange* so that the line can never
desynchronise, in the spirit of Hamlib's transaction layer (``rot_transaction``: one
command and its whole reply under one lock, input flushed before retrying) and of
ophyd-async's movable logic (anchors.md §1, §10):

- **one lock**: exchanges never interleave on the wire;
- **shielded from cancellation**: an exchange runs in its own task; a caller cancelled while
  the request is out returns at once, while the task reads the reply to the end (every read
  is bounded by the transport timeout, so the shield cannot hang). A caller cancelled
  *before* its exchange started (still waiting for the lock) cancels it: nothing was sent;
- **resync**: after an error of the classes given as ``resync_on`` (default: any
  :class:`~drivers.errors.DeviceError`, a timeout included) the input is flushed before the
  lock is released, so the rest of a bad or late reply cannot prefix the next one.

So a cancelled query can never leave its reply in the input buffer for the next command:
the desync is impossible by construction, not by each driver's care.

Usage::

    async with DeviceLink("tcp://127.0.0.1:4533", url="rotctld://127.0.0.1:4533") as link:
        reply = await link.exchange(lambda t: query(t, b"p\\n"))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from drivers.errors import DeviceError, NotConnected
from drivers.transport.base import DEFAULT_TIMEOUT_S, Transport

log = logging.getLogger(__name__)

T = TypeVar("T")

#: an async factory of an open transport (e.g. a reconnecting supervisor's)
TransportFactory = Callable[[], Awaitable[Transport]]
#: where a link gets its transport: an open Transport, a transport URL, or a factory
TransportSource = Transport | str | TransportFactory


def retrieve_outcome(task: asyncio.Future[Any]) -> None:
    """Done callback: fetch a finished task's outcome so it is never logged as unretrieved."""
    if not task.cancelled():
        task.exception()


class DeviceLink:
    """A transport plus the lock, shield and resync of one device's exchanges.

    Args:
        source: an open :class:`Transport` (tests inject a scripted one; it cannot be
            reopened once closed), a transport URL for
            :func:`drivers.transport.open_transport`, or an async factory.
        url: the device URL quoted in errors (default: the transport URL).
        timeout: wall seconds bounding the opening and, as the transport's default, each
            read and write.
        resync_on: exception classes after which the input is flushed (resync).
    """

    def __init__(
        self,
        source: TransportSource,
        *,
        url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        resync_on: tuple[type[BaseException], ...] = (DeviceError,),
    ) -> None:
        self._source = source
        if isinstance(source, str):
            default_url = source
        elif isinstance(source, Transport):
            default_url = source.url
        else:
            default_url = "device"
        self._url = url if url is not None else default_url
        self._timeout = timeout
        self._resync_on = resync_on
        self._transport: Transport | None = None
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The device URL (for messages)."""
        return self._url

    @property
    def source(self) -> TransportSource:
        """What :meth:`open` opens (a transport URL, a factory or the injected transport)."""
        return self._source

    @property
    def is_open(self) -> bool:
        return self._transport is not None and self._transport.is_open

    @property
    def transport(self) -> Transport:
        """The open transport; raises NotConnected when there is none.

        Use it directly only for an out-of-band write that must not wait for the lock (an
        emergency stop while a move's exchange holds it).
        """
        transport = self._transport
        if transport is None or not transport.is_open:
            raise NotConnected("not connected", device=self._url, hint="call connect() first")
        return transport

    async def open(self) -> Transport:
        """Open the transport (idempotent) and return it."""
        if self._transport is not None and self._transport.is_open:
            return self._transport
        source = self._source
        if isinstance(source, Transport):
            if not source.is_open:
                raise NotConnected(
                    "the injected transport is closed",
                    device=self._url,
                    hint="construct the driver with a URL or a factory to allow reconnecting",
                )
            transport = source
        elif isinstance(source, str):
            from drivers.transport import open_transport  # imported lazily: optional backends

            transport = await open_transport(source, timeout=self._timeout)
        else:
            transport = await source()
        self._transport = transport
        return transport

    async def close(self) -> None:
        """Close the transport; safe to call twice or before :meth:`open`."""
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()

    async def __aenter__(self) -> DeviceLink:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ exchanges

    async def exchange(
        self,
        fn: Callable[[Transport], Awaitable[T]],
        *,
        prepare: Callable[[], Awaitable[None]] | None = None,
        on_cancel: Callable[[asyncio.Task[T]], Awaitable[None]] | None = None,
    ) -> T:
        """Run ``fn(transport)`` (one request and its whole reply) under the lock, shielded.

        Args:
            fn: the exchange; it writes the request and reads the reply.
            prepare: awaited under the lock before ``fn``, still cancellable with the
                caller (nothing is sent yet), e.g. a pause the device needs between moves.
            on_cancel: awaited when the caller is cancelled after ``fn`` started, before the
                cancellation propagates (e.g. send a stop and wait, bounded, for the task to
                read the final reply). Without it the caller returns at once.

        Raises:
            NotConnected: the link is not open.
            Whatever ``fn`` raises; after a ``resync_on`` error the input was flushed.
        """
        transport = self.transport
        started = False

        async def run() -> T:
            nonlocal started
            async with self._lock:
                if prepare is not None:
                    await prepare()
                started = True  # no await between this and fn's first step
                try:
                    return await fn(transport)
                except self._resync_on:
                    await self.resync()
                    raise

        task = asyncio.ensure_future(run())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(retrieve_outcome)
            if not started:
                task.cancel()  # still waiting for the lock or preparing: nothing went out
                raise
            if on_cancel is not None and not task.done():
                await on_cancel(task)
            raise

    async def resync(self) -> None:
        """Discard unread input (a late or partial reply); never raises."""
        transport = self._transport
        if transport is None or not transport.is_open:
            return
        with contextlib.suppress(DeviceError, OSError):
            await transport.reset_input()
