"""Interface conformance suites: the behaviour every backend of an interface must show.

Suites: :func:`mount_conformance`, :func:`rotator_conformance`, :func:`analyzer_conformance`
and :func:`timetagger_conformance`.

Each suite is an async function taking an *unconnected* backend; it connects, exercises the
interface through its public methods only, and closes (twice: close is idempotent). A
failure raises ``AssertionError`` naming the check. Run them against every driver talking
to its emulator over the real transport, and against a real device with ``--device-url``.

The suites move hardware: give them a device that may move freely inside its limits.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import numpy as np

from drivers.clock import Clock
from drivers.datatypes import (
    AltAz,
    AnalyzerMode,
    ChannelConfig,
    EventBlock,
    MountCapability,
    MountState,
    Trajectory,
)
from drivers.errors import LimitViolation
from drivers.interfaces import Mount, PolarizationAnalyzer, Rotator, TimeTagger


@dataclass(frozen=True)
class MountChecks:
    """Tuning of :func:`mount_conformance` for a particular device."""

    position_tolerance_deg: float = 0.05  #: e.g. rotctld carries 0.01 deg
    follow_duration_s: float = 4.0  #: clock seconds of trajectory to follow
    follow_span_deg: float = 2.0  #: azimuth travelled during the follow check


def _near(a: AltAz, b: AltAz, tol: float) -> bool:
    return abs(a.az_deg - b.az_deg) <= tol and abs(a.el_deg - b.el_deg) <= tol


async def mount_conformance(
    mount: Mount, *, clock: Clock, checks: MountChecks = MountChecks()
) -> None:
    """Connect, slew, refuse an out-of-limits target, stop, follow, park, close twice."""
    assert isinstance(mount, Mount), "backend does not satisfy the Mount protocol"
    await mount.connect()
    try:
        limits = mount.limits
        tol = checks.position_tolerance_deg
        start = await mount.position()
        assert limits.el.min_deg - tol <= start.el_deg <= limits.el.max_deg + tol, (
            f"reported elevation {start.el_deg} is outside the mount's own limits"
        )
        az_mid = (limits.az.min_deg + limits.az.max_deg) / 2.0
        el_mid = min(max(45.0, limits.el.min_deg + 5.0), limits.el.max_deg - 5.0)
        target = AltAz(az_mid + 10.0, el_mid)
        await mount.slew_to(target)
        reached = await mount.position()
        assert _near(reached, target, tol), f"slew_to({target}) ended at {reached}"

        # Out of limits: refused before anything moves.
        bad = AltAz(az_mid, limits.el.max_deg + 5.0)
        try:
            await mount.slew_to(bad)
        except LimitViolation:
            pass
        else:
            raise AssertionError(f"slew_to({bad}) beyond the elevation limit was not refused")
        still = await mount.position()
        assert _near(still, reached, tol), f"a refused slew moved the mount to {still}"

        # Cancelling a slew stops the axes where they are.
        far = AltAz(az_mid - 60.0, el_mid)
        task = asyncio.create_task(mount.slew_to(far))
        await clock.sleep(0.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await mount.stop()
        first = await mount.position()
        await clock.sleep(1.0)
        second = await mount.position()
        assert _near(first, second, tol), f"mount kept moving after stop: {first} -> {second}"
        assert not _near(second, far, tol), "the cancelled slew was not stopped"
        status = await mount.status()
        assert status.state is not MountState.SLEWING, f"status after stop is {status.state}"

        # Follow a short trajectory starting now; end near its last sample.
        here = await mount.position()
        await mount.slew_to(AltAz(here.az_deg, el_mid))
        t0 = clock.now() + 0.5
        t = t0 + np.linspace(0.0, checks.follow_duration_s, 41)
        az = here.az_deg + np.linspace(0.0, checks.follow_span_deg, 41)
        traj = Trajectory(t, az, np.full_like(t, el_mid))
        await mount.follow(traj)
        end = await mount.position()
        last = AltAz(float(az[-1]), el_mid)
        assert _near(end, last, max(tol, 0.1)), f"after follow the mount is at {end}, not {last}"

        if MountCapability.PARK in mount.capabilities:
            await mount.park()
            parked = await mount.status()
            assert parked.state is MountState.PARKED, f"state after park is {parked.state}"
    finally:
        await mount.close()
        await mount.close()


async def rotator_conformance(
    rotator: Rotator, *, clock: Clock, tolerance_deg: float = 0.05
) -> None:
    """Connect, home, absolute moves (modulo 360), stop during a move, close twice."""
    assert isinstance(rotator, Rotator), "backend does not satisfy the Rotator protocol"
    await rotator.connect()
    try:

        def diff(a: float, b: float) -> float:
            return abs((a - b + 180.0) % 360.0 - 180.0)

        await rotator.home()
        assert diff(await rotator.angle(), 0.0) <= tolerance_deg, "not at 0 deg after home()"
        for command, expected in ((30.0, 30.0), (390.0, 30.0), (-10.0, 350.0), (179.5, 179.5)):
            await rotator.move_to(command)
            got = await rotator.angle()
            assert 0.0 <= got < 360.0, f"angle() must be in [0, 360), got {got}"
            assert diff(got, expected) <= tolerance_deg, f"move_to({command}) ended at {got}"

        task = asyncio.create_task(rotator.move_to(0.5))
        await clock.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await rotator.stop()
        first = await rotator.angle()
        await clock.sleep(0.5)
        assert diff(first, await rotator.angle()) <= tolerance_deg, "rotator moved after stop"
    finally:
        await rotator.close()
        await rotator.close()


def _diff180(a: float, b: float) -> float:
    """Signed difference a - b of half-wave-plate angles, folded into [-90, 90)."""
    return (a - b + 90.0) % 180.0 - 90.0


def _mode(analyzer: PolarizationAnalyzer) -> AnalyzerMode:
    return analyzer.mode


async def analyzer_conformance(
    analyzer: PolarizationAnalyzer, *, clock: Clock, tolerance_deg: float = 0.05
) -> None:
    """Connect; compensation turns the plate by theta/2 (mod 180) and the plate gets there;
    Bell mode shifts every command by one constant and re-applies at once; close twice.

    The calibration and Bell offsets are station-specific, so only differences are checked.
    """
    assert isinstance(analyzer, PolarizationAnalyzer), "backend is not a PolarizationAnalyzer"
    del clock  # moves are bounded by the rotator; nothing here waits on time
    await analyzer.connect()
    try:
        cmap = analyzer.channel_map
        assert len({cmap.h, cmap.v, cmap.d, cmap.a}) == 4, f"channel map {cmap} not distinct"
        await analyzer.set_mode(AnalyzerMode.KEY)
        assert _mode(analyzer) is AnalyzerMode.KEY, f"mode is {_mode(analyzer)} after KEY"
        base = await analyzer.compensate(0.0)
        key: dict[float, float] = {}
        for theta in (40.0, -100.0, 400.0, 721.5):
            got = await analyzer.compensate(theta)
            key[theta] = got
            turn = _diff180(got, base)
            assert abs(_diff180(turn, theta / 2.0)) <= tolerance_deg, (
                f"compensate({theta}) turned the plate by {turn:.4f} deg, not theta/2 (mod 180)"
            )
            measured = await analyzer.hwp_angle()
            assert abs(_diff180(measured, got)) <= tolerance_deg, (
                f"compensate({theta}) commanded {got:.4f} deg but the plate is at {measured:.4f}"
            )
        # Bell mode: set_mode re-applies the last compensation (theta = 721.5) at once.
        await analyzer.set_mode(AnalyzerMode.BELL)
        assert _mode(analyzer) is AnalyzerMode.BELL, f"mode is {_mode(analyzer)} after BELL"
        shift = _diff180(await analyzer.hwp_angle(), key[721.5])
        for theta in (40.0, -100.0):
            got = await analyzer.compensate(theta)
            assert abs(_diff180(_diff180(got, key[theta]), shift)) <= tolerance_deg, (
                f"Bell mode shifts compensate({theta}) by {_diff180(got, key[theta]):.4f} deg, "
                f"but shifted the re-applied setting by {shift:.4f} deg"
            )
        await analyzer.set_mode(AnalyzerMode.KEY)
        back = await analyzer.hwp_angle()
        assert abs(_diff180(back, key[-100.0])) <= tolerance_deg, (
            f"back in key mode the plate is at {back:.4f} deg, not {key[-100.0]:.4f}"
        )
    finally:
        await analyzer.close()
        await analyzer.close()


async def timetagger_conformance(
    tagger: TimeTagger,
    *,
    clock: Clock,
    channels: tuple[int, ...] = (1, 2, 3, 4),
    blocks: int = 5,
    wall_timeout_s: float = 20.0,
) -> None:
    """Configure, start, stream ``blocks`` blocks (consecutive seq, int64 ps, sorted), stop."""
    assert isinstance(tagger, TimeTagger), "backend does not satisfy the TimeTagger protocol"
    del clock  # streaming is paced by the device; bounds below are wall time
    await tagger.connect()
    try:
        await tagger.configure({c: ChannelConfig(enabled=True) for c in channels})
        rates = await tagger.count_rates()
        assert set(channels) <= set(rates), f"count_rates() lacks channels: {sorted(rates)}"
        assert all(r >= 0 for r in rates.values()), f"negative count rate in {rates}"
        await tagger.start()
        stream = tagger.stream()
        seqs: list[int] = []
        last_t: int | None = None
        total = 0
        try:
            async with asyncio.timeout(wall_timeout_s):
                async for block in stream:
                    assert isinstance(block, EventBlock), f"stream yielded {type(block).__name__}"
                    assert block.t_ps.dtype == np.int64
                    assert block.channel.dtype == np.uint8
                    if len(block):
                        assert bool(np.all(np.diff(block.t_ps) >= 0)), "times decrease in a block"
                        if last_t is not None:
                            assert int(block.t_ps[0]) >= last_t, "times decrease across blocks"
                        last_t = int(block.t_ps[-1])
                        unknown = set(np.unique(block.channel).tolist()) - set(channels)
                        assert not unknown, f"events on channels that were not enabled: {unknown}"
                    total += len(block)
                    seqs.append(block.seq)
                    if len(seqs) >= blocks:
                        break
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        consecutive = list(range(seqs[0], seqs[0] + len(seqs)))
        assert seqs == consecutive, f"block seq not consecutive: {seqs}"
        assert total > 0, f"{blocks} blocks carried no events"
        await tagger.stop()
    finally:
        await tagger.close()
        await tagger.close()
