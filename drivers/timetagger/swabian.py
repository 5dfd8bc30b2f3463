"""Adapter for a Swabian Instruments Time Tagger through the vendor SDK (module ``TimeTagger``).

Swabian's wire protocol is proprietary (protocols.md §3b), so this driver wraps the vendor
Python API instead of speaking bytes: ``createTimeTagger(serial)``, ``setTriggerLevel``,
``setInputDelay``, a ``TimeTagStream`` whose ``getData()`` buffer gives int64 picosecond
timestamps and channel numbers, and ``Countrate`` for rates. The SDK is not on PyPI; where
it is not installed, :meth:`SwabianTimeTagger.connect` raises a :class:`DeviceError` saying
so. SDK calls block, so each runs in a worker thread, bounded by a timeout.

URL: ``swabian://<serial>`` (empty serial: the first tagger found), e.g. ``swabian://``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from drivers.clock import Clock
from drivers.datatypes import ChannelConfig, EventBlock
from drivers.errors import (
    DeviceError,
    DeviceTimeout,
    DeviceURLError,
    NotConnected,
    ProtocolError,
)
from drivers.registry import DeviceURL

log = logging.getLogger(__name__)

SDK_MODULE = "TimeTagger"
SDK_CALL_TIMEOUT_S = 10.0  #: wall seconds for one SDK call (createTimeTagger can be slow)
STREAM_BUFFER_EVENTS = 10_000_000  #: events the SDK buffers between getData() calls
POLL_S = 0.02  #: clock seconds between getData() polls
RATE_WINDOW_PS = 200_000_000_000  #: Countrate integration window (0.2 s)

T = TypeVar("T")


def load_sdk() -> Any:
    """Import the vendor SDK or raise a DeviceError that says how to get it."""
    try:
        return importlib.import_module(SDK_MODULE)
    except ImportError:
        raise DeviceError(
            f"the Swabian Time Tagger SDK (module {SDK_MODULE!r}) is not installed",
            device="swabian://",
            hint="install it from Swabian's website (it is not on PyPI) into this Python "
            "environment, or use another time tagger URL",
        ) from None


class SwabianTimeTagger:
    """A Swabian Time Tagger via its SDK; satisfies :class:`drivers.interfaces.TimeTagger`.

    Untested against hardware or the SDK here (neither is available to CI); the not-installed
    path is tested.
    """

    def __init__(self, *, url: str, clock: Clock, serial: str = "") -> None:
        self._url = url
        self._clock = clock
        self._serial = serial
        self._sdk: Any = None
        self._tagger: Any = None
        self._stream: Any = None
        self._channels: list[int] = []
        self._seq = 0
        self.overflows = 0  #: getData() buffers that reported an overflow (events lost)

    @classmethod
    def from_url(cls, url: DeviceURL, clock: Clock) -> SwabianTimeTagger:
        if url.params:
            raise DeviceURLError(
                f"{url.raw!r}: swabian takes no parameters, got {sorted(url.params)}", key="url"
            )
        return cls(url=url.raw, clock=clock, serial=url.address)

    @property
    def url(self) -> str:
        return self._url

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            async with asyncio.timeout(SDK_CALL_TIMEOUT_S):
                return await asyncio.to_thread(fn, *args)
        except TimeoutError:
            raise DeviceTimeout(
                f"SDK call {getattr(fn, '__name__', fn)!r} took over {SDK_CALL_TIMEOUT_S} s",
                device=self._url,
            ) from None

    def _require(self) -> Any:
        if self._tagger is None:
            raise NotConnected("not connected", device=self._url, hint="call connect() first")
        return self._tagger

    async def connect(self) -> None:
        sdk = load_sdk()
        self._sdk = sdk
        self._tagger = await self._call(sdk.createTimeTagger, self._serial)
        log.info("swabian %s: connected to tagger %r", self._url, self._serial or "(first)")

    async def close(self) -> None:
        tagger, self._tagger = self._tagger, None
        self._stream = None
        if tagger is not None and self._sdk is not None:
            await self._call(self._sdk.freeTimeTagger, tagger)

    async def configure(self, channels: Mapping[int, ChannelConfig]) -> None:
        """Trigger level (V) and input delay (ps) per channel; remembers the enabled ones."""
        tagger = self._require()
        for ch, cfg in channels.items():
            if cfg.enabled:
                await self._call(tagger.setTriggerLevel, ch, cfg.threshold_v)
                await self._call(tagger.setInputDelay, ch, cfg.delay_ps)
        self._channels = sorted(ch for ch, cfg in channels.items() if cfg.enabled)

    async def start(self) -> None:
        tagger = self._require()
        self._seq = 0
        self._stream = await self._call(
            self._sdk.TimeTagStream, tagger, STREAM_BUFFER_EVENTS, self._channels
        )

    async def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await self._call(stream.stop)

    async def stream(self) -> AsyncIterator[EventBlock]:
        """Poll ``getData()`` and yield its events until :meth:`stop`."""
        while self._stream is not None:
            buffer = await self._call(self._stream.getData)
            if buffer.hasOverflows:
                self.overflows += 1
                log.warning("swabian %s: SDK buffer overflow, events were lost", self._url)
            t_ps = np.asarray(buffer.getTimestamps(), dtype=np.int64)
            channel = np.asarray(buffer.getChannels(), dtype=np.int64)
            if len(channel) and (channel.min() < 0 or channel.max() > 255):
                raise ProtocolError(
                    "SDK returned channels outside 0..255 (falling-edge channels are negative); "
                    "enable rising-edge channels only",
                    device=self._url,
                )
            if len(t_ps):
                block = EventBlock(self._seq, t_ps, channel.astype(np.uint8))
                self._seq += 1
                yield block
            await self._clock.sleep(POLL_S)

    async def count_rates(self) -> dict[int, float]:
        tagger = self._require()
        counter = await self._call(self._sdk.Countrate, tagger, self._channels)
        await self._call(counter.startFor, RATE_WINDOW_PS)
        await self._call(counter.waitUntilFinished, int(SDK_CALL_TIMEOUT_S * 1000))
        rates = await self._call(counter.getData)
        return {ch: float(r) for ch, r in zip(self._channels, rates, strict=True)}
