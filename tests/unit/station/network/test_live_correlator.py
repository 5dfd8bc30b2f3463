"""The live correlator converges to the truth and to the offline analysis of the same data.

Synthetic passes (:mod:`station.network.live_synthetic`: Werner state of visibility 0.9,
Micius over Delingha and Lijiang, clocks offset by 400 ps with a random walk) are cut into
frames by the daemon's builder, sent through the codec, and fed to :class:`LiveCorrelator`
second by second; the offline :func:`analyze_pair` runs on the same streams.
"""

from __future__ import annotations

import json
import math
import random
from typing import Literal

import pytest

from station.analysis.pipeline import PairResult, analyze_pair
from station.analysis.statistics import predicted_s
from station.network import live_synthetic as ls
from station.network.channel import LiveFrame, decode_frame, encode_frame
from station.network.live import LiveCorrelator, LiveEstimate

V = 0.9


def _wire(frames: list[LiveFrame]) -> list[LiveFrame]:
    return [decode_frame(encode_frame(f)) for f in frames]


def _run(
    p: ls.SyntheticPass, fa: list[LiveFrame], fb: list[LiveFrame]
) -> tuple[list[LiveEstimate | None], LiveEstimate | None]:
    c = LiveCorrelator(p.mode, ls.tle(), (p.a.site, p.b.site))
    seen: list[LiveEstimate | None] = []
    for i in range(max(len(fa), len(fb))):
        for frames in (fa, fb):
            if i < len(frames):
                c.add(frames[i])
        seen.append(c.estimate())
    return seen, c.flush()


def _offline(p: ls.SyntheticPass) -> PairResult:
    return analyze_pair(ls.station_data(p.a, p.mode), ls.station_data(p.b, p.mode))


@pytest.fixture(scope="module")
def bell() -> tuple[ls.SyntheticPass, list[LiveEstimate | None], LiveEstimate | None]:
    p = ls.make_pass(3, mode="bell", duration_s=30.0, visibility=V)
    seen, final = _run(p, _wire(ls.frames_of(p.a, "bell")), _wire(ls.frames_of(p.b, "bell")))
    return p, seen, final


def test_bell_live_s_converges_to_truth_and_offline(
    bell: tuple[ls.SyntheticPass, list[LiveEstimate | None], LiveEstimate | None],
) -> None:
    p, seen, final = bell
    assert seen[0] is None  # no lock on the first second
    locked = [e for e in seen if e is not None]
    assert len(locked) >= 20  # ≥ 1 Hz once locked
    assert final is not None
    assert final.s is not None
    assert final.s_sigma is not None
    assert final.qber is None
    assert abs(final.s - predicted_s(V)) < 3.0 * final.s_sigma
    off = _offline(p)
    assert off.summary.chsh is not None
    # the same pairs, found the same way: well inside one σ of each other
    assert abs(final.s - off.summary.chsh.s) < 0.5 * off.summary.chsh.sigma_s
    assert abs(final.coincidences - off.coincidences) <= 0.01 * off.coincidences
    assert final.revealed_pairs == final.coincidences
    counts = [e.coincidences for e in locked]
    assert counts == sorted(counts)
    assert all(e.locked for e in locked)
    mid = locked[len(locked) // 2]
    assert abs(mid.rate_hz - 200.0) < 40.0
    assert final.accidentals < 0.01 * final.coincidences
    assert final.offset_ps is not None
    assert abs(final.offset_ps - 400.0) < 150.0  # the clock offset, through a random walk


def test_key_live_qber_from_the_sample_agrees_with_offline() -> None:
    p = ls.make_pass(5, mode="key", duration_s=30.0, pair_rate_hz=400.0, visibility=V)
    _, final = _run(p, _wire(ls.frames_of(p.a, "key")), _wire(ls.frames_of(p.b, "key")))
    assert final is not None
    assert final.qber is not None
    assert final.qber_sigma is not None
    assert final.s is None
    off = _offline(p)
    assert off.summary.qber is not None
    truth = (1.0 - V) / 2.0
    assert abs(final.qber - truth) < 3.0 * final.qber_sigma
    sigma = math.hypot(final.qber_sigma, off.summary.qber.sigma_qber)
    assert abs(final.qber - off.summary.qber.qber) < 3.0 * sigma
    # only the revealed sample feeds the QBER: ~10 % of the coincidences
    assert 0.05 * final.coincidences < final.revealed_pairs < 0.15 * final.coincidences
    assert abs(final.sifted - 0.5 * final.coincidences) < 0.05 * final.coincidences


def test_frames_out_of_order_duplicated_and_lost() -> None:
    p = ls.make_pass(8, mode="bell", duration_s=20.0, visibility=V)
    fa, fb = _wire(ls.frames_of(p.a, "bell")), _wire(ls.frames_of(p.b, "bell"))
    lost = fb.pop(12)
    rng = random.Random(1)
    stream = [*fa, *fb, fa[3], fb[5], fa[10]]  # duplicates
    # shuffle within a few seconds, as a broker with several paths could
    stream.sort(key=lambda f: f.seq + 2.5 * rng.random())
    c = LiveCorrelator("bell", ls.tle(), (p.a.site, p.b.site))
    for k, f in enumerate(stream):
        c.add(f)
        if k % 2:
            c.estimate()
    final = c.flush()
    assert final is not None
    assert final.lost_frames == {"delingha": 0, "lijiang": 1}
    assert final.s is not None
    assert final.s_sigma is not None
    assert abs(final.s - predicted_s(V)) < 3.0 * final.s_sigma
    # the lost second of B costs its pairs, no more
    n_lost_pairs = p.n_pairs * 1.0 / p.duration_s
    assert final.coincidences > p.n_pairs - 2.0 * n_lost_pairs
    assert final.coincidences < p.n_pairs - 0.5 * n_lost_pairs + 50
    assert lost.seq == 12


def test_foreign_frames_are_rejected_and_json_is_plain(
    bell: tuple[ls.SyntheticPass, list[LiveEstimate | None], LiveEstimate | None],
) -> None:
    p, _, final = bell
    assert final is not None
    c = LiveCorrelator("key", ls.tle(), (p.a.site, p.b.site))
    f = ls.frames_of(p.a, "bell")[0]
    c.add(f)  # a bell frame to a key-mode correlator
    assert c.rejected == 1
    assert c.estimate() is None
    doc = final.to_json()
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text)["coincidences"] == final.coincidences
    assert doc["qber"] is None
    assert isinstance(doc["frames"]["delingha"], int)


@pytest.mark.parametrize("mode", ["bell", "key"])
def test_sites_must_differ(mode: Literal["bell", "key"]) -> None:
    s = ls.site("delingha")
    with pytest.raises(ValueError, match="differ"):
        LiveCorrelator(mode, ls.tle(), (s, s))
    with pytest.raises(ValueError, match="mode"):
        LiveCorrelator("chsh", ls.tle(), (s, ls.site("lijiang")))  # type: ignore[arg-type]


def test_micius_like_rates_lock_within_seconds_and_count_like_offline() -> None:
    """A few pairs per second on 12.6 kcps singles (the rig's 2017 figures, 5x the pairs)."""
    p = ls.make_pass(
        9,
        mode="bell",
        duration_s=120.0,
        pair_rate_hz=5.0,
        singles_hz=12_600.0,
        visibility=V,
        random_walk_ps_per_sqrt_s=28.0,
    )
    seen, final = _run(p, _wire(ls.frames_of(p.a, "bell")), _wire(ls.frames_of(p.b, "bell")))
    first = next(i for i, e in enumerate(seen) if e is not None)
    assert first <= 10
    assert final is not None
    assert final.s is not None
    off = _offline(p)
    assert off.summary.chsh is not None
    assert abs(final.coincidences - off.coincidences) <= 0.03 * off.coincidences + 3
    assert abs(final.s - off.summary.chsh.s) < 0.5 * off.summary.chsh.sigma_s
    # the window comes from the whole histogram, not from the first few pairs of the lock
    assert 0.7 * off.window_ps < final.window_ps < 1.5 * off.window_ps
