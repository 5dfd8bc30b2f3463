"""The controller cancels a pass once, and a fault always ends in FAULT (issue 10).

A mount losing its link goes ``degraded`` then ``failed``; each change used to call
``_abort``, i.e. cancel the pass task again while it was draining the tagger stream or
stowing. The second cancel cut the drain short (≈10 000 events sent but not in a bundle whose
manifest said ``events_complete``) or the stow, and left the abort's own ``task.result()``
raising CancelledError, so the station stayed ENABLED instead of FAULT. The real controller
(no broker: publishing is best effort) and a pass task that cleans up like ``PassRun.run``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from drivers.clock import WarpClock
from station.bus.connection import BrokerConfig
from station.config import load_station_config
from station.daemon.commands import load_station_elements
from station.daemon.controller import StationController
from station.daemon.schedule import PassOutcome
from station.daemon.states import SummaryState
from station.tracking.elements import parse_time

ROOT = Path(__file__).resolve().parents[4]
CLEANUP_S = 0.2  #: wall s the pass takes to drain and stow after a cancel


class PassStandIn:
    """What the controller reads of a running pass (``PassRun``'s abort attributes)."""

    def __init__(self) -> None:
        self.abort_requested = False
        self.finishing = False
        self.abort_reason = ""
        self.cleanups_cut = 0
        self.cleanups_done = 0

    async def run(self) -> PassOutcome:
        """Like ``PassRun.run``: a cancel is caught once, then the bundle is drained and
        the mount stowed (which a second cancel would cut)."""
        try:
            await asyncio.sleep(3600.0)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
        self.finishing = True
        try:
            await asyncio.sleep(CLEANUP_S)
        except asyncio.CancelledError:
            self.cleanups_cut += 1
            raise
        self.cleanups_done += 1
        return PassOutcome.ABORTED


def _controller(tmp: Path) -> StationController:
    cfg = load_station_config(ROOT / "configs/stations/delingha.toml")
    recording = dataclasses.replace(cfg.daemon.recording, data_dir=tmp / "data")
    cfg = dataclasses.replace(cfg, daemon=dataclasses.replace(cfg.daemon, recording=recording))
    clock = WarpClock(epoch=parse_time("2021-04-29T17:17:00Z"), rate=1.0)
    elements = load_station_elements(cfg, clock.now(), ROOT / "configs/satellites/micius-2021.tle")
    return StationController(cfg, clock, BrokerConfig(port=1), elements)


def _start(ctrl: StationController) -> PassStandIn:
    run = PassStandIn()
    ctrl.run = run  # type: ignore[assignment]
    ctrl._run_task = asyncio.create_task(run.run())
    return run


async def test_two_aborts_cancel_the_pass_once_and_both_see_its_outcome(tmp_path: Path) -> None:
    ctrl = _controller(tmp_path)
    run = _start(ctrl)
    await asyncio.sleep(0.01)

    async def second_abort() -> PassOutcome:
        await asyncio.sleep(CLEANUP_S / 4)  # the pass is draining and stowing by now
        assert run.finishing
        return await ctrl._abort("mount link failed")

    first, second = await asyncio.gather(ctrl._abort("mount link degraded"), second_abort())
    assert (first, second) == (PassOutcome.ABORTED, PassOutcome.ABORTED)
    assert run.cleanups_done == 1
    assert run.cleanups_cut == 0
    assert run.abort_reason == "mount link degraded"


async def test_a_fault_while_the_pass_is_finishing_still_ends_in_fault(tmp_path: Path) -> None:
    ctrl = _controller(tmp_path)
    ctrl.summary = SummaryState.ENABLED
    run = _start(ctrl)
    await asyncio.sleep(0.01)
    assert ctrl._run_task is not None
    ctrl._run_task.cancel()  # the pass ends by itself (e.g. its follow failed) ...
    await asyncio.sleep(0.01)
    assert run.finishing
    await ctrl._fault("mount link failed")  # ... while the link supervisor reports
    assert run.cleanups_cut == 0
    assert run.cleanups_done == 1
    assert ctrl.summary is SummaryState.FAULT
    assert ctrl.fault_reason == "mount link failed"
