"""IDQ ID1000-style time controller: SCPI over ZeroMQ REQ/REP plus a DataLinkTarget stream.

The wire is what ``docs/devices/idq-emulator.md`` (and ``sim_hardware/servers/idq.py``)
define, from protocols.md §3a:

- **Control**: SCPI text over a ZeroMQ REQ socket (the device's port 5555). Every request gets
  one reply frame: one line per query (``\\n``-joined), an empty frame for a set command, a
  line ``SCPI_ERR_<KIND>: <detail>`` for a failing command. Inputs are numbered from 1.
  ``INPU<n>:COUN?`` is the count over the input's integration time
  (``INPU<n>:COUN:INTE?``, ms), so a rate is count / integration time.
- **DataLinkTarget** (DLT; real port 6060): a second REQ socket, CLI-style requests, JSON
  replies, errors ``{"error": {"description": ...}}``. ``start-stream --address <host>
  --channel all --stream-port <port|0>`` answers ``{"id", "stream_port"}``; the driver
  connects a PAIR socket there. ``stop --id <id>`` ends the stream with a zero-length
  message; ``status --id <id>`` is the liveness check of a quiet stream.
- **Stream**: ``--channel all`` (a qgs extension of the DLT, see
  :mod:`drivers.timetagger.idqformat`): two-frame blocks ``[header, records]`` with a
  per-stream sequence number (a jump = lost blocks, reported as a gap), int64 ps times and
  1-based channels. Back-pressure, not drops: a bounded block queue plus ZeroMQ high-water
  marks on both ends hold the sender back while the consumer is behind.
- A REQ socket that timed out cannot send again; the transport
  (:mod:`drivers.transport.zmqreq`) closes and recreates it, so the next request starts clean.

Every awaited request is bounded by ``timeout_s`` (wall seconds); a quiet stream is checked
with a bounded DLT ``status`` request every ``idle_s``; a dead device therefore surfaces as
:class:`~drivers.errors.DeviceTimeout` (or NotConnected), never as a hang.

URL: ``idq+zmq://<host>:<scpi port>?dlt=<port>&dlt_host=<host>&stream=<port>&channels=<n>
&timeout_s=<s>&idle_s=<s>`` (defaults: dlt 6060 on the SCPI host, stream 0 = the DLT picks
a port, inputs asked of the device, 2 s, 10 s). The rig prints ``idq+zmq://127.0.0.1:<scpi>?dlt=<dlt>``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Mapping

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
from drivers.timetagger.blockstream import QUEUE_BLOCKS, BlockStream, Gap
from drivers.timetagger.idqformat import decode_block
from drivers.transport.message import MessageTransport
from drivers.transport.url import ZmqAddress, parse_transport_url
from drivers.transport.zmqstream import ZmqStream, open_zmq_stream

log = logging.getLogger(__name__)

DEFAULT_INPUTS = 4  #: ID1000 inputs 1..4 (probed in one chained query)
MAX_INPUTS = 255  #: EventBlock channels are uint8
DEFAULT_DLT_PORT = 6060
REQUEST_TIMEOUT_S = 2.0  #: wall seconds for one SCPI or DLT round trip
IDLE_TIMEOUT_S = 10.0  #: wall seconds of a quiet stream before the DLT is asked if it lives
END_OF_STREAM_WAIT_S = 5.0  #: wall seconds stop() waits for the zero-length end marker
STREAM_RCVHWM = 4  #: stream messages queued in the receive socket before the sender waits
THRESHOLD_RANGE_V = (-2.0, 2.0)  #: discriminator range (ID1000 / emulator)
DELAY_RANGE_PS = (0, 10**12)  #: per-input delay range

_NUMBER = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*")
_ERROR = re.compile(r"SCPI_ERR_[A-Z0-9_]*")

#: the emulator's error kinds (docs/devices/idq-emulator.md) -> error class and hint
SCPI_ERRORS: dict[str, tuple[type[DeviceError], str]] = {
    "SCPI_ERR_UNDEFINED_HEADER": (ProtocolError, "the device does not know this command"),
    "SCPI_ERR_SYNTAX_ERROR": (ProtocolError, "the driver sent a malformed command"),
    "SCPI_ERR_MISSING_PARAMETER": (ProtocolError, "the driver sent a command without value"),
    "SCPI_ERR_HEADER_SUFFIX_OUT_OF_RANGE": (
        LimitViolation,
        "that input does not exist on this device (see ?channels= in the URL)",
    ),
    "SCPI_ERR_DATA_OUT_OF_RANGE": (LimitViolation, "give a value inside the device's range"),
    "SCPI_ERR_ILLEGAL_PARAMETER_VALUE": (LimitViolation, "give one of the allowed values"),
    "SCPI_ERR_EXECUTION_ERROR": (DeviceFault, "the device failed; check it and retry"),
}


def scpi_error(command: str, reply: str, *, device: str) -> DeviceError:
    """Typed error for a reply carrying ``SCPI_ERR_<KIND>``.

    Known kinds map by table; unknown ones by name: syntax and unknown-header errors are the
    driver's (ProtocolError), range and value errors the caller's (LimitViolation), anything
    else a device condition (DeviceFault).
    """
    match = _ERROR.search(reply)
    name = match.group(0) if match else "SCPI_ERR_"
    line = next((ln.strip() for ln in reply.splitlines() if "SCPI_ERR_" in ln), reply.strip())
    message = f"{command!r} rejected: {line}"
    if name in SCPI_ERRORS:
        cls, hint = SCPI_ERRORS[name]
        return cls(message, device=device, hint=hint)
    if any(key in name for key in ("SYNTAX", "UNKNOWN", "UNDEFINED", "HEADER", "COMMAND")):
        return ProtocolError(message, device=device, hint="firmware version mismatch?")
    if any(key in name for key in ("RANGE", "PARAM", "VALUE", "ARG")):
        return LimitViolation(message, device=device)
    return DeviceFault(message, device=device)


def parse_number(text: str, *, what: str, device: str) -> float:
    """A numeric SCPI reply, tolerating a unit suffix (``-0.4V``, ``1 TB``; §3a)."""
    match = _NUMBER.fullmatch(text)
    if match is None:
        raise ProtocolError(f"{what} reply {text!r} is not a number", device=device)
    return float(match.group(1))


class QgsBlockSource:
    """Receives and decodes qgs all-channel blocks from a PAIR stream (a BlockSource)."""

    def __init__(self, stream: ZmqStream, *, device: str) -> None:
        self._stream = stream
        self._device = device

    async def next_block(self, timeout: float) -> EventBlock | None:
        frames = await self._stream.recv_multipart(timeout)
        if len(frames) == 1 and not frames[0]:
            return None  # zero-length message: end of stream
        return decode_block(frames, device=self._device)

    async def close(self) -> None:
        await self._stream.close()


def _port(url: DeviceURL, name: str, default: int, *, allow_zero: bool = False) -> int:
    text = url.params.get(name, str(default))
    low = 0 if allow_zero else 1
    if not text.isdigit() or not low <= int(text) < 65536:
        raise DeviceURLError(
            f"{url.raw!r}: {name} must be a port in {low}..65535, got {text!r}", key="url"
        )
    return int(text)


def _seconds(url: DeviceURL, name: str, default: float) -> float:
    text = url.params.get(name, str(default))
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise DeviceURLError(
            f"{url.raw!r}: {name} must be a number of seconds > 0, got {text!r}", key="url"
        )
    return value


class IDQTimeTagger:
    """An IDQ ID1000-style time tagger; satisfies :class:`drivers.interfaces.TimeTagger`.

    Args:
        url: device URL (messages and provenance).
        clock: control-plane clock (unused for pacing: the device paces the stream).
        host / scpi_port: the device's SCPI endpoint; ``host`` is also the ``--address``
            given to the DLT.
        dlt_host / dlt_port: the DataLinkTarget service (default: on ``host``).
        stream_port: PAIR port asked of the DLT (0: the DLT picks one and says which).
        inputs: number of inputs, numbered 1..inputs; None: ask the device at connect
            (``INPU<n>:ENAB?`` for n = 1, 2, ... until it refuses an input number).
        request_timeout_s: wall seconds for one SCPI or DLT round trip.
        idle_timeout_s: wall seconds of a quiet stream before a DLT liveness check.
        queue_blocks: back-pressure window of decoded blocks.
    """

    def __init__(
        self,
        *,
        url: str,
        clock: Clock,
        host: str = "127.0.0.1",
        scpi_port: int = 5555,
        dlt_host: str | None = None,
        dlt_port: int = DEFAULT_DLT_PORT,
        stream_port: int = 0,
        inputs: int | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        queue_blocks: int = QUEUE_BLOCKS,
    ) -> None:
        if inputs is not None and not 1 <= inputs <= MAX_INPUTS:
            raise DeviceURLError(f"{url!r}: inputs must be 1..255, got {inputs}", key="url")
        self._url = url
        self._clock = clock
        self._host = host
        self._scpi_port = scpi_port
        self._dlt_host = dlt_host or host
        self._dlt_port = dlt_port
        self._stream_port = stream_port
        self._declared_inputs = inputs
        self.inputs = tuple(range(1, (inputs or DEFAULT_INPUTS) + 1))  #: probed at connect
        self._timeout = request_timeout_s
        self._idle_timeout = idle_timeout_s
        self._queue_blocks = queue_blocks
        self._scpi: MessageTransport | None = None
        self._dlt: MessageTransport | None = None
        self._connected = False
        self._enabled: list[int] = []
        self._streaming: list[int] = []  #: inputs with raw output on during acquisition
        self._stream_id: str | None = None
        self._blocks: BlockStream | None = None
        self.last_stream: BlockStream | None = None  #: the stream of the latest run (stats)
        self.identity = ""
        self.bin_width_ps = 0.0  #: ``DEVI:RES:BWID?``, read on connect

    @classmethod
    def from_url(cls, url: DeviceURL, clock: Clock) -> IDQTimeTagger:
        """``idq+zmq://127.0.0.1:5555?dlt=6060&channels=4&timeout_s=2`` (see module doc)."""
        allowed = {"dlt", "dlt_host", "stream", "channels", "timeout_s", "idle_s"}
        unknown = sorted(set(url.params) - allowed)
        if unknown:
            raise DeviceURLError(
                f"{url.raw!r}: unknown parameter(s) {unknown}; allowed: {sorted(allowed)}",
                key="url",
            )
        host, port = url.host_port()
        inputs = url.params.get("channels")
        if inputs is not None and (not inputs.isdigit() or not 1 <= int(inputs) <= MAX_INPUTS):
            raise DeviceURLError(
                f"{url.raw!r}: channels must be the number of inputs 1..255, got {inputs!r}",
                key="url",
            )
        dlt_host = url.params.get("dlt_host", host)
        if not dlt_host or any(c in dlt_host for c in "/:@ "):
            raise DeviceURLError(f"{url.raw!r}: dlt_host {dlt_host!r} is not a host", key="url")
        return cls(
            url=url.raw,
            clock=clock,
            host=host,
            scpi_port=port,
            dlt_host=dlt_host,
            dlt_port=_port(url, "dlt", DEFAULT_DLT_PORT),
            stream_port=_port(url, "stream", 0, allow_zero=True),
            inputs=None if inputs is None else int(inputs),
            request_timeout_s=_seconds(url, "timeout_s", REQUEST_TIMEOUT_S),
            idle_timeout_s=_seconds(url, "idle_s", IDLE_TIMEOUT_S),
        )

    @property
    def url(self) -> str:
        return self._url

    @property
    def acquiring(self) -> bool:
        return self._blocks is not None

    @property
    def stream_state(self) -> BlockStream | None:
        """The running stream (gap and event counters), if any."""
        return self._blocks

    @property
    def gaps(self) -> list[Gap]:
        """Sequence gaps (lost blocks) of the running, else the latest, stream."""
        blocks = self._blocks or self.last_stream
        return list(blocks.gaps) if blocks is not None else []

    # ------------------------------------------------------------------ lifecycle

    async def _open_req(self, host: str, port: int) -> MessageTransport:
        from drivers.transport.zmqreq import open_zmq_req

        address = parse_transport_url(f"zmq+tcp://{host}:{port}")
        assert isinstance(address, ZmqAddress)
        return await open_zmq_req(address, timeout=self._timeout)

    async def connect(self) -> None:
        """Open the control sockets; read ``*IDN?`` and the bin width; check the DLT."""
        if self._scpi is None:
            self._scpi = await self._open_req(self._host, self._scpi_port)
        if self._dlt is None:
            self._dlt = await self._open_req(self._dlt_host, self._dlt_port)
        self._connected = True
        try:
            self.identity = (await self.scpi("*IDN?")).strip()
            if not self.identity:
                raise ProtocolError("*IDN? answered an empty identity", device=self._url)
            self.bin_width_ps = await self.scpi_number("DEVI:RES:BWID?")
            if self._declared_inputs is None:
                self.inputs = tuple(range(1, await self._probe_inputs() + 1))
            await self.dlt("list")  # the DataLinkTarget answers too
        except BaseException:
            await self.close()
            raise
        log.info(
            "idq %s: %s, bin %g ps, inputs 1..%d",
            self._url,
            self.identity,
            self.bin_width_ps,
            len(self.inputs),
        )

    async def _probe_inputs(self) -> int:
        """How many inputs the device has: ``INPU<n>:ENAB?`` until it refuses ``n``.

        The first :data:`DEFAULT_INPUTS` are asked in one chained message, then one at a
        time, so a device with more inputs costs one round trip per extra input and the
        device's error queue gets exactly one "suffix out of range" entry.
        """

        def answered(lines: list[str], asked: list[int]) -> int:
            if len(lines) != len(asked):
                raise ProtocolError(
                    f"INPU<n>:ENAB? for inputs {asked} answered {len(lines)} lines",
                    device=self._url,
                )
            for i, line in enumerate(lines):
                if "SCPI_ERR_" in line:
                    if "SCPI_ERR_HEADER_SUFFIX_OUT_OF_RANGE" not in line:
                        raise scpi_error(f"INPU{asked[i]}:ENAB?", line, device=self._url)
                    return i
            return len(lines)

        first = list(range(1, DEFAULT_INPUTS + 1))
        reply = await self._scpi_text(";:".join(f"INPU{c}:ENAB?" for c in first))
        count = answered(reply.split("\n"), first)
        if count == DEFAULT_INPUTS:
            while count < MAX_INPUTS:
                reply = await self._scpi_text(f"INPU{count + 1}:ENAB?")
                if not answered([reply], [count + 1]):
                    break
                count += 1
        if count == 0:
            raise ProtocolError(
                "the device refuses input 1; it reports no inputs", device=self._url
            )
        return count

    async def close(self) -> None:
        """Stop streaming (best effort, bounded) and release the sockets; idempotent."""
        if self._blocks is not None:
            with contextlib.suppress(DeviceError):
                await self.stop()
        self._connected = False
        scpi, dlt, self._scpi, self._dlt = self._scpi, self._dlt, None, None
        for transport in (scpi, dlt):
            if transport is not None:
                await transport.close()

    # ------------------------------------------------------------------ control plane

    async def _scpi_text(self, command: str) -> str:
        """One SCPI round trip; the reply as text, error lines included."""
        if not self._connected or self._scpi is None:
            raise NotConnected("not connected", device=self._url, hint="call connect() first")
        raw = await self._scpi.request(command.encode("ascii"), timeout=self._timeout)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(
                f"non-UTF-8 reply {raw[:60]!r} to {command!r}", device=self._url
            ) from None

    async def scpi(self, command: str) -> str:
        """Send one SCPI message; returns the reply text; ``SCPI_ERR_`` raises (typed)."""
        reply = await self._scpi_text(command)
        if "SCPI_ERR_" in reply:
            raise scpi_error(command, reply, device=self._url)
        if "?" not in command and reply.strip():
            raise ProtocolError(
                f"command {command!r} (not a query) answered {reply[:60]!r}; expected nothing",
                device=self._url,
            )
        return reply

    async def scpi_number(self, query: str) -> float:
        """A numeric query; a unit suffix is tolerated (§3a)."""
        return parse_number(await self.scpi(query), what=query, device=self._url)

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
                hint="check the DataLinkTarget service, the address and the stream port",
            )
        return reply

    async def configure(self, channels: Mapping[int, ChannelConfig]) -> None:
        """Enable/threshold/delay per input; inputs not mentioned are disabled.

        Values outside the device's ranges raise LimitViolation before anything is sent.
        """
        unknown = sorted(set(channels) - set(self.inputs))
        if unknown:
            raise LimitViolation(
                f"inputs {unknown} do not exist; this tagger has inputs 1..{len(self.inputs)}",
                device=self._url,
                hint="inputs are numbered from 1",
            )
        for ch, cfg in sorted(channels.items()):
            low, high = THRESHOLD_RANGE_V
            if cfg.enabled and not low <= cfg.threshold_v <= high:
                raise LimitViolation(
                    f"input {ch}: threshold {cfg.threshold_v:g} V is outside [{low:g}, {high:g}] V",
                    device=self._url,
                )
            if cfg.enabled and not DELAY_RANGE_PS[0] <= cfg.delay_ps <= DELAY_RANGE_PS[1]:
                raise LimitViolation(
                    f"input {ch}: delay {cfg.delay_ps} ps is outside "
                    f"[{DELAY_RANGE_PS[0]}, {DELAY_RANGE_PS[1]:.0e}] ps",
                    device=self._url,
                    hint="a negative skew goes on the other inputs as a positive delay",
                )
        for ch in self.inputs:
            cfg = channels.get(ch, ChannelConfig(enabled=False))
            if not cfg.enabled:
                await self.scpi(f"INPU{ch}:ENAB OFF")
                continue
            await self.scpi(f"INPU{ch}:ENAB ON")
            await self.scpi(f"INPU{ch}:THRE {cfg.threshold_v:.3f}V")
            await self.scpi(f"DELA{ch}:VALU {int(cfg.delay_ps)}")
        self._enabled = sorted(ch for ch, cfg in channels.items() if cfg.enabled)

    async def count_rates(self) -> dict[int, float]:
        """Counts per second of each enabled input, from one chained query.

        ``INPU<n>:COUN?`` counts over the input's integration time ``INPU<n>:COUN:INTE?``
        (ms); the rate is their ratio.
        """
        chans = self._enabled or list(self.inputs)
        query = ";:".join(f"INPU{c}:COUN?;:INPU{c}:COUN:INTE?" for c in chans)
        lines = (await self.scpi(query)).split("\n")
        if len(lines) != 2 * len(chans):
            raise ProtocolError(
                f"{query!r} answered {len(lines)} lines; expected {2 * len(chans)}",
                device=self._url,
            )
        rates: dict[int, float] = {}
        for i, ch in enumerate(chans):
            count = parse_number(lines[2 * i], what=f"INPU{ch}:COUN?", device=self._url)
            inte_ms = parse_number(lines[2 * i + 1], what=f"INPU{ch}:COUN:INTE?", device=self._url)
            if not inte_ms > 0:
                raise ProtocolError(
                    f"input {ch}: integration time {inte_ms:g} ms is not > 0", device=self._url
                )
            rates[ch] = count * 1000.0 / inte_ms
        return rates

    # ------------------------------------------------------------------ acquisition

    async def start(self) -> None:
        """Raw output on for the enabled inputs, open the DLT stream, start recording."""
        if self._blocks is not None:
            raise DeviceFault("already acquiring", device=self._url, hint="call stop() first")
        channels = self._enabled or list(self.inputs)
        for ch in self.inputs:
            await self.scpi(f"RAW{ch}:SEND {'ON' if ch in channels else 'OFF'}")
        self._streaming = list(channels)
        try:
            reply = await self.dlt(
                f"start-stream --address {self._host} --channel all "
                f"--stream-port {self._stream_port}"
            )
            stream_id, port = reply.get("id"), reply.get("stream_port", self._stream_port)
            if isinstance(stream_id, str | int) and not isinstance(stream_id, bool):
                self._stream_id = str(stream_id)  # from here on, stop() ends it
            if self._stream_id is None or type(port) is not int or not 0 < port < 65536:
                raise ProtocolError(
                    f"start-stream reply {reply!r} lacks an id or a stream port",
                    device=self._url,
                )
            stream = await open_zmq_stream(
                f"zmq+tcp://{self._dlt_host}:{port}",
                socket_type="PAIR",
                timeout=self._timeout,
                rcvhwm=STREAM_RCVHWM,
            )
            self._blocks = BlockStream(
                QgsBlockSource(stream, device=self._url),
                device=self._url,
                idle_timeout_s=self._idle_timeout,
                on_idle=self._check_alive,
                queue_blocks=self._queue_blocks,
            )
            await self.scpi("REC:PLAY")
            stage = (await self.scpi("REC:STAG?")).strip()
            if stage != "PLAYING":
                raise DeviceFault(
                    f"recording stage is {stage!r} after REC:PLAY; expected 'PLAYING'",
                    device=self._url,
                )
        except BaseException:
            with contextlib.suppress(DeviceError):
                await self.stop()
            raise
        log.info("idq %s: streaming inputs %s (DLT id %s)", self._url, channels, self._stream_id)

    async def _check_alive(self) -> None:
        """Liveness of a quiet stream: the DLT must still know it (bounded request)."""
        stream_id = self._stream_id
        if stream_id is None:
            return
        status = await self.dlt(f"status --id {stream_id}")
        log.debug("idq %s: quiet stream, DLT status %s", self._url, status)

    async def stop(self) -> None:
        """Stop recording and the DLT stream; the stream ends at the end marker.

        Every step is tried even if an earlier one failed (a dead SCPI endpoint must not
        leave the DLT stream open); the first error is raised afterwards. Bounded: each step
        by the request timeout, the wait for the end marker by :data:`END_OF_STREAM_WAIT_S`.
        """
        blocks, self._blocks = self._blocks, None
        if blocks is not None:
            self.last_stream = blocks  # stream() keeps serving it while stop() runs
        stream_id, self._stream_id = self._stream_id, None
        errors: list[DeviceError] = []
        dlt_stopped = False
        try:
            try:
                await self.scpi("REC:STOP")
            except DeviceError as exc:
                errors.append(exc)
            if stream_id is not None:
                try:
                    await self.dlt(f"stop --id {stream_id}")
                    dlt_stopped = True
                except DeviceError as exc:
                    errors.append(exc)
            if not errors:
                for ch in self._streaming:
                    await self.scpi(f"RAW{ch}:SEND OFF")
        except DeviceError as exc:
            errors.append(exc)
        finally:
            self._streaming = []
            if blocks is not None:
                if dlt_stopped and not await blocks.wait_end(END_OF_STREAM_WAIT_S):
                    log.warning(
                        "idq %s: stopped without seeing the end-of-stream marker (no consumer "
                        "is taking blocks, or none came within %g s); blocks still queued "
                        "are dropped with the stream",
                        self._url,
                        END_OF_STREAM_WAIT_S,
                    )
                await blocks.close()
        if errors:
            raise errors[0]

    async def stream(self) -> AsyncIterator[EventBlock]:
        """Event blocks in order until the end of the stream (see :class:`BlockStream`)."""
        blocks = self._blocks or self.last_stream
        if blocks is None:
            raise NotConnected("not acquiring", device=self._url, hint="call start() first")
        async for block in blocks.blocks():
            yield block
