"""IDQ ID1000 time controller: SCPI over ZeroMQ REQ/REP plus DataLinkTarget streams.

The wire is IDQ's, as protocols.md §3a documents it; the driver needs nothing more
(docs/devices/idq-emulator.md says what the emulator adds, opt-in):

- **Control**: SCPI text over a ZeroMQ REQ socket (the device's port 5555). Every request gets
  one reply frame: one line per query (``\\n``-joined), an empty frame for a set command, a
  line containing ``SCPI_ERR_<KIND>`` for a failing command. Inputs are numbered from 1.
  Acquisition: ``RAW<n>:SEND ON`` per enabled input, then ``REC:ENABle ON`` and ``REC:PLAY``
  (§3a's sequence), ``REC:STAGe?`` must then say ``PLAYING``; ``REC:STOP`` ends it.
- **DataLinkTarget** (DLT; port 6060 on the host running it): a second REQ socket, CLI-style
  requests, JSON replies, errors ``{"error": {"description": ...}}``. Per enabled input
  ``start-stream --address <host> --channel <n> --stream-port <port>`` answers ``{"id"}``;
  the driver chooses the port (a free local port, or ``stream=<base>`` + n, as IDQ's
  example uses 4241 + n) and connects a PAIR socket there. ``stop --id <id>`` ends that
  stream with a zero-length message.
- **Streams**: one per input, bare little-endian uint64 timestamps (§3a), merged in time
  order into EventBlocks by :mod:`drivers.timetagger.idqstreams` /
  :mod:`drivers.timetagger.merge` (watermark, stall rule and bound are described there).
  Block ``seq`` numbers are the driver's (0, 1, 2, ...): the documented stream carries
  none, so a message lost between the DLT and the driver cannot be detected here (ZeroMQ's
  PAIR over TCP does not drop; the DLT's own losses are invisible, as on real hardware).
  Back-pressure, not drops: a bounded block queue, a bounded hold-back per input and ZeroMQ
  high-water marks hold the sender back while the consumer is behind.
- **Optional probes** (not in §3a; a refusal is logged once and changes nothing): ``list``
  on the DLT at connect (any JSON reply proves the DLT answers), and
  ``INPU<n>:COUN:INTE?`` for the counter integration time of :meth:`count_rates`; refused,
  the driver assumes :data:`DEFAULT_INTEGRATION_MS`.
- A REQ socket that timed out cannot send again; the transport
  (:mod:`drivers.transport.zmqreq`) closes and recreates it, so the next request starts clean.

Every awaited request is bounded by ``timeout_s`` (wall seconds); a quiet stream is checked
with a bounded ``REC:STAG?`` every ``idle_s``; a dead device therefore surfaces as
:class:`~drivers.errors.DeviceTimeout` (or NotConnected), never as a hang.

URL: ``idq+zmq://<host>:<scpi port>?dlt=<port>&dlt_host=<host>&stream=<base port>
&channels=<n>&timeout_s=<s>&idle_s=<s>&stall_s=<s>&hold=<events>`` (defaults: dlt 6060 on
the SCPI host, stream 0 = free local ports (4241 + n when the DLT host is not this
machine), inputs asked of the device, 2 s, 10 s, 0.25 s, 2^18 events per input). The rig prints ``idq+zmq://127.0.0.1:<scpi>?dlt=<dlt>``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
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
from drivers.registry import DeviceURL, read_params
from drivers.timetagger.blockstream import QUEUE_BLOCKS, BlockStream, Gap
from drivers.timetagger.idqrecord import AcquisitionRecord
from drivers.timetagger.idqstreams import MAX_PENDING, STALL_S, MergedStreams
from drivers.transport.message import MessageTransport
from drivers.transport.url import ZmqAddress, parse_transport_url

log = logging.getLogger(__name__)

DEFAULT_INPUTS = 4  #: ID1000 inputs 1..4 (probed in one chained query)
MAX_INPUTS = 255  #: EventBlock channels are uint8
DEFAULT_DLT_PORT = 6060
REQUEST_TIMEOUT_S = 2.0  #: wall seconds for one SCPI or DLT round trip
IDLE_TIMEOUT_S = 10.0  #: wall seconds of a quiet stream before the device is asked if it lives
IDQ_STREAM_BASE = 4241  #: IDQ's example streams input n on port 4241 + n (§3a)
STREAM_PORT_TRIES = 3  #: free ports offered to the DLT per input before giving up
DEFAULT_INTEGRATION_MS = 1000.0  #: counter integration assumed when it cannot be asked (⚠️)
END_OF_STREAM_WAIT_S = 5.0  #: wall seconds stop() waits for the zero-length end marker
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


class IDQTimeTagger:
    """An IDQ ID1000-style time tagger; satisfies :class:`drivers.interfaces.TimeTagger`.

    Args:
        url: device URL (messages and provenance).
        clock: control-plane clock (unused for pacing: the device paces the stream).
        host / scpi_port: the device's SCPI endpoint; ``host`` is also the ``--address``
            given to the DLT.
        dlt_host / dlt_port: the DataLinkTarget service (default: on ``host``).
        stream_port: base of the PAIR ports asked of the DLT: input n streams on base + n;
            0: a free local port per input (:data:`IDQ_STREAM_BASE` + n when the DLT host
            is not this machine).
        inputs: number of inputs, numbered 1..inputs; None: ask the device at connect
            (``INPU<n>:ENAB?`` for n = 1, 2, ... until it refuses an input number).
        request_timeout_s: wall seconds for one SCPI or DLT round trip.
        idle_timeout_s: wall seconds of a quiet stream before a liveness check.
        stall_s: wall seconds of silence after which an input stops holding the merge
            back (:mod:`drivers.timetagger.merge`).
        hold_events: events one input may hold back in the merge before its reader pauses
            (back-pressure; memory 8 bytes per event).
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
        stall_s: float = STALL_S,
        hold_events: int = MAX_PENDING,
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
        self._stall_s = stall_s
        self._hold_events = hold_events
        self._queue_blocks = queue_blocks
        self._scpi: MessageTransport | None = None
        self._dlt: MessageTransport | None = None
        self._connected = False
        self._enabled: list[int] = []
        self._streaming: list[int] = []  #: inputs with raw output on during acquisition
        self._stream_ids: dict[int, str] = {}  #: input -> DLT acquisition id
        self._blocks: BlockStream | None = None
        self._merged: MergedStreams | None = None
        self.last_merge: MergedStreams | None = None  #: the merge of the latest run (stats)
        self._integration_asked = False  #: INPU<n>:COUN:INTE? probed on this connection
        self._integration_ms: dict[int, float] = {}  #: its answers (empty: refused)
        self.last_stream: BlockStream | None = None  #: the stream of the latest run (stats)
        self.identity = ""
        self.bin_width_ps = 0.0  #: ``DEVI:RES:BWID?``, read on connect
        #: the DLT stream ids this device's driver left running (a crash): ended at start()
        self.record = AcquisitionRecord.for_device(host, scpi_port, self._dlt_host, dlt_port)

    @classmethod
    def from_url(cls, url: DeviceURL, clock: Clock) -> IDQTimeTagger:
        """``idq+zmq://127.0.0.1:5555?dlt=6060&channels=4&timeout_s=2`` (see module doc)."""
        host, port = url.host_port()
        params = read_params(url)
        return cls(
            url=url.raw,
            clock=clock,
            host=host,
            scpi_port=port,
            dlt_host=params.optional_text("dlt_host") or host,
            dlt_port=params.integer("dlt"),
            stream_port=params.integer("stream"),
            inputs=params.optional_integer("channels"),
            request_timeout_s=params.number("timeout_s"),
            idle_timeout_s=params.number("idle_s"),
            stall_s=params.number("stall_s"),
            hold_events=params.integer("hold"),
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
    def stream_ids(self) -> dict[int, str]:
        """DLT acquisition id of each streaming input."""
        return dict(self._stream_ids)

    @property
    def late_events(self) -> int:
        """Events of the running (else latest) run released out of order (merge doc)."""
        merged = self._merged or self.last_merge
        return merged.merge.late_events if merged is not None else 0

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
        """Open the control sockets; read ``*IDN?`` and the bin width; check the DLT answers."""
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
            await self._probe_dlt()
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
        self._integration_asked, self._integration_ms = False, {}
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

    async def _dlt_json(self, command: str) -> dict[str, object]:
        """One DataLinkTarget round trip; the JSON object, ``error`` replies included."""
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
        return reply

    async def dlt(self, command: str) -> dict[str, object]:
        """Send one DataLinkTarget command; returns the JSON reply; ``error`` raises."""
        reply = await self._dlt_json(command)
        error = reply.get("error")
        if error is not None:
            text = error.get("description", error) if isinstance(error, dict) else error
            raise DeviceFault(
                f"DataLinkTarget refused {command!r}: {text}",
                device=self._url,
                hint="check the DataLinkTarget service, the address and the stream port",
            )
        return reply

    async def _probe_dlt(self) -> None:
        """Optional probe: is the DLT there? ``list`` is not in §3a, so any JSON answer,
        a refusal included, proves that it answers; a timeout or non-JSON raises."""
        reply = await self._dlt_json("list")
        if "error" in reply:
            log.info(
                "idq %s: the DataLinkTarget answers but refuses 'list' (not in its documented "
                "command set); fine: only start-stream and stop are used",
                self._url,
            )

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
        """Counts per second of each enabled input: ``INPU<n>:COUN?`` in one chained query.

        ``INPU<n>:COUN?`` counts over the input's integration time (§3a); the rate is the
        ratio. The time is asked once per connection with ``INPU<n>:COUN:INTE?`` (an optional
        probe: §3a shows the setting, not the query); refused, :data:`DEFAULT_INTEGRATION_MS`.
        """
        chans = self._enabled or list(self.inputs)
        query = ";:".join(f"INPU{c}:COUN?" for c in chans)
        lines = (await self.scpi(query)).split("\n")
        if len(lines) != len(chans):
            raise ProtocolError(
                f"{query!r} answered {len(lines)} lines; expected {len(chans)}",
                device=self._url,
            )
        counts = [
            parse_number(ln, what=f"INPU{c}:COUN?", device=self._url)
            for c, ln in zip(chans, lines, strict=True)
        ]
        integration = await self._integration(chans)
        rates: dict[int, float] = {}
        for ch, count in zip(chans, counts, strict=True):
            inte_ms = integration.get(ch, DEFAULT_INTEGRATION_MS)
            rates[ch] = count * 1000.0 / inte_ms
        return rates

    async def _integration(self, chans: list[int]) -> dict[int, float]:
        """Counter integration times (ms) by input; asked once per connection (optional)."""
        missing = [c for c in chans if c not in self._integration_ms]
        if self._integration_asked and (not self._integration_ms or not missing):
            return self._integration_ms
        self._integration_asked = True
        query = ";:".join(f"INPU{c}:COUN:INTE?" for c in missing)
        try:
            lines = (await self.scpi(query)).split("\n")
        except ProtocolError as exc:  # undocumented query refused: degrade, say so once
            log.info(
                "idq %s: INPU<n>:COUN:INTE? refused (%s); rates assume %g ms integration",
                self._url,
                exc,
                DEFAULT_INTEGRATION_MS,
            )
            self._integration_ms = {}
            return self._integration_ms
        if len(lines) != len(missing):
            raise ProtocolError(
                f"{query!r} answered {len(lines)} lines; expected {len(missing)}",
                device=self._url,
            )
        for ch, line in zip(missing, lines, strict=True):
            inte_ms = parse_number(line, what=f"INPU{ch}:COUN:INTE?", device=self._url)
            if not inte_ms > 0:
                raise ProtocolError(
                    f"input {ch}: integration time {inte_ms:g} ms is not > 0", device=self._url
                )
            self._integration_ms[ch] = inte_ms
        return self._integration_ms

    # ------------------------------------------------------------------ acquisition

    def _pick_stream_port(self, channel: int) -> int:
        """The PAIR port to ask of the DLT for ``channel`` (class doc, ``stream_port``)."""
        if self._stream_port:
            return self._stream_port + channel
        try:  # the DLT binds the port on its host: a port free here is free there if local
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((self._dlt_host, 0))
                return int(probe.getsockname()[1])
        except OSError:
            log.info(
                "idq %s: DataLinkTarget host %s is not this machine; input %d streams on "
                "port %d (IDQ's convention 4241 + input)",
                self._url,
                self._dlt_host,
                channel,
                IDQ_STREAM_BASE + channel,
            )
            return IDQ_STREAM_BASE + channel

    async def _start_input(self, channel: int) -> str:
        """``start-stream`` for one input (§3a); the endpoint of its PAIR stream."""
        tries = STREAM_PORT_TRIES if not self._stream_port else 1
        for attempt in range(1, tries + 1):
            port = self._pick_stream_port(channel)
            command = (
                f"start-stream --address {self._host} --channel {channel} --stream-port {port}"
            )
            try:
                reply = await self.dlt(command)
            except DeviceFault:
                if attempt == tries:
                    raise
                log.info("idq %s: DLT refused port %d; another", self._url, port)
                continue
            stream_id = reply.get("id")
            if not isinstance(stream_id, str | int) or isinstance(stream_id, bool):
                raise ProtocolError(f"start-stream reply {reply!r} lacks an id", device=self._url)
            self._stream_ids[channel] = str(stream_id)  # from here on, stop() ends it
            self.record.save(list(self._stream_ids.values()))  # ... and so does a restart
            return f"tcp://{self._dlt_host}:{port}"
        raise AssertionError("unreachable")  # pragma: no cover

    async def start(self) -> None:
        """Raw output on for the enabled inputs, one DLT stream each, then start recording."""
        if self._blocks is not None:
            raise DeviceFault("already acquiring", device=self._url, hint="call stop() first")
        channels = self._enabled or list(self.inputs)
        await self._end_stale_acquisition()
        for ch in self.inputs:
            await self.scpi(f"RAW{ch}:SEND {'ON' if ch in channels else 'OFF'}")
        self._streaming = list(channels)
        try:
            endpoints = {ch: await self._start_input(ch) for ch in channels}
            self._merged = MergedStreams(
                endpoints, device=self._url, stall_s=self._stall_s, max_pending=self._hold_events
            )
            self._blocks = BlockStream(
                self._merged,
                device=self._url,
                idle_timeout_s=self._idle_timeout,
                on_idle=self._check_alive,
                queue_blocks=self._queue_blocks,
            )
            await self.scpi("REC:ENAB ON")  # §3a: enable, then play
            await self.scpi("REC:PLAY")
            stage = (await self.scpi("REC:STAG?")).strip()
            if stage != "PLAYING":
                raise DeviceFault(
                    f"recording stage is {stage!r} after REC:ENAB ON; REC:PLAY; expected 'PLAYING'",
                    device=self._url,
                )
        except BaseException:
            with contextlib.suppress(DeviceError):
                await self._stop(wait_end=False)  # nobody consumes yet: no end to wait for
            raise
        log.info("idq %s: streaming inputs %s (DLT ids %s)", self._url, channels, self._stream_ids)

    async def _end_stale_acquisition(self) -> None:
        """End the DLT streams an earlier driver of this device left running (idqrecord)."""
        stale = self.record.load()
        if not stale:
            return
        log.warning(
            "idq %s: DLT streams %s of an earlier run were never stopped (crash?); stopping "
            "them before starting",
            self._url,
            stale,
        )
        with contextlib.suppress(DeviceError):
            await self.scpi("REC:STOP")
        for stream_id in stale:
            try:
                await self.dlt(f"stop --id {stream_id}")
            except DeviceFault as exc:  # the DLT no longer knows it: already gone
                log.info("idq %s: stale stream %s: %s", self._url, stream_id, exc)
        self.record.clear()

    async def _check_alive(self) -> None:
        """Liveness of a quiet stream: the device must answer ``REC:STAG?`` (bounded)."""
        stage = (await self.scpi("REC:STAG?")).strip()
        log.debug("idq %s: quiet stream, recording stage %s", self._url, stage)

    async def stop(self) -> None:
        """Stop recording and every DLT stream; the merged stream ends at the end markers.

        Every step is tried even if an earlier one failed (a dead SCPI endpoint must not
        leave DLT streams open); the first error is raised afterwards. Bounded: each step
        by the request timeout, the wait for the end markers by :data:`END_OF_STREAM_WAIT_S`.
        """
        await self._stop(wait_end=True)

    async def _stop(self, *, wait_end: bool) -> None:
        blocks, self._blocks = self._blocks, None
        merged, self._merged = self._merged, None
        if blocks is not None:
            self.last_stream = blocks  # stream() keeps serving it while stop() runs
            self.last_merge = merged
        stream_ids, self._stream_ids = self._stream_ids, {}
        errors: list[DeviceError] = []
        dlt_stopped = bool(stream_ids)
        try:
            try:
                await self.scpi("REC:STOP")
            except DeviceError as exc:
                errors.append(exc)
            for stream_id in stream_ids.values():
                try:
                    await self.dlt(f"stop --id {stream_id}")
                except DeviceError as exc:
                    errors.append(exc)
                    dlt_stopped = False
            if dlt_stopped:
                self.record.clear()
            if not errors:
                for ch in self._streaming:
                    await self.scpi(f"RAW{ch}:SEND OFF")
        except DeviceError as exc:
            errors.append(exc)
        finally:
            self._streaming = []
            if blocks is not None:
                if wait_end and dlt_stopped and not await blocks.wait_end(END_OF_STREAM_WAIT_S):
                    log.warning(
                        "idq %s: stopped without seeing every end-of-stream marker (no "
                        "consumer is taking blocks, or none came within %g s); blocks still "
                        "held are dropped with the stream",
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
