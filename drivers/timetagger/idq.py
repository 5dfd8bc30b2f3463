"""IDQ ID1000-style time controller: SCPI over ZeroMQ REQ/REP plus a DataLinkTarget stream.

Wire facts (protocols.md §3a, timetag.md §3):

- Control: SCPI strings over ZeroMQ REQ/REP (the device's port 5555). Every request gets one
  reply frame; a command that is not a query gets an empty one. A reply containing
  ``SCPI_ERR_`` is an error. Several queries joined by ``;`` answer one line each.
- Timestamps do not come back on the control socket. The host's DataLinkTarget (DLT) service
  (REQ/REP, port 6060, JSON replies) is asked to ``start-stream``; it then pushes binary
  blocks on a ZeroMQ PAIR socket the client connects to; a zero-length message ends the
  stream. ``stop --id <id>`` ends it; errors are ``{"error": {"description": ...}}``.
- Block format: see :mod:`drivers.timetagger.idqformat` (the emulator's documented format).

URL: ``idq+zmq://<host>:<scpi port>?dlt=<port>&stream=<port>`` (defaults 6060 and 4242; the
DLT runs on the same host as the SCPI endpoint in the rig, on the client's host in a lab).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from drivers.clock import Clock
from drivers.datatypes import ChannelConfig, EventBlock
from drivers.errors import (
    DeviceError,
    DeviceFault,
    DeviceURLError,
    LimitViolation,
    NotConnected,
    ProtocolError,
)
from drivers.registry import DeviceURL
from drivers.timetagger.blockstream import BlockStream, MessageSource
from drivers.timetagger.idqformat import decode_block
from drivers.timetagger.zmqlink import ZmqReceiver, ZmqRequester

log = logging.getLogger(__name__)

INPUTS = (1, 2, 3, 4)  #: ID1000 input channels
DEFAULT_DLT_PORT = 6060
DEFAULT_STREAM_PORT = 4242
REQUEST_TIMEOUT_S = 2.0  #: wall seconds for one SCPI or DLT round trip
END_OF_STREAM_WAIT_S = 5.0  #: wall seconds stop() waits for the zero-length end marker

_NUMBER = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*")


class MessageTransport(Protocol):
    """One request message in, one reply message out (ZeroMQ REQ), bounded."""

    async def request(self, payload: bytes, *, timeout: float | None = None) -> bytes: ...

    async def close(self) -> None: ...


def scpi_error(command: str, reply: str, *, device: str) -> DeviceError:
    """Typed error for a reply carrying ``SCPI_ERR_<name>``.

    Syntax and unknown-header errors are the driver's fault (ProtocolError); range errors are
    the caller's (LimitViolation); everything else is a device condition (DeviceFault).
    """
    match = re.search(r"SCPI_ERR_[A-Z0-9_]*", reply)
    name = match.group(0) if match else "SCPI_ERR_"
    upper = name.upper()
    if any(key in upper for key in ("SYNTAX", "UNKNOWN", "UNDEFINED", "HEADER", "COMMAND")):
        return ProtocolError(
            f"{command!r} rejected: {reply.strip()}",
            device=device,
            hint="the device does not understand this command (firmware version?)",
        )
    if any(key in upper for key in ("RANGE", "PARAM", "VALUE", "ARG")):
        return LimitViolation(f"{command!r} rejected: {reply.strip()}", device=device)
    return DeviceFault(f"{command!r} failed: {reply.strip()}", device=device)


def parse_number(text: str, *, what: str, device: str) -> float:
    """A numeric SCPI reply, tolerating a unit suffix (``-0.4V``, ``1 TB``; §3a)."""
    match = _NUMBER.fullmatch(text)
    if match is None:
        raise ProtocolError(f"{what} reply {text!r} is not a number", device=device)
    return float(match.group(1))


class IDQTimeTagger:
    """An IDQ ID1000-style time tagger; satisfies :class:`drivers.interfaces.TimeTagger`.

    Args:
        url: device URL (messages and provenance).
        clock: control-plane clock (unused for pacing: the device paces the stream).
        scpi: control transport (tests inject one); default a REQ socket to ``scpi_endpoint``.
        dlt: DataLinkTarget transport; default a REQ socket to ``dlt_endpoint``.
        host: device address given to the DLT (``--address``) and stream host.
        stream_port: port of the PAIR stream the DLT serves.
        queue_blocks: back-pressure window of decoded blocks.
        idle_timeout_s: wall seconds without any stream message before the stream fails.
    """

    def __init__(
        self,
        *,
        url: str,
        clock: Clock,
        host: str = "127.0.0.1",
        scpi_port: int = 5555,
        dlt_port: int = DEFAULT_DLT_PORT,
        stream_port: int = DEFAULT_STREAM_PORT,
        scpi: MessageTransport | None = None,
        dlt: MessageTransport | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        queue_blocks: int = 64,
        idle_timeout_s: float = 10.0,
    ) -> None:
        self._url = url
        self._clock = clock
        self._host = host
        self._scpi_port = scpi_port
        self._dlt_port = dlt_port
        self._stream_port = stream_port
        self._scpi = scpi
        self._dlt = dlt
        self._timeout = request_timeout_s
        self._queue_blocks = queue_blocks
        self._idle_timeout = idle_timeout_s
        self._connected = False
        self._enabled: list[int] = []
        self._stream_id: str | None = None
        self._blocks: BlockStream | None = None
        self.last_stream: BlockStream | None = None  #: the stream of the latest run (stats)
        self.identity = ""

    @classmethod
    def from_url(cls, url: DeviceURL, clock: Clock) -> IDQTimeTagger:
        """``idq+zmq://127.0.0.1:5555?dlt=6060&stream=4242``."""
        allowed = {"dlt", "stream"}
        unknown = sorted(set(url.params) - allowed)
        if unknown:
            raise DeviceURLError(
                f"{url.raw!r}: unknown parameter(s) {unknown}; allowed: {sorted(allowed)}",
                key="url",
            )
        ports: dict[str, int] = {}
        for name, default in (("dlt", DEFAULT_DLT_PORT), ("stream", DEFAULT_STREAM_PORT)):
            text = url.params.get(name, str(default))
            if not text.isdigit() or not 0 < int(text) < 65536:
                raise DeviceURLError(
                    f"{url.raw!r}: {name} must be a port in 1..65535, got {text!r}", key="url"
                )
            ports[name] = int(text)
        host, port = url.host_port()
        return cls(
            url=url.raw,
            clock=clock,
            host=host,
            scpi_port=port,
            dlt_port=ports["dlt"],
            stream_port=ports["stream"],
        )

    @property
    def url(self) -> str:
        return self._url

    @property
    def stream_state(self) -> BlockStream | None:
        """The running stream (gap and event counters), if any."""
        return self._blocks

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Open the control sockets and read ``*IDN?``."""
        if self._scpi is None:
            req = ZmqRequester(
                f"tcp://{self._host}:{self._scpi_port}", timeout_s=self._timeout, device=self._url
            )
            req.open()
            self._scpi = req
        if self._dlt is None:
            dlt = ZmqRequester(
                f"tcp://{self._host}:{self._dlt_port}", timeout_s=self._timeout, device=self._url
            )
            dlt.open()
            self._dlt = dlt
        self._connected = True
        try:
            self.identity = (await self.scpi("*IDN?")).strip()
        except BaseException:
            await self.close()
            raise
        if not self.identity:
            await self.close()
            raise ProtocolError("*IDN? answered an empty identity", device=self._url)
        log.info("idq %s: %s", self._url, self.identity)

    async def close(self) -> None:
        """Stop streaming (best effort) and release the sockets; idempotent."""
        if self._blocks is not None:
            with contextlib.suppress(DeviceError):
                await self.stop()
        self._connected = False
        for transport in (self._scpi, self._dlt):
            if transport is not None:
                await transport.close()
        self._scpi = self._dlt = None

    # ------------------------------------------------------------------ control plane

    async def scpi(self, command: str) -> str:
        """Send one SCPI message; returns the reply text; ``SCPI_ERR_`` raises."""
        if not self._connected or self._scpi is None:
            raise NotConnected("not connected", device=self._url, hint="call connect() first")
        raw = await self._scpi.request(command.encode("ascii"), timeout=self._timeout)
        try:
            reply = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(
                f"non-UTF-8 reply {raw[:60]!r} to {command!r}", device=self._url
            ) from None
        if "SCPI_ERR_" in reply:
            raise scpi_error(command, reply, device=self._url)
        if not command.rstrip().endswith("?") and "?" not in command and reply.strip():
            raise ProtocolError(
                f"command {command!r} (not a query) answered {reply[:60]!r}; expected nothing",
                device=self._url,
            )
        return reply

    async def dlt(self, command: str) -> dict[str, object]:
        """Send one DataLinkTarget command; returns the JSON reply; ``error`` raises."""
        if not self._connected or self._dlt is None:
            raise NotConnected("not connected", device=self._url, hint="call connect() first")
        raw = await self._dlt.request(command.encode("utf-8"), timeout=self._timeout)
        try:
            reply = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ProtocolError(
                f"DataLinkTarget answered {raw[:80]!r} to {command!r}; expected JSON",
                device=self._url,
            ) from None
        if not isinstance(reply, dict):
            raise ProtocolError(
                f"DataLinkTarget reply {reply!r} is not an object", device=self._url
            )
        error = reply.get("error")
        if error is not None:
            text = error.get("description", error) if isinstance(error, dict) else error
            raise DeviceFault(
                f"DataLinkTarget refused {command!r}: {text}",
                device=self._url,
                hint="check the DataLinkTarget service and the stream port",
            )
        return reply

    async def configure(self, channels: Mapping[int, ChannelConfig]) -> None:
        """Enable/threshold/delay per input; inputs not mentioned are disabled."""
        unknown = sorted(set(channels) - set(INPUTS))
        if unknown:
            raise LimitViolation(
                f"inputs {unknown} do not exist; the ID1000 has inputs {list(INPUTS)}",
                device=self._url,
            )
        for ch in INPUTS:
            cfg = channels.get(ch, ChannelConfig(enabled=False))
            if not cfg.enabled:
                await self.scpi(f"INPU{ch}:ENAB OFF")
                continue
            await self.scpi(f"INPU{ch}:ENAB ON")
            await self.scpi(f"INPU{ch}:THRE {cfg.threshold_v:.3f}V")
            await self.scpi(f"DELA{ch}:VALU {int(cfg.delay_ps)}")
        self._enabled = sorted(ch for ch, cfg in channels.items() if cfg.enabled)

    async def count_rates(self) -> dict[int, float]:
        """Counts per second of each enabled input (``INPU<n>:COUN?``)."""
        return {ch: await self.scpi_number(f"INPU{ch}:COUN?") for ch in self._enabled or INPUTS}

    async def scpi_number(self, query: str) -> float:
        """A numeric query; a unit suffix is tolerated (§3a)."""
        return parse_number(await self.scpi(query), what=query, device=self._url)

    # ------------------------------------------------------------------ acquisition

    async def start(self) -> None:
        """Enable raw output of the enabled inputs and open the DLT stream."""
        if self._blocks is not None:
            raise DeviceFault("already acquiring", device=self._url, hint="call stop() first")
        channels = self._enabled or list(INPUTS)
        for ch in channels:
            await self.scpi(f"RAW{ch}:SEND ON")
        await self.scpi("REC:ENAB ON")
        reply = await self.dlt(
            f"start-stream --address {self._host} "
            f"--channel {','.join(str(c) for c in channels)} --stream-port {self._stream_port}"
        )
        stream_id = reply.get("id")
        if not isinstance(stream_id, str | int):
            raise ProtocolError(f"start-stream reply {reply!r} has no id", device=self._url)
        self._stream_id = str(stream_id)
        source: MessageSource = ZmqReceiver(
            f"tcp://{self._host}:{self._stream_port}", device=self._url
        )
        self._blocks = BlockStream(
            source,
            lambda payload: decode_block(payload, device=self._url),
            device=self._url,
            idle_timeout_s=self._idle_timeout,
            queue_blocks=self._queue_blocks,
        )

    async def stop(self) -> None:
        """Stop the DLT stream and the recording; the stream ends at the end marker."""
        blocks, self._blocks = self._blocks, None
        stream_id, self._stream_id = self._stream_id, None
        try:
            if stream_id is not None:
                await self.dlt(f"stop --id {stream_id}")
            await self.scpi("REC:ENAB OFF")
            for ch in self._enabled or list(INPUTS):
                await self.scpi(f"RAW{ch}:SEND OFF")
        finally:
            if blocks is not None:
                self.last_stream = blocks
                if not await blocks.wait_end(END_OF_STREAM_WAIT_S):
                    log.warning(
                        "idq %s: no end-of-stream marker within %g s of stop (is a consumer "
                        "still behind?); closing the stream",
                        self._url,
                        END_OF_STREAM_WAIT_S,
                    )
                await blocks.close()

    async def stream(self) -> AsyncIterator[EventBlock]:
        """Event blocks in order until the end of the stream (see :class:`BlockStream`)."""
        blocks = self._blocks or self.last_stream
        if blocks is None:
            raise NotConnected("not acquiring", device=self._url, hint="call start() first")
        async for block in blocks.blocks():
            yield block
