"""The live classical channel's frame: one station's detections of one tagger second, compact.

Why this shape. During a pass each station publishes, once per tagger second, what the
coordinator needs to find coincidences on the fly: every detection's time and basis, and the
outcome where it is revealed (every one in Bell mode; a sample in key mode, see
:mod:`station.analysis.key.reveal`). The timing is delta-coded like qcrypto's type-2 stream
(``kurtsiefer/qcrypto:remotecrypto/filespec.txt``, summarised in reference/timetag.md §1.2:
fixed-width time differences in 1/8 ns units with codeword 0 as an escape to a full
difference, plus the basis bits) — here as separate planes (structure of arrays, which
numpy packs and unpacks without a per-event loop): a fixed-width plane of time differences
whose width the encoder picks per frame to minimise the size (as chopper's ``-Q`` bit-depth
servo does), a table of the escaped differences, a basis bit plane, and the revealed
outcomes as index runs (the key-mode rule reveals whole 10 ms emission slots, so revealed
events come in runs: a few runs per frame) plus their outcome bits.

Layout (little-endian; docs/analysis.md "Live classical channel" has the table):

    "QGLC" version:u8 mode:u8 state:u8 anchor_source:u8
    len:u8 station  len:u8 run_id
    seq:u32 t_start:i64 t_end:i64 tick_ps:u32
    anchor_tagger_ps:i64 anchor_posix_s:f64 anchor_uncertainty_s:f32
    channels H,V,D,A:4×u8 pps_channel:u8 angle_h_deg:f64 angle_d_deg:f64
    fraction:f64 seed:u64 slot_ps:u64 frames_dropped:u32
    n_events:u32 width:u8 n_escapes:u32 n_pps:u16 n_runs:u16 n_revealed:u32
    pps edges n_pps×i64 | time plane ⌈n·width/8⌉ | escapes n_escapes×u64
    | basis plane ⌈n/8⌉ | runs n_runs×(u32 first, u32 count) | outcome plane ⌈n_revealed/8⌉
    crc32 of everything before: u32

Why the header carries the PPS edges of the second and the daemon's current anchor instead
of a fitted tagger→UTC map: the consumer then runs the offline analysis's own PPS fit
(:func:`station.analysis.timetransfer.fit_pps`) on the same edges the bundle records, so the
live and offline timescales agree by construction; the anchor only names the UTC second of
the edges (the daemon's :class:`~station.recording.timescale.TimescaleTracker`). 8 bytes
per second.

Times: event times are quantised to ``tick_ps`` (default 125 ps, qcrypto's 1/8 ns); decoded
times sit at the tick centre, which adds tick/√12 ≈ 36 ps rms per station to a coincidence
peak ~200 ps wide.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
B = npt.NDArray[np.bool_]

MAGIC = b"QGLC"
VERSION = 1
DEFAULT_TICK_PS = 125  #: qcrypto type-2 time unit (1/8 ns)
MAX_NAME = 64  #: bytes of a station name or run id
MAX_EVENTS = 1 << 24  #: per frame (a 1 s frame at 16 M events/s)
MAX_PPS = 64  #: PPS edges per frame (1 expected; re-triggers)
MAX_SPAN_PS = 60 * 10**12  #: a frame covers at most 60 s of tagger time
MAX_WIDTH = 48  #: bits of the fixed-width time difference field
MAX_FRAME_BYTES = 64 << 20  #: refused unread beyond this (a lab-rate frame is ~3 MB)
MODES = ("bell", "key")
STATES = ("phi+", "psi+")
ANCHOR_SOURCES = (None, "pps", "first_event")

_HEAD = struct.Struct("<4sBBBB")
_BODY = struct.Struct("<IqqIqdf4BBdddQQIIBIHHI")
_CRC = struct.Struct("<I")

Mode = Literal["bell", "key"]


class ChannelFormatError(ValueError):
    """A live frame could not be decoded: the message names the field and what was wrong."""


@dataclass(frozen=True)
class FrameAnchor:
    """One tagger reading (ps) and the UTC (POSIX s) it was, ±``uncertainty_s`` (1σ)."""

    tagger_ps: int
    posix_s: float
    uncertainty_s: float
    source: str  #: "pps" (a PPS edge's second) or "first_event" (station clock)


@dataclass(frozen=True, eq=False)
class LiveFrame:
    """One station's detections of tagger interval [``t_start_ps``, ``t_end_ps``).

    ``t_ps`` (tagger ps, sorted), ``basis`` (0 = H/V, 1 = D/A) and ``outcome`` (0 = "+",
    1 = "−"; 0 where not revealed) have one entry per analyzer detection; ``revealed``
    marks the outcomes that are real. ``pps_ps``: the PPS edges in the interval.
    ``angles_deg``: the source-frame angles of the H and D outputs (arms 0, 1;
    docs/tracking.md); ``fraction``/``seed``/``slot_ps``: the key-mode reveal rule.
    """

    station: str
    run_id: str
    seq: int
    mode: Mode
    t_start_ps: int
    t_end_ps: int
    anchor: FrameAnchor | None
    channels: tuple[int, int, int, int]
    pps_channel: int | None
    source_state: Literal["phi+", "psi+"]
    angles_deg: tuple[float, float]
    t_ps: I64
    basis: U8
    outcome: U8
    revealed: B
    pps_ps: I64
    fraction: float = 1.0
    seed: int = 0
    slot_ps: int = 10 * 10**9
    tick_ps: int = DEFAULT_TICK_PS
    frames_dropped: int = 0

    @property
    def events(self) -> int:
        return int(self.t_ps.size)

    @property
    def code(self) -> U8:
        """Analyzer output 0..3 (H, V, D, A) = 2·basis + outcome (valid where revealed)."""
        out: U8 = (self.basis << 1 | self.outcome).astype(np.uint8)
        return out


# --------------------------------------------------------------------------- bit planes


def _pack(values: U64, width: int) -> bytes:
    """Fixed-width unsigned fields, MSB first, zero-padded to a whole byte."""
    if values.size == 0:
        return b""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = ((values[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.ravel()).tobytes()


def _unpack(buf: bytes, n: int, width: int) -> U64:
    if n == 0:
        return np.zeros(0, np.uint64)
    bits = np.unpackbits(np.frombuffer(buf, np.uint8), count=n * width).reshape(n, width)
    out = np.zeros(n, np.uint64)
    for j in range(width):
        out <<= np.uint64(1)
        out |= bits[:, j].astype(np.uint64)
    return out


def _best_width(deltas: U64) -> int:
    """Field width minimising n·w + 64·(escapes at w): codes are delta + 1, 0 escapes."""
    if deltas.size == 0:
        return 1
    # bit length of delta + 1 (exact: deltas are < 2^53 ticks, MAX_SPAN_PS / 1 ps)
    lengths = np.frexp((deltas + np.uint64(1)).astype(np.float64))[1]
    hist = np.bincount(lengths, minlength=65)
    n = deltas.size
    best, best_w = None, 1
    escaped = n - np.cumsum(hist)  # escaped[w] = number with bit length > w
    for w in range(1, MAX_WIDTH + 1):
        cost = n * w + 64 * int(escaped[w])
        if best is None or cost < best:
            best, best_w = cost, w
    return best_w


def _runs(mask: B) -> tuple[I64, I64]:
    """(first index, length) of each run of True."""
    m = np.concatenate(([False], mask, [False])).astype(np.int8)
    d = np.diff(m)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return starts.astype(np.int64), (ends - starts).astype(np.int64)


# --------------------------------------------------------------------------- encode


def encode_frame(frame: LiveFrame) -> bytes:
    """The frame's bytes (times quantised to ``tick_ps``; see the module doc for the layout).

    Raises ChannelFormatError when the frame cannot be represented (unsorted times, events
    outside the interval, too many events, names too long).
    """
    st = frame.station.encode()
    rid = frame.run_id.encode()
    if not st or len(st) > MAX_NAME or len(rid) > MAX_NAME:
        raise ChannelFormatError(f"station/run_id must be 1..{MAX_NAME} bytes of UTF-8")
    t = np.asarray(frame.t_ps, np.int64)
    n = t.size
    if n > MAX_EVENTS:
        raise ChannelFormatError(f"{n} events exceed the frame bound {MAX_EVENTS}")
    if frame.basis.size != n or frame.outcome.size != n or frame.revealed.size != n:
        raise ChannelFormatError("t_ps, basis, outcome and revealed need one entry per event")
    if frame.tick_ps < 1 or not 0 < frame.t_end_ps - frame.t_start_ps <= MAX_SPAN_PS:
        raise ChannelFormatError("tick_ps must be >= 1 and the interval 0 < span <= 60 s")
    if n and (int(t[0]) < frame.t_start_ps or int(t[-1]) >= frame.t_end_ps):
        raise ChannelFormatError("events must lie in [t_start_ps, t_end_ps)")
    q = (t - frame.t_start_ps) // frame.tick_ps
    if n > 1 and bool(np.any(q[1:] < q[:-1])):
        raise ChannelFormatError("event times must be sorted")
    deltas = np.diff(q, prepend=0).astype(np.uint64)
    width = _best_width(deltas)
    codes = deltas + np.uint64(1)
    esc = codes >= np.uint64(1 << width)
    codes[esc] = 0
    escapes = deltas[esc]
    pps = np.asarray(frame.pps_ps, np.int64)
    if pps.size > MAX_PPS:
        raise ChannelFormatError(f"{pps.size} PPS edges exceed the frame bound {MAX_PPS}")
    revealed = np.asarray(frame.revealed, bool)
    if frame.mode == "bell" and not bool(revealed.all()):
        raise ChannelFormatError("bell mode reveals every outcome")
    starts, lengths = _runs(revealed)
    if starts.size > 0xFFFF:
        raise ChannelFormatError(f"{starts.size} revealed runs exceed 65535")
    n_rev = int(lengths.sum())
    a = frame.anchor
    body = _BODY.pack(
        frame.seq,
        frame.t_start_ps,
        frame.t_end_ps,
        frame.tick_ps,
        a.tagger_ps if a else 0,
        a.posix_s if a else math.nan,
        a.uncertainty_s if a else math.nan,
        *frame.channels,
        255 if frame.pps_channel is None else frame.pps_channel,
        frame.angles_deg[0],
        frame.angles_deg[1],
        frame.fraction,
        frame.seed,
        frame.slot_ps,
        frame.frames_dropped,
        n,
        width,
        int(escapes.size),
        int(pps.size),
        int(starts.size),
        n_rev,
    )
    parts = [
        _HEAD.pack(
            MAGIC,
            VERSION,
            MODES.index(frame.mode),
            STATES.index(frame.source_state),
            ANCHOR_SOURCES.index(a.source if a else None),
        ),
        bytes([len(st)]) + st + bytes([len(rid)]) + rid,
        body,
        pps.astype("<i8").tobytes(),
        _pack(codes, width),
        escapes.astype("<u8").tobytes(),
        np.packbits(np.asarray(frame.basis, np.uint8) & 1).tobytes(),
        np.column_stack((starts, lengths)).astype("<u4").tobytes(),
        np.packbits(np.asarray(frame.outcome, np.uint8)[revealed] & 1).tobytes(),
    ]
    payload = b"".join(parts)
    return payload + _CRC.pack(zlib.crc32(payload))


# --------------------------------------------------------------------------- decode


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ChannelFormatError(
                f"frame truncated in {what}: needs {n} bytes at offset {self.pos}, "
                f"{len(self.buf) - self.pos} left"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


def _name(r: _Reader, what: str) -> str:
    n = r.take(1, f"{what} length")[0]
    if n > MAX_NAME or (what == "station" and n == 0):
        raise ChannelFormatError(f"{what} length {n} outside 1..{MAX_NAME}")
    try:
        return r.take(n, what).decode()
    except UnicodeDecodeError:
        raise ChannelFormatError(f"{what} is not UTF-8") from None


def decode_frame(data: bytes) -> LiveFrame:
    """Parse and check a frame; raises ChannelFormatError naming what is malformed.

    Every count is bounded before anything is allocated, the total length must match the
    counts exactly, the CRC must match, and the decoded times must stay inside the
    frame's interval (so hostile input cannot make the consumer allocate or index wildly).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ChannelFormatError(f"a frame is bytes, got {type(data).__name__}")
    if len(data) > MAX_FRAME_BYTES:
        raise ChannelFormatError(f"frame of {len(data)} bytes exceeds {MAX_FRAME_BYTES}")
    buf = bytes(data)
    if len(buf) < _HEAD.size + _CRC.size:
        raise ChannelFormatError(f"frame of {len(buf)} bytes is shorter than any header")
    (crc,) = _CRC.unpack(buf[-_CRC.size :])
    payload = buf[: -_CRC.size]
    r = _Reader(payload)
    magic, version, mode_i, state_i, src_i = _HEAD.unpack(r.take(_HEAD.size, "header"))
    if magic != MAGIC:
        raise ChannelFormatError(f"bad magic {magic!r}: not a qgs live frame (expected {MAGIC!r})")
    if version != VERSION:
        raise ChannelFormatError(f"frame version {version} unsupported (this reader: {VERSION})")
    if zlib.crc32(payload) != crc:
        raise ChannelFormatError("CRC mismatch: the frame is corrupted")
    if mode_i >= len(MODES) or state_i >= len(STATES) or src_i >= len(ANCHOR_SOURCES):
        raise ChannelFormatError(
            f"mode {mode_i}, source state {state_i} or anchor source {src_i} out of range"
        )
    station = _name(r, "station")
    run_id = _name(r, "run_id")
    f = _BODY.unpack(r.take(_BODY.size, "fixed header"))
    (seq, t0, t1, tick, a_t, a_s, a_u, c_h, c_v, c_d, c_a, pps_ch, ang_h, ang_d) = f[:14]
    (fraction, seed, slot, dropped, n, width, n_esc, n_pps, n_runs, n_rev) = f[14:]
    if tick < 1 or not 0 < t1 - t0 <= MAX_SPAN_PS:
        raise ChannelFormatError(f"tick {tick} ps or interval [{t0}, {t1}) ps out of range")
    if n > MAX_EVENTS or not 1 <= width <= MAX_WIDTH or n_esc > n:
        raise ChannelFormatError(f"n_events {n}, width {width} or n_escapes {n_esc} out of range")
    if n_pps > MAX_PPS or n_runs > n or n_rev > n:
        raise ChannelFormatError(f"n_pps {n_pps}, n_runs {n_runs} or n_revealed {n_rev} too big")
    if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0) or slot < 1:
        raise ChannelFormatError(f"reveal fraction {fraction} or slot {slot} ps out of range")
    if not all(math.isfinite(x) for x in (ang_h, ang_d)):
        raise ChannelFormatError("analyzer angles are not finite")
    if len({c_h, c_v, c_d, c_a}) != 4:
        raise ChannelFormatError(f"channel map {(c_h, c_v, c_d, c_a)} is not four channels")
    expected = (
        8 * n_pps + (n * width + 7) // 8 + 8 * n_esc + (n + 7) // 8 + 8 * n_runs + (n_rev + 7) // 8
    )
    if len(payload) - r.pos != expected:
        raise ChannelFormatError(
            f"frame body is {len(payload) - r.pos} bytes, the counts need {expected}"
        )
    pps = np.frombuffer(r.take(8 * n_pps, "pps edges"), "<i8").astype(np.int64)
    codes = _unpack(r.take((n * width + 7) // 8, "time plane"), n, width)
    escapes = np.frombuffer(r.take(8 * n_esc, "escapes"), "<u8").astype(np.uint64)
    basis = np.unpackbits(np.frombuffer(r.take((n + 7) // 8, "basis plane"), np.uint8), count=n)
    runs = np.frombuffer(r.take(8 * n_runs, "runs"), "<u4").astype(np.int64).reshape(-1, 2)
    obits = np.unpackbits(
        np.frombuffer(r.take((n_rev + 7) // 8, "outcome plane"), np.uint8), count=n_rev
    )
    zero = codes == 0
    if int(zero.sum()) != n_esc:
        raise ChannelFormatError(f"{int(zero.sum())} escape codewords, header says {n_esc}")
    span_ticks = (t1 - t0) // tick + 1
    if n_esc and int(escapes.max()) > span_ticks:
        raise ChannelFormatError("an escaped time difference leaves the frame interval")
    deltas = codes.astype(np.int64) - 1
    deltas[zero] = escapes.astype(np.int64)
    # the sum first in float64 (no overflow), so the int64 running sum below cannot wrap
    if n and float(deltas.sum(dtype=np.float64)) * tick >= t1 - t0:
        raise ChannelFormatError("event times run past the frame's end")
    q = np.cumsum(deltas)
    t = t0 + q * tick + tick // 2
    revealed = np.zeros(n, bool)
    if n_runs:
        first, count = runs[:, 0], runs[:, 1]
        if bool(np.any(count < 1)) or int(first[-1] + count[-1]) > n:
            raise ChannelFormatError("a revealed run is empty or runs past the events")
        if n_runs > 1 and bool(np.any(first[1:] < first[:-1] + count[:-1])):
            raise ChannelFormatError("revealed runs overlap or are out of order")
        if int(count.sum()) != n_rev:
            raise ChannelFormatError(f"revealed runs hold {int(count.sum())} events, not {n_rev}")
        edges = np.zeros(n + 1, np.int64)
        np.add.at(edges, first, 1)
        np.add.at(edges, first + count, -1)
        revealed = np.cumsum(edges[:-1]) > 0
    elif n_rev:
        raise ChannelFormatError(f"{n_rev} revealed outcomes but no runs")
    mode: Mode = "bell" if MODES[mode_i] == "bell" else "key"
    if mode == "bell" and n_rev != n:
        raise ChannelFormatError(f"bell-mode frame reveals {n_rev} of {n} outcomes, not all")
    if n_pps and (int(pps.min()) < t0 or int(pps.max()) >= t1):
        raise ChannelFormatError("a PPS edge lies outside the frame interval")
    outcome = np.zeros(n, np.uint8)
    outcome[revealed] = obits
    src = ANCHOR_SOURCES[src_i]
    anchor = None if src is None else FrameAnchor(int(a_t), float(a_s), float(a_u), src)
    if anchor is not None and not (math.isfinite(anchor.posix_s) and anchor.uncertainty_s >= 0):
        raise ChannelFormatError("the anchor's UTC or uncertainty is not a finite number")
    return LiveFrame(
        station=station,
        run_id=run_id,
        seq=int(seq),
        mode=mode,
        t_start_ps=int(t0),
        t_end_ps=int(t1),
        anchor=anchor,
        channels=(int(c_h), int(c_v), int(c_d), int(c_a)),
        pps_channel=None if pps_ch == 255 else int(pps_ch),
        source_state="phi+" if STATES[state_i] == "phi+" else "psi+",
        angles_deg=(float(ang_h), float(ang_d)),
        t_ps=t.astype(np.int64),
        basis=basis.astype(np.uint8),
        outcome=outcome,
        revealed=revealed,
        pps_ps=pps,
        fraction=float(fraction),
        seed=int(seed),
        slot_ps=int(slot),
        tick_ps=int(tick),
        frames_dropped=int(dropped),
    )
