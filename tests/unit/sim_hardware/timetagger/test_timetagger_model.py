"""TimeTaggerModel and PoissonSource: rates, discriminator, delays, faults, slicing."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.clock import WarpClock
from sim_hardware.devices.timetagger import PoissonSource, SliceClock, TimeTaggerModel
from sim_hardware.faults import FaultInjector, FaultKind

T0 = 1_700_000_000.0


def test_poisson_source_rates_sorted_and_channels() -> None:
    src = PoissonSource({1: 1e5, 2: 3e5}, origin=T0, seed=1)
    t_ps, ch = src.events(T0 + 1.0, T0 + 1.1)
    assert t_ps.dtype == np.int64
    assert ch.dtype == np.uint8
    assert bool(np.all(np.diff(t_ps) >= 0))
    assert t_ps[0] >= 10**12
    assert t_ps[-1] < 1.1 * 10**12
    n1, n2 = int((ch == 1).sum()), int((ch == 2).sum())
    # Poisson: mean 1e4 and 3e4, 5 sigma bounds
    assert abs(n1 - 1e4) < 5 * 100
    assert abs(n2 - 3e4) < 5 * 174


def test_discriminator_enable_delay_and_sort() -> None:
    clock = WarpClock(T0)
    src = PoissonSource({1: 1e5, 2: 1e5, 3: 1e5}, origin=T0, seed=2)
    model = TimeTaggerModel(clock, src, n_channels=4)
    model.configure(2, enabled=False)
    model.configure(3, threshold_v=0.2)  # positive threshold never fires on NIM pulses
    model.configure(1, delay_ps=5_000_000)
    sl = model.detect(T0, T0 + 0.01)
    assert set(np.unique(sl.channel).tolist()) == {1}
    assert bool(np.all(np.diff(sl.t_ps) >= 0))
    assert sl.t_ps.min() >= 5_000_000


def test_delay_reorders_channels() -> None:
    clock = WarpClock(T0)
    model = TimeTaggerModel(clock, PoissonSource({1: 1e6, 2: 1e6}, origin=T0, seed=3))
    model.configure(2, delay_ps=-1_000_000)  # the model accepts any int; SCPI bounds it
    sl = model.detect(T0 + 1, T0 + 1.001)
    assert bool(np.all(np.diff(sl.t_ps) >= 0))


def test_latch_and_clock_jump_faults() -> None:
    clock = WarpClock(T0)
    faults = FaultInjector(clock, "tt")
    model = TimeTaggerModel(clock, PoissonSource({1: 1e5, 2: 1e5}, origin=T0), faults=faults)
    faults.inject(FaultKind.LATCH, at=T0 + 10, duration=5, channel=2)
    faults.inject(FaultKind.CLOCK_JUMP, at=T0 + 20, jump_ps=7_000_000_000)
    assert set(np.unique(model.detect(T0 + 11, T0 + 11.01).channel).tolist()) == {1}
    assert set(np.unique(model.detect(T0 + 16, T0 + 16.01).channel).tolist()) == {1, 2}
    before = model.detect(T0 + 19, T0 + 19.001).t_ps
    after = model.detect(T0 + 21, T0 + 21.001).t_ps
    assert before.max() < 19.001e12
    assert after.min() >= 21e12 + 7e9


def test_counter_scales_to_integration_time() -> None:
    clock = WarpClock(T0 + 100)
    model = TimeTaggerModel(clock, PoissonSource({1: 2e5}, origin=T0, seed=4))
    value = model.counter(1, 1.0)
    # the counter samples 10 ms (a probe must not stall the emulated plant) and scales it:
    # 2e3 counts, so 5 sigma of the scaled value is 5 * sqrt(2e3) * 100
    assert abs(value - 2e5) < 5 * np.sqrt(2e3) * 100
    with pytest.raises(ValueError, match=r"inputs are 1\.\.4"):
        model.counter(9, 1.0)


async def test_slices_are_contiguous_and_gated_by_recording() -> None:
    clock = WarpClock(T0, rate=50.0)
    model = TimeTaggerModel(clock, PoissonSource({1: 1e5}, origin=T0, seed=5))
    slicer = SliceClock(model, slice_s=0.02)
    assert len((await slicer.next()).t_ps) == 0  # not recording
    model.recording = True
    assert len((await slicer.next()).t_ps) == 0  # RAW1:SEND off
    model.raw_send[1] = True
    a = await slicer.next()
    b = await slicer.next()
    assert a.t1 == b.t0
    assert len(a.t_ps) > 0
    assert a.t_ps[-1] <= b.t_ps[0]
