"""The live channel's frame codec, the key-mode reveal rule, and its offline drop.

Frames come from :mod:`station.network.live_synthetic` (a Micius pass over Delingha and
Lijiang with known pairs), cut by the daemon's own :class:`FrameBuilder`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import struct
import zlib
from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.config import Table
from drivers.datatypes import EventBlock
from drivers.errors import ConfigError
from station.analysis.key.reveal import RevealParams, slot_revealed
from station.analysis.pipeline import analyze_pair, live_revealed
from station.config import load_station_config
from station.daemon.live_publish import LivePublisher, Sink, live_publisher
from station.daemon.settings import LiveSettings, parse_daemon_settings
from station.network import live_synthetic as ls
from station.network.channel import (
    MAGIC,
    ChannelFormatError,
    LiveFrame,
    decode_frame,
    encode_frame,
)
from station.recording.timescale import TimescaleTracker
from station.tracking.elements import load_elements

PS = 10**12


@pytest.fixture(scope="module")
def key_pass() -> ls.SyntheticPass:
    return ls.make_pass(11, mode="key", duration_s=20.0, pair_rate_hz=300.0)


@pytest.fixture(scope="module")
def key_frames(
    key_pass: ls.SyntheticPass,
) -> tuple[list[LiveFrame], list[LiveFrame], dict[str, object], dict[str, object]]:
    ba, bb = ls.builder(key_pass.a, "key"), ls.builder(key_pass.b, "key")
    fa = ls.frames_of(key_pass.a, "key", fb=ba)
    fb = ls.frames_of(key_pass.b, "key", fb=bb)
    return fa, fb, ba.annotation(), bb.annotation()


def _frames(mode: Literal["bell", "key"]) -> list[LiveFrame]:
    p = ls.make_pass(2, mode=mode, duration_s=4.0, pair_rate_hz=100.0, singles_hz=5_000.0)
    return ls.frames_of(p.a, mode)


# --------------------------------------------------------------------------- codec


@pytest.mark.parametrize("mode", ["bell", "key"])
def test_round_trip_keeps_every_field(mode: Literal["bell", "key"]) -> None:
    frames = _frames(mode)
    assert len(frames) >= 4
    for f in frames:
        g = decode_frame(encode_frame(f))
        assert (g.station, g.run_id, g.seq, g.mode) == (f.station, f.run_id, f.seq, f.mode)
        assert (g.t_start_ps, g.t_end_ps, g.tick_ps) == (f.t_start_ps, f.t_end_ps, f.tick_ps)
        assert g.anchor == f.anchor
        assert g.channels == f.channels
        assert g.pps_channel == f.pps_channel
        assert g.angles_deg == f.angles_deg
        assert g.source_state == f.source_state
        assert (g.fraction, g.seed, g.slot_ps) == (f.fraction, f.seed, f.slot_ps)
        np.testing.assert_array_equal(g.pps_ps, f.pps_ps)
        np.testing.assert_array_equal(g.basis, f.basis)
        np.testing.assert_array_equal(g.revealed, f.revealed)
        np.testing.assert_array_equal(g.outcome[g.revealed], f.outcome[f.revealed])
        # times quantised to the tick, decoded at its centre: within half a tick
        assert g.t_ps.size == f.t_ps.size
        assert int(np.abs(g.t_ps - f.t_ps).max(initial=0)) <= f.tick_ps // 2
        assert encode_frame(g) == encode_frame(f)  # decoding is exact on the quantised times


def test_key_frames_reveal_a_sample_and_bell_frames_everything() -> None:
    key = _frames("key")
    rev = np.concatenate([f.revealed for f in key])
    assert 0.03 < rev.mean() < 0.2
    assert all(f.revealed.all() for f in _frames("bell"))


def test_delta_coding_is_compact() -> None:
    f = _frames("key")[1]
    size = len(encode_frame(f))
    # 5 kHz in 125 ps ticks: differences of ~1.6e6 ticks, ~22 bits + basis: ~3 bytes/event
    assert size < 3.5 * f.events + 200
    assert size < 9 * f.events / 2.5  # at least 2.5x smaller than the raw 9 B/event


def test_escapes_carry_long_gaps() -> None:
    f = _frames("bell")[1]
    t = f.t_ps.copy()
    # one very long gap among many short ones: the width fits the short ones, the gap escapes
    keep = np.ones(t.size, bool)
    keep[10 : t.size - 10] = False
    g = LiveFrame(
        **{
            **f.__dict__,
            "t_ps": t[keep],
            "basis": f.basis[keep],
            "outcome": f.outcome[keep],
            "revealed": f.revealed[keep],
        }
    )
    h = decode_frame(encode_frame(g))
    assert int(np.abs(h.t_ps - g.t_ps).max()) <= g.tick_ps // 2


def test_encoder_refuses_what_it_cannot_represent() -> None:
    f = _frames("bell")[1]
    with pytest.raises(ChannelFormatError, match="sorted"):
        encode_frame(LiveFrame(**{**f.__dict__, "t_ps": f.t_ps[::-1].copy()}))
    bad = f.revealed.copy()
    bad[0] = False
    with pytest.raises(ChannelFormatError, match="reveals every"):
        encode_frame(LiveFrame(**{**f.__dict__, "revealed": bad}))
    with pytest.raises(ChannelFormatError, match=r"1\.\.64"):
        encode_frame(LiveFrame(**{**f.__dict__, "station": "x" * 65}))


# --------------------------------------------------------------------------- malformed input


def _reseal(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_truncated_frames_are_refused_by_name() -> None:
    data = encode_frame(_frames("key")[1])
    for cut in (0, 3, 8, 20, 60, len(data) // 2, len(data) - 1):
        with pytest.raises(ChannelFormatError):
            decode_frame(data[:cut])


def test_bad_magic_version_and_crc() -> None:
    data = encode_frame(_frames("key")[1])
    with pytest.raises(ChannelFormatError, match="magic"):
        decode_frame(b"XXXX" + data[4:])
    with pytest.raises(ChannelFormatError, match="version"):
        decode_frame(_reseal(data[:4] + bytes([99]) + data[5:-4]))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    with pytest.raises(ChannelFormatError, match="CRC"):
        decode_frame(bytes(flipped))
    with pytest.raises(ChannelFormatError, match="bytes"):
        decode_frame("not bytes")  # type: ignore[arg-type]


def test_hostile_counts_are_refused_before_allocation() -> None:
    f = _frames("key")[1]
    data = encode_frame(f)
    body = data[:-4]
    # the fixed header sits after the 8-byte head and the two names
    off = 8 + 1 + len(f.station) + 1 + len(f.run_id)
    n_events_at = off + struct.calcsize("<IqqIqdf4BBdddQQI")
    huge = body[:n_events_at] + struct.pack("<I", 0xFFFFFFFF) + body[n_events_at + 4 :]
    with pytest.raises(ChannelFormatError, match="n_events"):
        decode_frame(_reseal(huge))
    more = body[:n_events_at] + struct.pack("<I", f.events + 1000) + body[n_events_at + 4 :]
    with pytest.raises(ChannelFormatError, match="counts need"):
        decode_frame(_reseal(more))
    with pytest.raises(ChannelFormatError, match="counts need"):
        decode_frame(_reseal(body + b"\0" * 16))
    # an interval too short for the events' time differences (no int64 wrap-around either)
    t_end_at = off + struct.calcsize("<Iq")
    short = body[:t_end_at] + struct.pack("<q", f.t_start_ps + 1000) + body[t_end_at + 8 :]
    with pytest.raises(ChannelFormatError, match=r"run past|escaped"):
        decode_frame(_reseal(short))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_the_typed_error(data: bytes) -> None:
    for candidate in (data, MAGIC + bytes([1]) + data, _reseal(MAGIC + bytes([1]) + data)):
        with contextlib.suppress(ChannelFormatError):
            decode_frame(candidate)


# --------------------------------------------------------------------------- the sample rule


def test_slot_rule_is_a_seeded_fraction() -> None:
    slots = np.arange(1_000_000, dtype=np.int64) + 161_971_704_000
    p = RevealParams(fraction=0.1, seed=5)
    r = slot_revealed(slots, p)
    assert abs(r.mean() - 0.1) < 0.003
    r2 = slot_revealed(slots, RevealParams(fraction=0.1, seed=6))
    assert abs((r & r2).mean() - 0.01) < 0.002  # another seed: an independent sample
    np.testing.assert_array_equal(r, slot_revealed(slots, p))


def test_both_stations_reveal_the_same_pairs(
    key_pass: ls.SyntheticPass,
    key_frames: tuple[list[LiveFrame], list[LiveFrame], dict[str, object], dict[str, object]],
) -> None:
    fa, fb, _, _ = key_frames
    rev_a = np.concatenate([f.revealed for f in fa])
    rev_b = np.concatenate([f.revealed for f in fb])
    assert rev_a.size == key_pass.a.t_ps.size
    assert rev_b.size == key_pass.b.t_ps.size
    ra, rb = rev_a[key_pass.pair_a], rev_b[key_pass.pair_b]
    assert 0.05 < ra.mean() < 0.15
    # the stations decide alone; they disagree only within µs of a 10 ms slot edge
    assert np.count_nonzero(ra != rb) <= max(2, 0.002 * ra.size)
    assert np.count_nonzero(ra & rb) > 0.9 * np.count_nonzero(ra)


def test_offline_key_drops_every_revealed_coincidence(
    key_pass: ls.SyntheticPass,
    key_frames: tuple[list[LiveFrame], list[LiveFrame], dict[str, object], dict[str, object]],
) -> None:
    fa, fb, ann_a, ann_b = key_frames
    a = ls.station_data(key_pass.a, "key", {"live_channel": ann_a})
    # the daemon nests the rule in the manifest's analyzer section; top level is read too
    b = ls.station_data(key_pass.b, "key", {"analyzer": {"live_channel": ann_b}})
    off_a, off_b = live_revealed(a), live_revealed(b)
    assert off_a is not None
    assert off_b is not None
    live_a = np.concatenate([f.revealed for f in fa])
    live_b = np.concatenate([f.revealed for f in fb])
    # every outcome the daemon revealed is found again from the bundle (the guard adds a few)
    assert bool(np.all(off_a[live_a]))
    assert bool(np.all(off_b[live_b]))
    assert np.count_nonzero(off_a) <= 1.01 * np.count_nonzero(live_a)
    with_drop = analyze_pair(a, b)
    without = analyze_pair(ls.station_data(key_pass.a, "key"), ls.station_data(key_pass.b, "key"))
    assert with_drop.sifted is not None
    assert without.sifted is not None
    assert with_drop.live_revealed_pairs > 0.05 * with_drop.coincidences
    assert with_drop.live_dropped_sifted > 0
    assert with_drop.sifted.n == without.sifted.n - with_drop.live_dropped_sifted
    assert without.live_revealed_pairs == 0
    assert with_drop.coincidences == without.coincidences  # statistics still use every pair


def test_a_rule_that_never_started_reveals_nothing(key_pass: ls.SyntheticPass) -> None:
    ann = {**RevealParams().to_json(), "mode": "key", "rule_anchor": None}
    a = ls.station_data(key_pass.a, "key", {"live_channel": ann})
    mask = live_revealed(a)
    assert mask is not None
    assert not mask.any()
    assert live_revealed(ls.station_data(key_pass.a, "key")) is None


# --------------------------------------------------------------------------- the daemon's end


async def _publish(p: ls.SyntheticPass, sink: Sink) -> LivePublisher:
    tracker = TimescaleTracker(ls.PPS_CHANNEL)
    pub = LivePublisher(ls.builder(p.a, "key"), tracker)
    task = asyncio.create_task(pub.pump(sink))
    t, c = p.a.merged()
    step = PS // 10
    cuts = np.searchsorted(t, np.arange(int(t[0]), int(t[-1]) + step, step))
    for seq, (lo, hi) in enumerate(itertools.pairwise(cuts)):
        block = EventBlock(seq, t[lo:hi], c[lo:hi])
        if not len(block):
            continue
        received = ls.T0_POSIX + (int(t[hi - 1]) - p.a.tagger0_ps) / PS + 0.05
        tracker.observe(block, received)
        pub.feed(block, received)
        await asyncio.sleep(0)
    for _ in range(6000):  # let the worker thread catch up (bounded, 60 s on a loaded host)
        if pub.idle:
            break
        await asyncio.sleep(0.01)
    assert pub.idle
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return pub


async def test_publisher_sends_decodable_frames_in_order() -> None:
    p = ls.make_pass(4, mode="key", duration_s=6.0, pair_rate_hz=100.0, singles_hz=5_000.0)
    sent: list[bytes] = []

    async def sink(payload: bytes) -> bool:
        sent.append(payload)
        return True

    pub = await _publish(p, sink)
    frames = [decode_frame(b) for b in sent]
    assert len(frames) >= 6
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})
    assert all(f.station == "delingha" and f.mode == "key" for f in frames)
    assert sum(f.pps_ps.size for f in frames) >= 6  # the PPS edges ride along
    assert frames[-1].anchor is not None
    assert frames[-1].anchor.source == "pps"
    ann = pub.annotation()
    assert ann["rule_anchor"] is not None
    assert ann["frames_sent"] == len(sent)
    assert ann["frames_dropped"] == 0


async def test_publisher_counts_what_the_broker_did_not_take() -> None:
    p = ls.make_pass(4, mode="key", duration_s=6.0, pair_rate_hz=100.0, singles_hz=5_000.0)

    async def offline(payload: bytes) -> bool:
        return False

    pub = await _publish(p, offline)
    assert pub.frames_sent == 0
    assert pub.frames_dropped >= 5
    assert pub.builder.frames_dropped == pub.frames_dropped


def test_live_config_section() -> None:
    default = parse_daemon_settings(Table({}, source="t.toml")).live
    assert default.enabled
    assert default.sample_fraction == RevealParams().fraction
    assert default.seed == RevealParams().seed
    assert round(default.slot_s * PS) == RevealParams().slot_ps
    off = parse_daemon_settings(Table({"live": {"enabled": False}}, source="t.toml")).live
    assert not off.enabled
    with pytest.raises(ConfigError, match="slot_s"):
        parse_daemon_settings(Table({"live": {"slot_s": 0.003}}, source="t.toml"))
    with pytest.raises(ConfigError, match="sample_fraction"):
        parse_daemon_settings(Table({"live": {"sample_fraction": 2.0}}, source="t.toml"))


def test_the_daemon_builds_its_publisher_from_the_station_config() -> None:
    cfg = load_station_config(ls.ROOT / "configs/stations/lijiang.toml")
    elements = load_elements(ls.ROOT / "configs/satellites/micius-2021.tle")[0]
    analyzer = {
        "mode": "key",
        "source_state": "phi+",
        "source_frame_angles_deg": {"H": 0.0, "V": 90.0, "D": -45.0, "A": 45.0},
    }
    tracker = TimescaleTracker(cfg.daemon.timetagger.pps_channel)
    pub = live_publisher(cfg, "lijiang-pass-1", elements, tracker, analyzer)
    assert pub is not None
    fb = pub.builder
    assert fb.station == "lijiang"
    assert fb.angles_deg == (0.0, -45.0)
    assert fb.light is not None
    assert fb.light.tle == ls.tle()
    assert fb.params == RevealParams(
        fraction=cfg.daemon.live.sample_fraction,
        seed=cfg.daemon.live.seed,
        slot_ps=round(cfg.daemon.live.slot_s * PS),
    )
    off = dataclasses.replace(
        cfg, daemon=dataclasses.replace(cfg.daemon, live=LiveSettings(enabled=False))
    )
    assert live_publisher(off, "x", elements, tracker, analyzer) is None
