"""Executing one pass: PREPOSITION → WAIT_AOS → TRACK (recording) → STOW.

During TRACK four tasks run side by side until LOS:

- **follow**: the mount driver streams the feed-forward trajectory at ``[tracking] rate_hz``
  (>= 10 Hz) — it owns the commanding cadence, so a slow monitor never delays a target;
- **monitor**: reads the actual position at ``[watchdog] monitor_hz``, logs commanded vs
  actual, and flags a following error above ``[tracking] tolerance_deg`` (the beam budget:
  the receiver field of view) once per episode as an ``alarm`` event;
- **compensation**: drives the HWP along θ(t)/2 (+ offset) with a deadband, so the
  analyzer's H axis stays on the satellite's H axis (physics: a frame error δ shows as an
  error rate sin²δ in the correlations);
- **recording**: streams the time tagger into the pass bundle and derives per-channel
  count rates from the stream itself (no extra device traffic).

The mount is the only device whose loss always ends the pass: if it cannot be commanded
(a command fails, or its following error stays beyond the beam for ``[watchdog]
mount_lost_s``) the pass is aborted and the mount is parked (if even that fails the
controller goes to FAULT). Waveplate and tagger losses follow ``[watchdog]`` (``degrade``:
alarm, carry on; ``safe``: abort); the tagger's control plane is probed every
:data:`TAGGER_PROBE_S` under either policy, because the stream can flow on while the
controller behind it is gone. Device failures are alarmed once per episode
(station/daemon/episodes.py). Recording never depends on MQTT: the bundle is written
whatever the bus does, and an abort closes it with status ``aborted`` after draining what
the tagger had sent (or says in its ``quality`` that it could not).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from drivers.clock import Clock
from drivers.datatypes import AltAz, ChannelConfig, Trajectory
from drivers.errors import DeviceError, DeviceTimeout, LimitViolation
from drivers.interfaces import TimeTagger
from drivers.supervision import Supervisor
from station.config import StationConfig
from station.daemon.devices import StationDevices, gated_legs
from station.daemon.episodes import DeviceEpisodes
from station.daemon.live_publish import LivePublisher, Sink, live_publisher
from station.daemon.schedule import Entry, PassOutcome
from station.daemon.states import PassState, PassStateMachine
from station.daemon.stream_health import HealthAlarm, StreamHealth
from station.recording import BundleWriter, RecordingError, bundle_dir_name
from station.recording.timescale import EVENT_TIME_ZERO, TimescaleTracker
from station.tracking.elements import OrbitElements, iso
from station.tracking.feedforward import braking_lead
from station.tracking.mountplan import TrajectoryInfeasible
from station.tracking.planner import PassPlan, plan_for_pass, safety_gate
from station.tracking.polframe import TRAIN_PARITY, source_frame_angles
from station.tracking.safety import SafetyViolation

log = logging.getLogger(__name__)

Alarm = Callable[[str, str], Awaitable[None]]  #: (kind, message)

DRAIN_S = 10.0  #: wall bound on draining the tagger stream after stop
TAGGER_PROBE_S = 5.0  #: clock period of the tagger's control-plane health probe
#: a probe answered later than this (clock s) is a slow control plane: a healthy tagger
#: answers a counter query in milliseconds (the emulator's ``slow`` fault delays 5 s)
TAGGER_SLOW_S = 2.0
TAGGER_SLOW_PROBES = 2  #: consecutive slow probes that open an episode (not one load spike)
#: a mount position read unanswered this long (clock s) opens a ``mount`` episode: a healthy
#: link answers in milliseconds (the emulator's ``slow`` fault delays 5 s, ``hang`` forever)
MOUNT_REPLY_S = 3.0
PLAN_TRIES = 3
REARM_S = 10.0  #: in tolerance this long (clock s) before a new pointing alarm
EDGE_S = 1.0  #: planned track starts this long after AOS and ends before LOS (s)
LAG_PERIOD_S = 0.1  #: the loop-lag probe's period (clock s)
HEALTH_TICK_S = 0.5  #: how often a silent tagger stream is looked for (clock s)
#: loop lag (clock s) above which a warped rehearsal stops being faithful: at the ~1 deg/s of
#: a zenith pass, 0.05 s behind the line of sight is half the 0.1 deg receiver field of view
LAG_ALARM_S = 0.05


def tle_lines(elements: OrbitElements) -> tuple[str, str] | None:
    lines = [ln.strip() for ln in elements.text.splitlines()]
    one = next((ln for ln in lines if ln.startswith("1 ")), None)
    two = next((ln for ln in lines if ln.startswith("2 ")), None)
    return (one, two) if one and two else None


def config_snapshot(cfg: StationConfig) -> dict[str, Any]:
    """The station config as JSON-able data, for the bundle manifest."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, float | int | str | bool) or value is None:
            return value
        if hasattr(value, "value"):  # enums
            return plain(value.value)
        return str(value)

    out = plain(cfg)
    assert isinstance(out, dict)
    return out


class PassRun:
    """One pass, from planning to stow. Create, then await :meth:`run` (cancel = abort).

    ``telemetry`` (latest rates and waveplate values) and ``pointing_samples`` (drained in
    batches) are what the controller publishes.
    """

    #: why a device under the "safe" watchdog policy ended the pass ("" if none): the
    #: controller puts the station in FAULT (until ``reset``) after the stow
    safe_fault: str = ""

    def __init__(
        self,
        cfg: StationConfig,
        devices: StationDevices,
        clock: Clock,
        elements: OrbitElements,
        entry: Entry,
        machine: PassStateMachine,
        alarm: Alarm,
        *,
        episodes: DeviceEpisodes | None = None,
    ) -> None:
        self.cfg, self.devices, self.clock = cfg, devices, clock
        self.elements, self.entry, self.machine = elements, entry, machine
        self._alarm = alarm

        async def publish(kind: str, message: str, level: str) -> None:
            await alarm(kind, message)

        #: device-failure episodes (the controller shares its own with the supervisors)
        self.episodes = episodes if episodes is not None else DeviceEpisodes(publish, clock)
        #: the controller cancelled this pass (it cancels once: a second cancel would cut
        #: the drain of the stream or the stow short)
        self.abort_requested = False
        #: the pass is closing its bundle and stowing: not to be cancelled any more
        self.finishing = False
        #: why the stream could not be drained after stop ("" if it was): events lost
        self.drain_failure = ""
        #: acquisition stop requested: the drain's backlog arrives late and then ends, which
        #: the stream-health checks would take for a latch or a stall
        self._stopping = False
        self.gate = safety_gate(cfg)
        self.plan: PassPlan | None = None
        self.bundle: BundleWriter | None = None
        self.manifest: dict[str, Any] | None = None
        self.telemetry: dict[str, Any] = {}
        self.pointing_samples: list[tuple[float, AltAz, float]] = []
        self.max_error_deg = 0.0
        self.errors_deg: list[float] = []  #: every monitor sample (5 Hz: ~3000 per pass)
        self.abort_reason = "aborted by operator"
        self.timescale = TimescaleTracker(cfg.daemon.timetagger.pps_channel)
        analyzer_channels = cfg.daemon.analyzer.channels
        self.health = StreamHealth(
            channels=(
                analyzer_channels.h,
                analyzer_channels.v,
                analyzer_channels.d,
                analyzer_channels.a,
            ),
            pps_channel=cfg.daemon.timetagger.pps_channel,
        )
        self.max_loop_lag_s = 0.0
        self.lag_episodes: list[dict[str, float]] = []
        #: discontinuities of the tagger's block sequence seen while recording (alarmed)
        self.stream_gaps: list[dict[str, int]] = []
        self.mount_lost = False
        self.stow_failed = False
        self._last_hwp: float | None = None
        #: where live frames go (the controller sets ``StationBus.publish_raw`` on
        #: ``live/events``); None: no live channel
        self.live_sink: Sink | None = None
        self.live: LivePublisher | None = None

    # ------------------------------------------------------------------ top level

    async def run(self) -> PassOutcome:
        """Execute the pass; returns its outcome (never raises for device trouble)."""
        outcome, reason = PassOutcome.COMPLETE, ""
        try:
            await self._preposition()
            await self._wait_aos()
            await self._track()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            outcome, reason = PassOutcome.ABORTED, self.abort_reason
        except (SafetyViolation, TrajectoryInfeasible) as exc:
            outcome, reason = PassOutcome.FAILED, f"refused by the safety gate: {exc}"
        except LimitViolation as exc:  # a device refused a setting or a target
            outcome, reason = PassOutcome.FAILED, f"refused by a device: {exc}"
        except DeviceError as exc:
            outcome, reason = PassOutcome.ABORTED, f"device error: {exc}"
            self.mount_lost = self.mount_lost or exc.device == self.devices.mount.device.url
        except RecordingError as exc:
            outcome, reason = PassOutcome.FAILED, f"recording failed: {exc}"
        self.finishing = True
        if self.mount_lost:
            await self.episodes.escalate(
                "mount", "pass_aborted", f"pass aborted, mount parked: {reason}", level="error"
            )
        if outcome is not PassOutcome.COMPLETE:
            log.warning("%s: pass %s %s: %s", self.cfg.name, self.entry.id, outcome.value, reason)
            if self.machine.state is not PassState.IDLE:
                self.machine.to(PassState.ABORT, self.clock.now(), reason)
        await self._finish_recording("complete" if outcome is PassOutcome.COMPLETE else "aborted")
        await self._stow(reason or "pass complete")
        self.entry.outcome, self.entry.reason = outcome, reason
        return outcome

    # ------------------------------------------------------------------ phases

    async def _plan(self) -> PassPlan:
        """Plan from the mount's position; a pass already under way is joined late."""
        here = await self.devices.position()
        # AOS/LOS sit exactly on the horizon limit (found by bisection); plan EDGE_S inside
        # them so the end samples are not refused by the gate for a rounding error.
        p = self.entry.pass_
        p = dataclasses.replace(p, aos_s=p.aos_s + EDGE_S, los_s=p.los_s - EDGE_S)
        margin = 5.0
        for _ in range(PLAN_TRIES):
            # the slew is checked below, where a dog-leg may replace a refused straight slew
            plan = await asyncio.to_thread(
                plan_for_pass, self.cfg, self.elements, p, start=here, check_safety=False
            )
            self.gate.check_trajectory(plan.mount.trajectory)
            if plan.mount.preposition_start_s >= self.clock.now():
                return plan
            late_aos = self.clock.now() + plan.mount.preposition_slew_s + margin
            if late_aos >= p.los_s - 5.0:
                break
            p = dataclasses.replace(p, aos_s=max(p.aos_s, late_aos))
            margin *= 2
        raise TrajectoryInfeasible(f"pass {self.entry.id} can no longer be reached before LOS")

    def slew_legs(self, here: AltAz, target: AltAz, t_s: float) -> list[AltAz]:
        """Waypoints of a gate-approved slew: straight, or a dog-leg one axis at a time.

        A straight two-axis slew down to a low pre-position can dip under a rising
        horizon mask (or a wall) before the azimuth arrives; slewing in azimuth at the
        current elevation first, then descending, is what a careful operator does. The
        same rule as the operator's park and goto (:func:`gated_legs`).
        """
        return gated_legs(self.gate, here, target, t_s)

    async def _preposition(self) -> None:
        self.plan = plan = await self._plan()
        target = plan.mount.preposition
        self.slew_legs(plan.mount.start, target, self.clock.now())
        lead = self.cfg.daemon.schedule.preposition_lead_s
        start = plan.pass_.aos_s - lead - plan.mount.preposition_slew_s
        if start > self.clock.now():
            await self.clock.sleep_until(start)
        legs = self.slew_legs(await self.devices.position(), target, self.clock.now())
        self.machine.to(PassState.PREPOSITION, self.clock.now(), f"slew to {target}")
        for leg in legs:
            await self.devices.mount.call(lambda m, leg=leg: m.slew_to(leg))  # type: ignore[misc]
        await self._home_plate()
        await self._compensate(plan.pass_.aos_s, force=True)
        if self.devices.tagger is not None:
            t = self.cfg.daemon.timetagger
            chans = {c: ChannelConfig(enabled=True, threshold_v=t.threshold_v) for c in t.channels}
            await self.devices.tagger.call(lambda d: d.configure(chans), retries=1)

    async def _wait_aos(self) -> None:
        assert self.plan is not None
        self.machine.to(PassState.WAIT_AOS, self.clock.now(), f"AOS {iso(self.plan.pass_.aos_s)}")
        start = self.plan.pass_.aos_s - self.cfg.daemon.recording.lead_s
        await self.clock.sleep_until(start)

    async def _track(self) -> None:
        assert self.plan is not None
        traj = self.plan.mount.trajectory
        self.gate.check_trajectory(traj)
        tracking = self.cfg.tracking
        commanded = traj
        if tracking.servo == "goto":
            commanded = braking_lead(traj, self.cfg.mount.limits, lead_s=tracking.effective_lead_s)
            self.gate.check_trajectory(commanded)
        self.machine.to(PassState.TRACK, self.clock.now(), "tracking")
        self.bundle = await self._open_bundle()
        record = asyncio.create_task(self._record(), name="record")
        helpers = [
            asyncio.create_task(self._monitor(), name="monitor"),
            asyncio.create_task(self._compensation(), name="compensation"),
            asyncio.create_task(self._lag_probe(), name="lag"),
        ]
        if self.devices.tagger is not None:
            helpers.append(asyncio.create_task(self._tagger_probe(), name="tagger-probe"))
        if self.live_sink is not None and self.bundle is not None:
            self.live = live_publisher(
                self.cfg, self.entry.id, self.elements, self.timescale, self._analyzer_section()
            )
            if self.live is not None:
                helpers.append(asyncio.create_task(self.live.pump(self.live_sink), name="live"))
        follow = asyncio.create_task(self._follow(commanded), name="follow")
        reported = False
        try:
            # the pass ends at LOS, or at once when a helper gives up under the "safe"
            # policy (waveplate) or the stream fails and the tagger's policy is "safe"
            watched: set[asyncio.Task[None]] = {follow, record, *helpers}
            while not follow.done():
                done, watched = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is follow or task.cancelled() or task.exception() is None:
                        continue
                    failure = task.exception()
                    assert failure is not None
                    if task is record:
                        if self._stream_failure_is_fatal(failure):
                            reported = True
                            await self._tagger_trouble(failure)
                        continue  # degrade: reported when the recording is stopped
                    raise failure
            await follow
        except DeviceError:
            if follow.done() and not follow.cancelled() and follow.exception() is not None:
                self.mount_lost = True
            raise
        finally:
            follow.cancel()
            for task in helpers:
                task.cancel()
            await asyncio.gather(follow, *helpers, return_exceptions=True)
            await self._stop_recording(record, reported=reported)

    def _stream_failure_is_fatal(self, failure: BaseException) -> bool:
        """A tagger stream failure that ends the pass at once ([watchdog] timetagger "safe")."""
        return self.cfg.daemon.watchdog.timetagger == "safe" and isinstance(failure, DeviceError)

    async def _tagger_probe(self) -> None:
        """Ask the tagger's control plane for its rates every TAGGER_PROBE_S (clock s).

        The stream can flow on while the controller behind it hangs, disconnects, answers
        garbage, errors or crawls (the emulator's SCPI/DLT faults; a real ID1000's control
        process): the recorder would never notice. Bound: an episode opens (a ``timetagger``
        alarm naming the fault) at most TAGGER_PROBE_S + the driver's request timeout
        (2 wall s, i.e. 20 clock s at 10x) after the control plane stops answering, and
        TAGGER_SLOW_PROBES probes (~2 x (TAGGER_PROBE_S + delay)) after it turns slow.
        The probe calls the driver directly, not through the supervisor: a supervisor
        reconnect would close the device and cut the stream that is still recording.
        Under ``degrade`` the pass goes on (one alarm per episode, ``recovered`` when it
        answers again); under ``safe`` the first failure aborts the pass.
        """
        tagger = self.devices.tagger
        assert tagger is not None
        slow = 0
        while True:
            await self.clock.sleep(TAGGER_PROBE_S)
            asked = self.clock.now()
            try:
                await tagger.device.count_rates()
            except DeviceError as exc:
                slow = 0
                await self.episodes.failed(
                    "timetagger", f"control plane not answering: {type(exc).__name__}: {exc}"
                )
                if self._stream_failure_is_fatal(exc):
                    await self._tagger_trouble(exc)
                    raise
                continue
            latency = self.clock.now() - asked
            if latency <= TAGGER_SLOW_S:
                slow = 0
                await self.episodes.recovered("timetagger", "control plane answers again")
                continue
            slow += 1
            if slow < TAGGER_SLOW_PROBES and not self.episodes.active("timetagger"):
                continue
            message = (
                f"control plane slow: a counter query took {latency:.1f} s "
                f"(limit {TAGGER_SLOW_S:g} s, {slow} probes in a row)"
            )
            await self.episodes.failed("timetagger", message)
            if self.cfg.daemon.watchdog.timetagger == "safe":
                crawl = DeviceTimeout(message, device=tagger.device.url)
                await self._tagger_trouble(crawl)
                raise crawl

    async def _follow(self, commanded: Trajectory) -> None:
        """Stream the trajectory to the mount and wait out the pass (to LOS + trail)."""
        assert self.plan is not None
        await self.devices.mount.call(lambda m: m.follow(commanded))
        trail = self.plan.pass_.los_s + self.cfg.daemon.recording.trail_s
        await self.clock.sleep_until(trail)

    async def _stow(self, reason: str) -> None:
        """Park the mount (checked by the safety gate); failure is reported as FAULT."""
        if self.machine.state is PassState.IDLE and self.plan is None:
            return
        if self.machine.state is not PassState.STOW:
            self.machine.to(PassState.STOW, self.clock.now(), reason)
        park = AltAz(self.cfg.mount.park_az_deg, self.cfg.mount.park_el_deg)
        try:
            with contextlib.suppress(DeviceError):
                await self.devices.mount.call(lambda m: m.stop())
            moved = await self.devices.park(self.gate, park, self.clock.now(), judge_target=False)
            if not moved:
                # still parked (a pass refused before its first slew): nothing moved, and
                # nothing for the gate to refuse; the Sun watch (sun_watch.py) reports a park
                # the Sun is on
                self.machine.to(PassState.IDLE, self.clock.now(), "already parked")
                return
        except (DeviceError, LimitViolation) as exc:
            self.stow_failed = True
            log.error("%s: stow failed: %s", self.cfg.name, exc)
            await self._alarm("stow_failed", f"could not park the mount: {exc}")
        self.machine.to(PassState.IDLE, self.clock.now(), "stowed")

    # ------------------------------------------------------------------ helpers

    async def _open_bundle(self) -> BundleWriter | None:
        if self.devices.tagger is None:
            await self._alarm("no_timetagger", "no time tagger configured: nothing recorded")
            return None
        start = self.clock.now_datetime()
        name = bundle_dir_name(self.cfg.name, start, self.entry.id.split("-", 1)[-1])
        path = Path(self.cfg.daemon.recording.data_dir) / name
        assert self.plan is not None
        p = self.plan.pass_
        bundle = await BundleWriter.create(
            path,
            clock=self.clock,
            station=self.cfg.name,
            run_start_utc=start,
            tle=tle_lines(self.elements),
            config=config_snapshot(self.cfg),
            channel_map=self.cfg.daemon.analyzer.channels,
            info={
                "pass_id": self.entry.id,
                "aos_utc": iso(p.aos_s),
                "los_utc": iso(p.los_s),
                "max_elevation_deg": p.max_elevation_deg,
                "analyzer_mode": self.cfg.daemon.analyzer.mode.value,
                "campaign": self.entry.campaign,
                "timetagger": self.devices.tagger.device.url,
                # the tagger counts on its own timescale: the manifest's `timescale` section
                # pins its epoch to UTC from the PPS edges (station/recording/timescale.py)
                "time_base": EVENT_TIME_ZERO,
            },
            max_chunk_s=self.cfg.daemon.recording.max_chunk_s,
        )
        bundle.annotate("analyzer", self._analyzer_section())
        self.entry.bundle = str(path)
        return bundle

    def _analyzer_section(self) -> dict[str, Any]:
        """What the analyzer's outputs measured, in the source frame (for the analysis).

        The compensated analyzer measures the source-frame angles p·(β − 2·b) for its H
        (β = 0) and D (β = 45) outputs, p the parity of train + plate and b the Bell-mode
        plate offset (station/tracking/polframe.py; docs/tracking.md).
        """
        a = self.cfg.daemon.analyzer
        pol = self.cfg.polarization
        bell = a.bell_offset_deg if a.mode.value == "bell" else 0.0
        parity = TRAIN_PARITY[pol.optical_train]
        h, d = source_frame_angles(parity, bell)
        return {
            "mode": a.mode.value,
            "source_state": pol.source_state,
            "optical_train": pol.optical_train,
            "parity": parity,
            "plate_offset_deg": bell,
            "hwp_calibration_deg": pol.hwp_offset_deg,
            "compensated": self.devices.hwp is not None,
            "source_frame_angles_deg": {"H": h, "V": h + 90.0, "D": d, "A": d + 90.0},
            "basis": {"H": 0, "V": 0, "D": 1, "A": 1},
            "outcome": {"H": 0, "V": 1, "D": 0, "A": 1},
        }

    async def _record(self) -> None:
        """Tagger stream → bundle, rates from the stream itself (1 s of clock per row)."""
        tagger = self.devices.tagger
        if tagger is None or self.bundle is None:
            return
        bundle = self.bundle
        await tagger.call(lambda d: d.start())
        # a hung tagger stops the block loop, so the stall check runs on its own ticker
        ticker = asyncio.create_task(self._health_ticker(), name="stream-health")
        try:
            await self._record_blocks(tagger, bundle)
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)

    async def _record_blocks(self, tagger: Supervisor[TimeTagger], bundle: BundleWriter) -> None:
        counts: dict[int, int] = {}
        window_start = self.clock.now()
        total = 0
        async for block in tagger.device.stream():
            await bundle.events.write(block)
            received = self.clock.now()
            self.timescale.observe(block, received)
            if self.live is not None:
                self.live.feed(block, received)  # bounded, never raises
            await self._health_alarms(self.health.observe(block, received))
            gaps = bundle.events.gaps  # the recorder's own sequence check (every gap listed)
            if len(gaps) > len(self.stream_gaps):
                for gap in gaps[len(self.stream_gaps) :]:
                    await self._stream_gap(gap.after_block_seq, gap.next_block_seq, gap.kind)
            total += len(block.t_ps)
            if len(block.channel):
                chans, n = np.unique(block.channel, return_counts=True)
                for c, k in zip(chans.tolist(), n.tolist(), strict=True):
                    counts[c] = counts.get(c, 0) + k
            now = self.clock.now()
            if now - window_start >= 1.0:
                rates = {c: k / (now - window_start) for c, k in counts.items()}
                bundle.log_rates(now, rates)
                self.telemetry["rates_hz"] = {str(c): round(r, 1) for c, r in sorted(rates.items())}
                self.telemetry["events"] = total
                counts, window_start = {}, now

    async def _health_ticker(self) -> None:
        """Look for a silent stream (hung, disconnected, frozen tagger) between blocks."""
        while True:
            await self.clock.sleep(HEALTH_TICK_S)
            await self._health_alarms(self.health.tick(self.clock.now()))

    async def _health_alarms(self, alarms: list[HealthAlarm]) -> None:
        """Publish what the stream-health monitor found (station/daemon/stream_health.py);
        not while draining after stop (a backlog that ends is neither a latch nor a stall)."""
        for alarm in alarms:
            if self._stopping:
                log.info("%s: during the drain, not alarmed: %s", self.cfg.name, alarm.message)
                continue
            message = f"recovered: {alarm.message}" if alarm.cleared else alarm.message
            await self._alarm(alarm.kind, message)

    async def _stream_gap(self, after: int, got: int, kind: str) -> None:
        """A hole (or a step back) in the tagger's block numbers: events never reached us.

        The recorder lists every gap in the manifest; the pass says so at once (an alarm) and
        the bundle's ``quality`` marks its events incomplete, so a bundle that verifies is
        never mistaken for a complete recording.
        """
        gap = {"after_block_seq": after, "next_block_seq": got, "missing_blocks": got - after - 1}
        self.stream_gaps.append(gap)
        what = (
            f"{gap['missing_blocks']} block(s) of events lost"
            if kind == "missing"
            else "blocks out of order"
        )
        await self._alarm(
            "stream_gap",
            f"time tagger stream jumped from block {after} to {got}: {what}; the bundle's "
            "quality marks its events incomplete",
        )

    async def _stop_recording(self, record: asyncio.Task[None], *, reported: bool = False) -> None:
        """Stop acquisition and drain what the tagger still has (bounded).

        ``reported``: a stream failure was already alarmed (and raised) by the track.
        """
        tagger = self.devices.tagger
        self._stopping = True
        if tagger is not None and self.bundle is not None:
            try:
                await tagger.call(lambda d: d.stop())
            except DeviceError as exc:
                await self._alarm("timetagger", f"stopping acquisition failed: {exc}")
        done, _ = await asyncio.wait({record}, timeout=DRAIN_S)
        if not done:
            record.cancel()
            await asyncio.gather(record, return_exceptions=True)
            # what the tagger still had is lost: the manifest's quality says so
            self.drain_failure = f"stream did not end within {DRAIN_S:g} s (wall) of stop"
            await self._alarm("timetagger", self.drain_failure)
        elif record.cancelled():
            pass
        elif (failure := record.exception()) is not None:
            if isinstance(failure, RecordingError):
                raise failure
            if not reported:
                await self._tagger_trouble(failure)

    async def _tagger_trouble(self, exc: BaseException | None) -> None:
        message = f"time tagger failed: {exc}"
        await self._alarm("timetagger", message)
        if exc is not None and self._stream_failure_is_fatal(exc):
            assert isinstance(exc, DeviceError)
            self.safe_fault = f'time tagger ([watchdog] timetagger = "safe"): {exc}'
            raise exc

    async def _finish_recording(self, status: str) -> None:
        if self.bundle is None or self.manifest is not None:
            return
        timescale = self.timescale.section()
        self.bundle.annotate("timescale", timescale)
        self.bundle.annotate("quality", self._quality(timescale))
        if self.live is not None:  # what the live channel revealed: the offline key drops it
            analyzer = {**self._analyzer_section(), "live_channel": self.live.annotation()}
            self.bundle.annotate("analyzer", analyzer)
        try:
            self.manifest = await self.bundle.close(status)
        except RecordingError as exc:
            self.manifest = {"status": "failed", "error": str(exc)}
            await self._alarm("recording", str(exc))

    async def _monitor(self) -> None:
        """Actual vs commanded pointing; alarms once per out-of-tolerance episode."""
        assert self.plan is not None
        traj = self.plan.mount.trajectory
        period = 1.0 / self.cfg.daemon.watchdog.monitor_hz
        tolerance = self.cfg.tracking.tolerance_deg
        lost_after = self.cfg.daemon.watchdog.mount_lost_s
        out_since: float | None = None
        in_since: float | None = None
        alarmed = False
        while True:
            await self.clock.sleep(period)
            asked = self.clock.now()
            try:
                actual = await self._read_position()
            except DeviceError:
                continue  # the follow task owns mount failures
            # the position was read somewhere between request and reply: stamp the middle,
            # not the time the request was queued (a slow loop would hide its own lag)
            now = 0.5 * (asked + self.clock.now())
            target = traj.at(now)
            error = target.separation_deg(actual)
            if self.bundle is not None:
                self.bundle.log_pointing(now, target, actual)
            if len(self.pointing_samples) < 10_000:  # drained by the controller's telemetry
                self.pointing_samples.append((now, actual, error))
            self.max_error_deg = max(self.max_error_deg, error)
            self.errors_deg.append(error)
            if error <= tolerance:
                out_since = None
                in_since = now if in_since is None else in_since
                if now - in_since >= REARM_S:  # hysteresis: one alarm per episode
                    alarmed = False
                continue
            in_since = None
            out_since = now if out_since is None else out_since
            if not alarmed and now - out_since >= 1.0:
                alarmed = True
                await self._alarm(
                    "pointing",
                    f"following error {error:.4f} deg exceeds the {tolerance:g} deg tolerance "
                    f"for {now - out_since:.1f} s",
                )
            if now - out_since >= lost_after:
                # out of the beam this long: the mount does not do what it is told (a link
                # that answers too slowly to stream targets, a servo that ignores them)
                self.mount_lost = True
                raise DeviceTimeout(
                    f"the mount cannot be commanded: following error {error:.3f} deg beyond "
                    f"the {tolerance:g} deg beam for {now - out_since:.1f} s "
                    f"([watchdog] mount_lost_s = {lost_after:g})",
                    device=self.devices.mount.device.url,
                    hint="check the mount's link latency and servo; the pass was aborted",
                )

    async def _read_position(self) -> AltAz:
        """The mount's position, with a ``mount`` alarm when the reply is overdue.

        A hung mount surfaces as an error only after the driver's I/O timeouts (2 s of wall
        each, and a failed follow command is followed by the driver's own stop: 40 clock s
        at 10x); a reply overdue by MOUNT_REPLY_S of clock is said at once (the read goes
        on). A reply in time closes a mount episode (``recovered``).
        """
        read = asyncio.ensure_future(self.devices.position())
        try:
            done, _ = await asyncio.wait({read}, timeout=self.clock.to_wall(MOUNT_REPLY_S))
            if not done:
                await self.episodes.failed(
                    "mount",
                    f"no reply to a position read within {MOUNT_REPLY_S:g} s (clock): the "
                    "mount is not answering in time",
                )
                return await read
            position = read.result()
        finally:
            if not read.done():
                read.cancel()  # the driver's exchange itself is shielded and bounded
        await self.episodes.recovered("mount", "position reads answered in time")
        return position

    async def _lag_probe(self) -> None:
        """Measure the daemon's own loop lag against the (warped) clock; alarm when behind.

        A coroutine that asks to wake at t wakes at t + lag; on a loaded machine at a high
        warp the lag grows and every control loop (follow, compensation) falls behind the
        satellite. The lag is measured on the clock the pass runs on, so a warped rehearsal
        either stays physically faithful or says loudly that it is not: an alarm per
        episode and a ``quality`` section in the bundle manifest.
        """
        episode: dict[str, float] | None = None
        quiet_since = -float("inf")  #: end of the last alarmed episode (one alarm per REARM_S)
        while True:
            due = self.clock.now() + LAG_PERIOD_S
            await self.clock.sleep_until(due)
            lag = max(0.0, self.clock.now() - due)
            self.max_loop_lag_s = max(self.max_loop_lag_s, lag)
            if lag > LAG_ALARM_S and episode is None:
                episode = {"start_s": due, "max_lag_s": lag}
                if len(self.lag_episodes) < 1000:
                    self.lag_episodes.append(episode)
                if due - quiet_since >= REARM_S:
                    await self._alarm(
                        "loop_lag",
                        f"control loop {lag:.3f} s behind the clock (limit {LAG_ALARM_S:g} s): "
                        "pointing and compensation lag the satellite; the bundle is marked",
                    )
                quiet_since = due
            elif episode is not None:
                episode["max_lag_s"] = max(episode["max_lag_s"], lag)
                if lag <= LAG_ALARM_S / 2:
                    episode["end_s"] = due
                    quiet_since = due
                    episode = None

    def _quality(self, timescale: dict[str, Any]) -> dict[str, Any]:
        """How faithful the pass was: loop lag, stream latency, pointing (manifest section)."""
        latency = timescale.get("median_latency_s")
        faithful = not self.lag_episodes
        return {
            "faithful": faithful,
            "events_complete": not self.stream_gaps and not self.drain_failure,
            "stream_gaps": self.stream_gaps,
            "drain_failure": self.drain_failure or None,
            "stream_health": self.health.summary(),
            "max_loop_lag_s": round(self.max_loop_lag_s, 4),
            "lag_alarm_s": LAG_ALARM_S,
            "lag_episodes": self.lag_episodes,
            "median_stream_latency_s": latency,
            "max_pointing_error_deg": round(self.max_error_deg, 5),
            "note": "faithful: the control loops never fell more than lag_alarm_s behind the clock"
            if faithful
            else "NOT faithful: the control loops fell behind the clock "
            "(see lag_episodes); pointing and compensation lagged the satellite",
        }

    def _theta(self, t_s: float) -> float:
        """The frame angle θ (deg) at ``t_s``, right-handed about k (telemetry)."""
        assert self.plan is not None
        pol = self.plan.polarization
        return float(np.interp(t_s, pol.t_s, pol.theta_deg))

    def _compensation_angle(self, t_s: float) -> float:
        """x (deg) with the plate at x/2 + offset: θ, or 2ρ − θ behind a mirror train."""
        assert self.plan is not None
        pol = self.plan.polarization
        return float(np.interp(t_s, pol.t_s, pol.compensation_deg))

    async def _compensate(self, t_s: float, *, force: bool = False) -> None:
        analyzer, hwp = self.devices.analyzer, self.devices.hwp
        if analyzer is None or hwp is None:
            return
        theta = self._theta(t_s)
        x = self._compensation_angle(t_s)
        command = x / 2.0
        deadband = self.cfg.daemon.analyzer.deadband_deg
        if not force and self._last_hwp is not None and abs(command - self._last_hwp) < deadband:
            return
        try:
            commanded = await hwp.call(lambda _: analyzer.compensate(x))
            actual = await hwp.call(lambda _: analyzer.hwp_angle(), retries=1)
        except DeviceError as exc:
            # one alarm per episode (the supervisor's listener usually opened it already)
            await self.episodes.failed("hwp", f"polarization compensation failed: {exc}")
            if self.cfg.daemon.watchdog.hwp == "safe":
                self.safe_fault = f'waveplate ([watchdog] hwp = "safe"): {exc}'
                raise
            return
        await self.episodes.recovered("hwp", "compensation moves succeed again")
        self._last_hwp = command
        self.telemetry["hwp"] = {
            "theta_deg": round(theta, 3),
            "compensation_deg": round(x, 3),
            "commanded_deg": round(commanded, 3),
            "actual_deg": round(actual, 3),
        }
        if self.bundle is not None:
            self.bundle.log_waveplate(self.clock.now(), commanded, actual)

    async def _home_plate(self) -> None:
        """Home the compensation plate before each pass.

        A rotation stage reports angles from its home reference; until homed after a power
        cycle its readings are offset from the plate's true angle by wherever it woke up,
        and the calibration offset ``hwp_offset_deg`` (measured from home) means nothing.
        Homing every pass is cheap (an ELL14 homes in ~1 s) and also recovers a reference
        lost to a controller reset.
        """
        analyzer = self.devices.analyzer
        if self.devices.hwp is None or analyzer is None:
            return
        try:
            await self.devices.hwp.call(lambda _: analyzer.home())
        except DeviceError as exc:
            await self.episodes.failed("hwp", f"homing the compensation plate failed: {exc}")
            if self.cfg.daemon.watchdog.hwp == "safe":
                self.safe_fault = f'waveplate ([watchdog] hwp = "safe"): {exc}'
                raise

    async def _compensation(self) -> None:
        period = 1.0 / self.cfg.daemon.analyzer.update_hz
        while True:
            # command where the frame will be half a period ahead: the plate then lags
            # the frame by at most half a period of its rotation
            await self._compensate(self.clock.now() + period / 2.0)
            await self.clock.sleep(period)
