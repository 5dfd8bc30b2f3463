"""IDQ ID1000-style time controller: SCPI over ZeroMQ, a fake DataLinkTarget, timestamp streams.

Three zmq endpoints on 127.0.0.1 (protocols.md §3a, timetag.md §3). By default the emulator
serves what §3a documents and nothing more; ``extensions=True`` (rig key
``[devices.<station>.timetagger] extensions = true``) adds the qgs extensions listed below,
each marked ``EXTENSION`` in the code.

1. **SCPI** (the device, real port 5555): REQ/REP carrying SCPI text; served on a ROUTER socket
   so that a ``hang`` fault can leave a request unanswered without wedging the socket. See
   :mod:`sim_hardware.servers.scpi` for the syntax rules and :meth:`IdqScpi._build` for the
   commands. Replies: queries one line each (``\\n``-joined), set commands nothing (an empty
   frame), errors a line starting ``SCPI_ERR_``. Numbers are replied without unit suffix.
   Acquisition follows §3a's sequence ``REC:ENABle ON`` then ``REC:PLAY``: events flow only
   while both hold (``REC:STAG?`` says ``PLAYING``). ⚠️ §3a does not say what ``REC:PLAY``
   does without ``REC:ENAB ON``; the emulator then stays ``STOPPED`` (the conservative
   reading). EXTENSION (old qgs behaviour): either command alone starts the recording.
2. **DataLinkTarget** (the host service, real port 6060): REQ/REP, CLI-style requests, JSON
   replies. Documented (§3a): ``start-stream --address <host[:port]> --channel <1-n>
   --stream-port <port> [--with-ref-index]`` -> ``{"id": "<id>"}``; ``stop --id <id>``
   (reply ``{"id": ...}``: §3a gives none, some JSON object is needed); errors
   ``{"error": {"description": "..."}}``. EXTENSIONS (§3a knows none of them):
   ``--channel all``, ``--stream-port 0`` (the emulator picks the port and adds
   ``"stream_port"`` to the reply), ``list`` -> ``{"ids"}`` and ``status --id <id>`` ->
   ``{"id", "state", "timestamps_count", "acquisitions_count", "errors", "inactivity"}``.
   Without extensions they are answered with an ``error`` object (unknown command/value).
3. **Streams**: the DLT binds a zmq PAIR socket on the stream port; the client connects
   (§3a). Events flow while recording for channels with ``RAW<n>:SEND ON``, one message per
   non-empty 20 ms (clock) slice. A zero-length message ends the stream (``stop``). One slice
   generator serves every stream of the device (:class:`_Pump`), so that streams of several
   inputs carry events of one and the same detection record. Formats:

   - ``--channel <n>`` (§3a): each message is the channel's timestamps as little-endian
     uint64 (ps on the tagger's timescale, two's complement of the int64 value); with
     ``--with-ref-index`` 16-byte records ``(timestamp uint64, ref_index uint64)`` with
     ref_index 0 (no reference input).
   - ``--channel all`` (**EXTENSION**, all channels in one ordered stream): a two-frame
     message ``[header, records]``; header = 24 bytes little-endian ``magic b"QGSE"``,
     ``version u16 = 1``, ``reserved u16 = 0``, ``seq u64`` (0, 1, 2, ... per stream: a gap
     means lost blocks), ``count u64``; records = ``count`` x 16 bytes ``(t_ps int64,
     channel uint64)`` (the with-ref-index layout, channel in the second word). Described for
     driver writers in docs/devices/idq-emulator.md.

   Back-pressure: each PAIR socket has a send high-water mark of :data:`STREAM_HWM` messages
   and a PAIR send blocks (never drops) at the mark; the generator sends each stream's part
   of a slice itself and waits for room before cutting the next slice, so a client that
   stops reading pauses generation (for every stream of the device), and on resuming
   receives the backlog in order.

The device URL is ``idq+zmq://127.0.0.1:<scpi port>?dlt=<dlt port>``.

Faults (:class:`~sim_hardware.faults.FaultKind`) on the SCPI and DLT endpoints: ``hang`` and
``disconnect`` (requests are read and never answered), ``garbage`` (random bytes), ``slow``
(reply delayed ``params["delay_s"]`` clock s), ``error_reply`` (``SCPI_ERR_EXECUTION_ERROR``).
``latch`` and ``clock_jump`` act in the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import shlex
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import zmq
import zmq.asyncio

from sim_hardware.devices.timetagger import Slice, SliceClock, TimeTaggerModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.scpi import Action, ScpiError, ScpiTree, boolean, keyword, quantity

log = logging.getLogger(__name__)

HEADER = struct.Struct("<4sHHQQ")  #: magic, version, reserved, seq, count
MAGIC = b"QGSE"
VERSION = 1
RECORD_DTYPE = np.dtype([("t_ps", "<i8"), ("channel", "<u8")])
STREAM_HWM = 8  #: messages queued in the PAIR socket before a send blocks
SEND_POLL_MS = 50  #: a generator blocked on a full stream looks this often (ms) for a stop
STREAM_SNDBUF = 1 << 18  #: kernel send buffer of a stream socket (bytes)
EOS_TIMEOUT_S = 1.0  #: wall seconds to deliver the end-of-stream frame before giving up
HOST = "127.0.0.1"
_NO_TIMES = np.empty(0, np.int64)
FINISHED_KEPT = 16  #: stopped acquisitions still answered by ``status --id``


class IdqScpi:
    """The SCPI command set of the emulated ID1000, on a :class:`TimeTaggerModel`.

    Args:
        model: the tagger model.
        serial: the serial number in ``*IDN?``.
        extensions: also serve the qgs extensions (module doc): ``INPU<n>:COUN:INTE?`` and
            the one-command recording start.
    """

    def __init__(
        self, model: TimeTaggerModel, *, serial: str = "EMU0001", extensions: bool = False
    ) -> None:
        self.model = model
        self.serial = serial
        self.extensions = extensions
        #: counter integration time (ms); 1000 ms until set (⚠️ the ID1000's default is not
        #: in §3a; 1 s is what a driver that cannot ask should assume)
        self.integration_ms: dict[int, float] = dict.fromkeys(model.channels, 1000.0)
        self.rec_enabled = False  #: ``REC:ENAB`` (§3a: ``REC:ENABle ON`` before ``REC:PLAY``)
        self.playing = False  #: ``REC:PLAY`` given, no ``REC:STOP`` since
        self.settings: dict[str, str] = {}
        self.tree = ScpiTree()
        self._build()

    def execute(self, message: str) -> str:
        return self.tree.execute(message)

    def _channel(self, suffixes: list[int]) -> int:
        ch = suffixes[0]
        if ch not in self.model.channels:
            raise ScpiError(
                "SCPI_ERR_HEADER_SUFFIX_OUT_OF_RANGE",
                f"channel {ch} does not exist; inputs are 1..{self.model.n_channels}",
            )
        return ch

    def _build(self) -> None:
        t, m = self.tree, self.model

        def idn(s: list[int], a: str, q: bool) -> str | None:
            return f"ID Quantique,ID1000 (qgs emulator),{self.serial},1.0.0"

        def rst(s: list[int], a: str, q: bool) -> str | None:
            for ch in m.channels:
                m.configure(ch, enabled=True, threshold_v=-0.4, delay_ps=0)
                m.raw_send[ch] = False
            self.rec_enabled = self.playing = False
            m.recording = False
            return None

        def bwid(s: list[int], a: str, q: bool) -> str | None:
            return str(m.resolution_ps)

        def resolution(s: list[int], a: str, q: bool) -> str | None:
            return "HIRES"

        def enable(s: list[int], a: str, q: bool) -> str | None:
            ch = self._channel(s)
            if q:
                return "ON" if m.channels[ch].enabled else "OFF"
            m.configure(ch, enabled=boolean(a))
            return None

        def threshold(s: list[int], a: str, q: bool) -> str | None:
            ch = self._channel(s)
            if q:
                return f"{m.channels[ch].threshold_v:g}"
            v = quantity(a, allowed_units=("", "V", "MV"))
            if not -2.0 <= v <= 2.0:
                raise ScpiError("SCPI_ERR_DATA_OUT_OF_RANGE", f"threshold {v:g} V not in [-2, 2]")
            m.configure(ch, threshold_v=v)
            return None

        def delay(s: list[int], a: str, q: bool) -> str | None:
            ch = self._channel(s)
            if q:
                return str(m.channels[ch].delay_ps)
            v = quantity(a, allowed_units=("", "PS", "TB", "NS", "US", "MS", "KTB", "MTB"))
            if not 0 <= v <= 1e12:
                raise ScpiError("SCPI_ERR_DATA_OUT_OF_RANGE", f"delay {v:g} ps not in [0, 1e12]")
            m.configure(ch, delay_ps=round(v))
            return None

        def counter(s: list[int], a: str, q: bool) -> str | None:
            ch = self._channel(s)
            if not q:
                raise ScpiError("SCPI_ERR_UNDEFINED_HEADER", "COUNter is a query")
            return str(m.counter(ch, self.integration_ms[ch] / 1000.0))

        def integration(s: list[int], a: str, q: bool) -> str | None:
            ch = self._channel(s)
            if q:
                # EXTENSION: §3a shows ``INPU<n>:COUN:...;INTE <value>`` set, never the query
                if not self.extensions:
                    raise ScpiError(
                        "SCPI_ERR_UNDEFINED_HEADER",
                        "INPUt:COUNter:INTEgrationtime? is not a documented query (§3a)",
                    )
                return f"{self.integration_ms[ch]:g}"
            v = quantity(a, allowed_units=("",))
            if not 1 <= v <= 1e6:
                raise ScpiError("SCPI_ERR_DATA_OUT_OF_RANGE", f"{v:g} ms not in [1, 1e6]")
            self.integration_ms[ch] = v
            return None

        def setting(name: str, choices: tuple[str, ...] | None) -> Action:
            def action(s: list[int], a: str, q: bool) -> str | None:
                key = f"{name}{s[0] if s else ''}"
                if s:
                    self._channel(s)
                if q:
                    return self.settings.get(key, choices[0].upper() if choices else "0")
                if choices is None:
                    quantity(a, allowed_units=("", "PS", "TB", "NS", "US", "MS", "GTB"))
                    self.settings[key] = a.strip()
                else:
                    self.settings[key] = keyword(a, choices)
                return None

            return action

        def noop(s: list[int], a: str, q: bool) -> str | None:
            if s:
                self._channel(s)
            return None

        def gate() -> None:
            # §3a: REC:ENABle ON, then REC:PLAY; events flow while both hold
            m.recording = self.rec_enabled and self.playing

        def rec_enable(s: list[int], a: str, q: bool) -> str | None:
            if q:
                return "ON" if self.rec_enabled else "OFF"
            self.rec_enabled = boolean(a)
            if self.extensions:  # EXTENSION (old qgs): ENAB alone starts or stops recording
                self.playing = self.rec_enabled
            gate()
            return None

        def rec_play(s: list[int], a: str, q: bool) -> str | None:
            self.playing = True
            if self.extensions:  # EXTENSION (old qgs): PLAY alone starts recording
                self.rec_enabled = True
            gate()
            return None

        def rec_stop(s: list[int], a: str, q: bool) -> str | None:
            self.playing = False
            gate()
            return None

        def rec_stage(s: list[int], a: str, q: bool) -> str | None:
            return "PLAYING" if m.recording else "STOPPED"

        def raw_send(s: list[int], a: str, q: bool) -> str | None:
            ch = self._channel(s)
            if q:
                return "ON" if m.raw_send[ch] else "OFF"
            m.raw_send[ch] = boolean(a)
            return None

        def syst_err(s: list[int], a: str, q: bool) -> str | None:
            return self.tree.pop_error()

        t.add("*IDN", idn)
        t.add("*RST", rst)
        t.add("DEVIce:RESolution:BWIDth", bwid)
        t.add("DEVIce:RESolution", resolution)
        t.add("INPUt#:ENABle", enable)
        t.add("INPUt#:THREshold", threshold)
        t.add("INPUt#:EDGE", setting("EDGE", ("RISing", "FALLing")))
        t.add("INPUt#:COUPling", setting("COUP", ("DC", "AC")))
        t.add("INPUt#:SELEct", setting("SELE", ("UNSHaped", "SHAPed")))
        t.add("INPUt#:COUNter", counter)
        t.add("INPUt#:COUNter:INTEgrationtime", integration)
        t.add("INPUt#:COUNter:MODE", setting("CMODE", ("CYCLe", "ACCUm")))
        t.add("INPUt#:COUNter:RESEt", noop)
        t.add("DELAy#:VALUe", delay)
        t.add("RECord:ENABle", rec_enable)
        t.add("RECord:PLAY", rec_play)
        t.add("RECord:STOP", rec_stop)
        t.add("RECord:STAGe", rec_stage)
        t.add("RECord:NUMber", setting("NUM", None))
        t.add("RECord:DURation", setting("DUR", None))
        t.add("RECord:TRIGger:ARM:MODE", setting("ARM", ("MANUal", "AUTO")))
        t.add("RAW#:SEND", raw_send)
        t.add("RAW#:ERRors:CLEar", noop)
        t.add("SYSTem:ERRor", syst_err)
        t.add("SYSTem:ERRor:NEXT", syst_err)


@dataclass(frozen=True)
class _Cut:
    """One generated slice, and its events split by input for the per-input streams."""

    slice: Slice
    by_input: dict[int, npt.NDArray[np.int64]]  #: contiguous, time-ordered, per input

    @classmethod
    def of(cls, sl: Slice, per_input: bool) -> _Cut:
        if not per_input:
            return cls(sl, {})
        # one stable radix sort of the uint8 channels groups the inputs, times stay ordered
        order = np.argsort(sl.channel, kind="stable")
        t_ps = sl.t_ps[order]
        counts = np.bincount(sl.channel, minlength=256)
        ends = np.cumsum(counts)
        parts = {
            int(c): t_ps[ends[c] - counts[c] : ends[c]] for c in np.flatnonzero(counts).tolist()
        }
        return cls(sl, parts)


@dataclass
class _Stream:
    id: str
    channel: int | None  #: None: all channels (qgs format, EXTENSION)
    ref_index: bool
    socket: zmq.asyncio.Socket
    port: int
    #: the same socket through the blocking API, for the generator's NOBLOCK sends
    sync: zmq.Socket[bytes] = field(init=False)
    timestamps: int = 0
    blocks: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sync = zmq.Socket.shadow(self.socket)


class IdqServer:
    """Serves one emulated time controller (SCPI + DLT + streams) on 127.0.0.1.

    Args:
        model: the tagger model.
        faults: fault schedule (transport faults applied to SCPI and DLT replies).
        scpi_port / dlt_port: 0 picks free ports.
        slice_s: clock seconds per generated slice.
        name: for logs.
        extensions: also serve the qgs extensions (module doc); default: only what
            protocols.md §3a documents.
    """

    def __init__(
        self,
        model: TimeTaggerModel,
        *,
        faults: FaultInjector | None = None,
        scpi_port: int = 0,
        dlt_port: int = 0,
        slice_s: float = 0.02,
        name: str = "idq",
        extensions: bool = False,
    ) -> None:
        self.model = model
        self.faults = faults
        self.extensions = extensions
        self.scpi = IdqScpi(model, extensions=extensions)
        self.name = name
        self.slice_s = slice_s
        self._want = (scpi_port, dlt_port)
        self._ctx = zmq.asyncio.Context()
        self._sockets: list[zmq.asyncio.Socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: dict[str, _Stream] = {}
        self._finished: OrderedDict[str, _Stream] = OrderedDict()
        self._pump: asyncio.Task[None] | None = None
        self._next_id = 1
        self._rng = random.Random(name)
        self.scpi_port = 0
        self.dlt_port = 0

    @property
    def url(self) -> str:
        return f"idq+zmq://{HOST}:{self.scpi_port}?dlt={self.dlt_port}"

    @property
    def streams(self) -> dict[str, _Stream]:
        """Running streams by DLT id (tests read their counters in-process)."""
        return dict(self._streams)

    def stream_stats(self, sid: str) -> tuple[int, int] | None:
        """(messages, timestamps) sent on stream ``sid`` (running or recently stopped)."""
        stream = self._streams.get(sid) or self._finished.get(sid)
        return None if stream is None else (stream.blocks, stream.timestamps)

    def _bind(self, kind: int, port: int, **options: int) -> tuple[zmq.asyncio.Socket, int]:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        for name, value in options.items():  # before bind: the listener copies them
            sock.setsockopt(getattr(zmq, name), value)
        try:
            if port:
                sock.bind(f"tcp://{HOST}:{port}")
            else:
                port = sock.bind_to_random_port(f"tcp://{HOST}")
        except zmq.ZMQError:
            sock.close(linger=0)
            raise
        self._sockets.append(sock)
        return sock, port

    async def start(self) -> None:
        scpi, self.scpi_port = self._bind(zmq.ROUTER, self._want[0])
        dlt, self.dlt_port = self._bind(zmq.ROUTER, self._want[1])
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._serve(scpi, self._scpi_reply, "SCPI_ERR_EXECUTION_ERROR")),
            loop.create_task(self._serve(dlt, self._dlt_reply, _dlt_error("device fault"))),
        ]
        log.info(
            "%s: SCPI on %d, DLT on %d (%s)",
            self.name,
            self.scpi_port,
            self.dlt_port,
            "with qgs extensions" if self.extensions else "documented protocol only",
        )

    async def close(self) -> None:
        for stream in list(self._streams.values()):
            await self._stop_stream(stream, send_eos=False)
        await self._stop_pump()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in self._sockets:
            sock.close(linger=0)
        # term() waits for a stopped stream's lingering end frame (<= EOS_TIMEOUT_S)
        await asyncio.to_thread(self._ctx.term)

    async def __aenter__(self) -> IdqServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ request/reply

    def _fault(self, kind: FaultKind) -> float | None:
        """``delay_s`` (or 0) of an active fault of ``kind``; None when not active."""
        if self.faults is None:
            return None
        f = self.faults.active(kind)
        return None if f is None else float(f.params.get("delay_s", 1.0))

    async def _serve(
        self, sock: zmq.asyncio.Socket, handle: Callable[[str], str], error_text: str
    ) -> None:
        while True:
            frames = await sock.recv_multipart()
            if len(frames) < 3:
                continue  # not a REQ envelope: ignore
            envelope, body = frames[:-1], frames[-1]
            if self._fault(FaultKind.HANG) is not None:
                continue
            if self._fault(FaultKind.DISCONNECT) is not None:
                continue
            if self._fault(FaultKind.ERROR_REPLY) is not None:
                reply = error_text.encode()
            else:
                try:
                    reply = handle(body.decode("utf-8", "replace")).encode()
                except Exception:  # an emulator never dies on a request
                    log.exception("%s: request %r failed", self.name, body[:80])
                    reply = error_text.encode()
            if self._fault(FaultKind.GARBAGE) is not None:
                reply = self._rng.randbytes(max(len(reply), 4))
            delay = self._fault(FaultKind.SLOW)
            if delay:
                await self.model.clock.sleep(delay)
            await sock.send_multipart([*envelope, reply])

    def _scpi_reply(self, text: str) -> str:
        return self.scpi.execute(text)

    def _commands(self) -> str:
        return "start-stream, stop" + (", list, status" if self.extensions else "")

    def _dlt_reply(self, text: str) -> str:
        try:
            args = shlex.split(text)
        except ValueError as exc:
            return _dlt_error(f"cannot parse request: {exc}")
        if not args:
            return _dlt_error(f"empty request; commands: {self._commands()}")
        cmd, opts = args[0], _options(args[1:])
        if opts is None:
            return _dlt_error(f"malformed options {args[1:]}; expected --name value pairs")
        if cmd == "start-stream":
            return self._start_stream(opts)
        if cmd == "stop":
            stream = self._streams.get(opts.get("id", ""))
            if stream is None:
                return _dlt_error(f"no acquisition with id {opts.get('id')!r}")
            asyncio.get_running_loop().create_task(self._stop_stream(stream, send_eos=True))
            return json.dumps({"id": stream.id})
        if cmd == "list" and self.extensions:  # EXTENSION: not in §3a
            return json.dumps({"ids": sorted(self._streams)})
        if cmd == "status" and self.extensions:  # EXTENSION: not in §3a
            sid = opts.get("id", "")
            stream = self._streams.get(sid) or self._finished.get(sid)
            if stream is None:
                return _dlt_error(f"no acquisition with id {opts.get('id')!r}")
            return json.dumps(
                {
                    "id": stream.id,
                    "state": "running" if sid in self._streams else "stopped",
                    "timestamps_count": stream.timestamps,
                    "acquisitions_count": stream.blocks,
                    "errors": stream.errors,
                    "inactivity": 0,
                }
            )
        return _dlt_error(f"unknown command {cmd!r}; commands: {self._commands()}")

    def _start_stream(self, opts: dict[str, str]) -> str:
        address = opts.get("address", "")
        if address.partition(":")[0] not in (HOST, "localhost"):
            return _dlt_error(f"no time controller at address {address!r}; this one is {HOST}")
        chan_text = opts.get("channel", "")
        channel: int | None = None
        if not (self.extensions and chan_text.lower() == "all"):  # EXTENSION: --channel all
            if not chan_text.isdigit() or int(chan_text) not in self.model.channels:
                extra = " or 'all'" if self.extensions else ""
                return _dlt_error(
                    f"--channel {chan_text!r}: expected 1..{self.model.n_channels}{extra}"
                )
            channel = int(chan_text)
        port_text = opts.get("stream-port", "")
        low = 0 if self.extensions else 1  # EXTENSION: port 0, the emulator picks one
        if not port_text.isdigit() or not low <= int(port_text) <= 65535:
            return _dlt_error(f"--stream-port {port_text!r}: expected a port number {low}..65535")
        try:
            # bounded backlog: HWM messages plus a small kernel send buffer
            sock, port = self._bind(
                zmq.PAIR, int(port_text), SNDHWM=STREAM_HWM, SNDBUF=STREAM_SNDBUF
            )
        except zmq.ZMQError as exc:
            return _dlt_error(f"cannot listen on stream port {port_text}: {exc}")
        sid = f"{self._next_id}"
        self._next_id += 1
        stream = _Stream(sid, channel, "with-ref-index" in opts, sock, port)
        self._streams[sid] = stream
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._generate())
        log.info("%s: stream %s (channel %s) on port %d", self.name, sid, chan_text, port)
        if self.extensions:  # EXTENSION: the port, for --stream-port 0
            return json.dumps({"id": sid, "stream_port": port})
        return json.dumps({"id": sid})  # §3a: the reply carries the id only

    # ------------------------------------------------------------------ streaming

    async def _generate(self) -> None:
        """One slice generator for every stream of the device (module doc, Back-pressure)."""
        slicer = SliceClock(self.model, slice_s=self.slice_s)
        while self._streams:
            # every input with RAW<n>:SEND ON (what some stream may want): a stream started
            # while this slice was waiting for the clock gets it too
            sl = await slicer.next(None)
            # A slice clock behind the clock (generation-bound, or catching up after
            # back-pressure) returns without awaiting, and a put that fits completes at
            # once: yield every slice so that SCPI and DLT requests are still answered.
            await asyncio.sleep(0)
            if not len(sl.t_ps):
                continue
            streams = list(self._streams.values())
            cut = _Cut.of(sl, any(s.channel is not None for s in streams))
            for stream in streams:
                await self._send(stream, cut)

    async def _send(self, stream: _Stream, cut: _Cut) -> None:
        """``stream``'s part of ``cut``: sent at once if the socket has room, else when it has
        (back-pressure), or dropped if the stream is stopped meanwhile.

        The send itself is synchronous (NOBLOCK on the shadow socket) right after a check
        that the stream still runs, so a ``stop`` never sees a half-sent message and its end
        marker always comes after the last block.
        """
        n, frames = self._encode(stream, cut)
        if not n:
            return
        while stream.id in self._streams:
            try:
                stream.sync.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:  # at the high-water mark: wait for room (or the stop)
                # pyzmq stubs lack poll(flags=); the runtime has it (POLLOUT: room to send)
                await stream.socket.poll(timeout=SEND_POLL_MS, flags=zmq.POLLOUT)  # type: ignore[call-arg]
                continue
            stream.blocks += 1
            stream.timestamps += n
            return

    async def _stop_pump(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    def _encode(self, stream: _Stream, cut: _Cut) -> tuple[int, list[bytes | memoryview]]:
        """(timestamps, frames) of ``stream``'s part of ``cut``."""
        sl = cut.slice
        if stream.channel is not None:
            # §3a: bare little-endian uint64 (int64 ps, two's complement), or with
            # --with-ref-index (timestamp, ref_index) pairs
            t_ps = cut.by_input.get(stream.channel, _NO_TIMES)
            n = len(t_ps)
            if not stream.ref_index:
                return n, [t_ps.astype("<i8", copy=False).data]  # no copy on LE hosts
            rec = np.zeros(n, dtype=[("t", "<u8"), ("ref", "<u8")])
            rec["t"] = t_ps
            return n, [rec.tobytes()]
        n = len(sl.t_ps)  # EXTENSION: the qgs all-channel format
        rec = np.empty(n, dtype=RECORD_DTYPE)
        rec["t_ps"] = sl.t_ps
        rec["channel"] = sl.channel
        return n, [HEADER.pack(MAGIC, VERSION, 0, stream.blocks, n), rec.tobytes()]

    async def _stop_stream(self, stream: _Stream, *, send_eos: bool) -> None:
        self._streams.pop(stream.id, None)
        # a stopped acquisition stays answerable by ``status --id`` (state "stopped"), so a
        # client can still read how many timestamps it was sent
        self._finished[stream.id] = stream
        while len(self._finished) > FINISHED_KEPT:
            self._finished.popitem(last=False)
        if not self._streams:
            await self._stop_pump()
        linger_ms = 0
        if send_eos:
            try:
                await asyncio.wait_for(stream.socket.send(b""), EOS_TIMEOUT_S)
                # The end frame may sit behind queued blocks: linger so that they and the end
                # frame still go out (LINGER 0 would drop them).
                linger_ms = round(EOS_TIMEOUT_S * 1000)
            except TimeoutError:
                log.warning("%s: stream %s: client not reading the end frame", self.name, stream.id)
        stream.socket.close(linger=linger_ms)
        if stream.socket in self._sockets:
            self._sockets.remove(stream.socket)


def _options(args: list[str]) -> dict[str, str] | None:
    """``--name value`` pairs (a flag without value maps to "")."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        if not args[i].startswith("--"):
            return None
        name = args[i][2:]
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            out[name] = args[i + 1]
            i += 2
        else:
            out[name] = ""
            i += 1
    return out


def _dlt_error(description: str) -> str:
    return json.dumps({"error": {"description": description}})
