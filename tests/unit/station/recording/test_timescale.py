"""The manifest's time base: the tagger's epoch pinned to UTC from the PPS edges."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.datatypes import EventBlock
from station.recording.timescale import EVENT_TIME_ZERO, TimescaleTracker

PS = 10**12
EPOCH = 1_619_715_600.25  #: the tagger's zero in UTC (deliberately not on a second)


def _blocks(latency_s: float, *, pps: bool) -> list[tuple[EventBlock, float]]:
    """0.1 s blocks of a tagger whose zero is EPOCH, each received ``latency_s`` after its end."""
    out = []
    for k in range(60):
        t0 = 1_619_716_000.0 + 0.1 * k
        t = np.sort(np.random.default_rng(k).uniform(t0, t0 + 0.1, 50))
        ch = np.ones(t.size, np.uint8)
        if pps and int(t0 + 0.1) > int(t0):  # an integer UTC second inside the block
            t = np.append(t, float(int(t0 + 0.1)))
            ch = np.append(ch, np.uint8(8))
            order = np.argsort(t)
            t, ch = t[order], ch[order]
        ticks = np.rint((t - EPOCH) * PS).astype(np.int64)
        out.append((EventBlock(k, ticks, ch), t0 + 0.1 + latency_s))
    return out


@pytest.mark.parametrize("latency_s", [0.0, 0.3, 0.9])
def test_pps_edges_pin_the_epoch_and_name_their_second(latency_s: float) -> None:
    tracker = TimescaleTracker(pps_channel=8)
    for block, received in _blocks(latency_s, pps=True):
        tracker.observe(block, received)
    ts = tracker.section()
    assert ts["pps_edges"] == 6
    assert ts["event_time_zero"] == EVENT_TIME_ZERO
    assert ts["tagger_epoch_posix"] == pytest.approx(EPOCH, abs=1e-6)
    anchor = ts["anchor"]
    assert anchor["source"] == "pps"
    # the anchor's reading really is its UTC second on this tagger
    assert anchor["tagger_ps"] == round((anchor["posix_s"] - EPOCH) * PS)
    assert ts["median_latency_s"] == pytest.approx(latency_s + 0.05, abs=0.06)


def test_without_pps_the_anchor_is_the_first_event_and_says_so() -> None:
    tracker = TimescaleTracker(pps_channel=8)
    for block, received in _blocks(0.2, pps=False):
        tracker.observe(block, received)
    ts = tracker.section()
    assert ts["pps_edges"] == 0
    assert ts["anchor"]["source"] == "first_event"
    assert ts["anchor"]["uncertainty_s"] >= 1.0
    assert ts["tagger_epoch_posix"] == pytest.approx(EPOCH, abs=0.5)
    assert "no PPS" in ts["note"]


def test_nothing_recorded_gives_no_anchor() -> None:
    ts = TimescaleTracker(pps_channel=None).section()
    assert ts["anchor"] is None
    assert ts["tagger_epoch_utc"] is None
