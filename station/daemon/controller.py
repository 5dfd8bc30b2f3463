"""The station daemon: summary state, schedule loop, watchdogs, MQTT commands and telemetry.

One :class:`StationController` per station process. It owns the devices (behind
supervisors), the schedule and the pass in progress, and talks to the world only through
:class:`~station.bus.station_bus.StationBus`. Nothing it records depends on the bus: a
broker outage loses telemetry (counted), never events.

Topics it publishes (docs/mqtt-api.md): retained ``status`` (with the summary state),
retained ``state/pass``, ``state/devices``, ``state/schedule``; ``telemetry/pointing``
(batched samples), ``telemetry/rates``, ``telemetry/hwp``; ``event/pass_state``,
``event/pass_complete``, ``event/alarm``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from drivers.clock import Clock
from drivers.datatypes import AltAz, AnalyzerMode
from drivers.errors import DeviceError
from drivers.supervision import LinkState, SupervisorStatus
from station.bus.connection import BrokerConfig
from station.bus.envelope import Command
from station.bus.schema import CommandRejected
from station.bus.station_bus import CommandContext, StationBus
from station.config import StationConfig
from station.daemon.api import COMMANDS
from station.daemon.devices import StationDevices, gated_legs
from station.daemon.episodes import DeviceEpisodes
from station.daemon.pass_run import PassRun
from station.daemon.process_health import publish_process_health
from station.daemon.schedule import PassOutcome, Schedule, ScheduleError
from station.daemon.states import PassState, PassStateMachine, SummaryState, Transition
from station.daemon.sun_watch import PERIOD_S as SUN_WATCH_PERIOD_S
from station.daemon.sun_watch import SunWatch
from station.tracking.elements import OrbitElements, iso, parse_time
from station.tracking.planner import safety_gate

log = logging.getLogger(__name__)

START_AHEAD_S = 600.0  #: hand a pass to its runner this long before AOS (planning, slew)
ABORT_WAIT_S = 120.0  #: clock-second bound an abort/safe command waits for the stow


TRACK_POINTS = 200  #: bound on the planned sky track published in ``state/pass``


def _sky_track(t_s: Any, az_deg: Any, el_deg: Any) -> list[list[float]]:
    """``[[t, az, el], ...]`` (POSIX s, deg) downsampled evenly to <= TRACK_POINTS points."""
    idx = np.unique(np.linspace(0, len(t_s) - 1, min(len(t_s), TRACK_POINTS)).astype(int))
    return [
        [round(float(t_s[i]), 1), round(float(az_deg[i]), 2), round(float(el_deg[i]), 2)]
        for i in idx
    ]


class StationController:
    """Runs one station until :meth:`request_stop`.

    Args:
        cfg: the station config (devices, daemon sections).
        clock: the station clock (a WarpClock on the emulated rig).
        broker: the MQTT broker to use.
        elements: the orbit elements passes are predicted from.
        enable: start in ENABLED once the devices are connected.
    """

    def __init__(
        self,
        cfg: StationConfig,
        clock: Clock,
        broker: BrokerConfig,
        elements: OrbitElements,
        *,
        enable: bool = False,
    ) -> None:
        self.cfg, self.clock, self.elements = cfg, clock, elements
        self.summary = SummaryState.OFFLINE
        self.fault_reason = ""
        self._enable_on_start = enable
        self.machine = PassStateMachine(self._on_transition)
        #: one alarm per device-failure episode (station/daemon/episodes.py), shared by the
        #: link supervisors (each failed call, as it fails) and the pass (its own checks)
        self.episodes = DeviceEpisodes(self._episode_alarm, clock)
        self.devices = StationDevices.open(cfg, clock, self._on_link, self._on_device_error)
        decisions = Path(cfg.daemon.recording.data_dir) / cfg.name / "schedule-decisions.json"
        self.schedule = Schedule(cfg, elements, decisions)
        self.gate = safety_gate(cfg)
        #: the Sun against an idle mount (station/daemon/sun_watch.py: the policy)
        self.sun_watch = SunWatch(self.gate, lambda k, m, level: self.alarm(k, m, level=level))
        self.bus = StationBus(
            cfg.name,
            broker,
            clock,
            state=lambda: self.summary.value,
            client_id=cfg.daemon.mqtt.client_id,
            allowed_clients=cfg.daemon.mqtt.allowed_clients,
        )
        for spec in COMMANDS:
            self.bus.register(spec, getattr(self, f"_cmd_{spec.name}"))
        self.run: PassRun | None = None
        self._run_task: asyncio.Task[PassOutcome] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._schedule_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self.alarms: deque[dict[str, Any]] = deque(maxlen=100)
        self.completed: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ lifecycle

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def serve(self) -> None:
        """Connect, run the schedule until :meth:`request_stop`, then shut down safely."""
        await self.bus.start()
        with contextlib.suppress(TimeoutError):
            await self.bus.wait_connected(5.0)  # the station runs without a broker too
        try:
            if not await self._unless_stopped(self._connect_devices()):
                return  # SIGTERM while a device was still connecting (a silent one can take long)
            if self._enable_on_start and self.summary is SummaryState.STANDBY:
                await self._set_summary(SummaryState.ENABLED, "enabled at start")
            telemetry = asyncio.create_task(self._telemetry_loop(), name="telemetry")
            health = asyncio.create_task(
                publish_process_health(self.bus.publish_telemetry), name="process-health"
            )
            sun = asyncio.create_task(self._sun_watch_loop(), name="sun-watch")
            try:
                await self._schedule_loop()
            finally:
                for task in (telemetry, health, sun):
                    task.cancel()
                await asyncio.gather(telemetry, health, sun, return_exceptions=True)
        finally:
            await self._shutdown()

    async def _unless_stopped(self, work: Any) -> bool:
        """Run ``work``; False (and ``work`` cancelled) if a stop is requested first."""
        task = asyncio.create_task(work)
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            task.result()
            return True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False

    async def _connect_devices(self) -> None:
        errors = await self.devices.connect()
        await self._publish_devices()
        for role, error in errors.items():
            await self.alarm(role, f"could not connect: {error}", level="error")
        unwritable = await asyncio.to_thread(self._data_dir_problem)
        if unwritable:
            await self.alarm("recording", unwritable, level="error")
        if "mount" in errors:
            await self._set_summary(SummaryState.FAULT, f"mount: {errors['mount']}")
        elif unwritable:
            await self._set_summary(SummaryState.FAULT, unwritable)
        else:
            await self._set_summary(SummaryState.STANDBY, "devices connected")
        # every retained state a reader needs, from the start (not only after a first pass)
        await self._publish_pass()
        await self._fresh_schedule()
        await self.bus.publish_state("schedule", {"passes": self._schedule_json()})

    def _data_dir_problem(self) -> str | None:
        """Why the bundles could not be written (found at start, not at the first AOS)."""
        data_dir = Path(self.cfg.daemon.recording.data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            probe = data_dir / f".write-probe-{self.cfg.name}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            why = exc.strerror or str(exc)
            return f"data directory {data_dir} is not writable ({why}); no pass can be recorded"
        return None

    async def _shutdown(self) -> None:
        if self._run_task is not None and not self._run_task.done():
            await self._abort("daemon shutting down")
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.devices.close()
        await self.bus.stop()

    # ------------------------------------------------------------------ state

    async def _set_summary(self, state: SummaryState, reason: str) -> None:
        if state is self.summary:
            return
        log.info("%s: %s -> %s (%s)", self.cfg.name, self.summary.value, state.value, reason)
        self.summary = state
        self.fault_reason = reason if state is SummaryState.FAULT else ""
        await self.bus.publish_status()
        await self.bus.publish_event(
            "summary", {"state": state.value, "reason": reason, "level": "info"}
        )
        self._wake.set()

    def _on_transition(self, change: Transition) -> None:
        self._spawn(self._publish_pass(change))

    async def _publish_pass(self, change: Transition | None = None) -> None:
        run = self.run
        body: dict[str, Any] = {"state": self.machine.state.value}
        if run is not None:
            body["pass_id"] = run.entry.id
            body["aos_utc"] = iso(run.entry.pass_.aos_s)
            body["los_utc"] = iso(run.entry.pass_.los_s)
            if run.plan is not None:  # the planned sky track, for dashboards' sky plots
                look = run.plan.look
                body["track"] = _sky_track(look.t_s, look.az_deg, look.el_deg)
        if change is not None:
            body["previous"] = change.old.value
            body["reason"] = change.reason
            await self.bus.publish_event(
                "pass_state",
                {"from": change.old.value, "to": change.new.value, "reason": change.reason},
            )
        await self.bus.publish_state("pass", body)

    def _on_link(self, role: str, status: SupervisorStatus) -> None:
        self._spawn(self._link_changed(role, status))

    async def _link_changed(self, role: str, status: SupervisorStatus) -> None:
        await self._publish_devices()
        if status.state not in (LinkState.DEGRADED, LinkState.FAILED):
            return
        policy = getattr(self.cfg.daemon.watchdog, role)
        message = f"link {status.state.value}: {status.last_error}"
        level = "error" if policy == "safe" else "warning"
        # an escalation of the episode the first failed call opened (one alarm per level)
        await self.episodes.escalate(role, status.state.value, message, level=level)
        if policy == "safe":
            await self._fault(f"{role} {message}")

    def _on_device_error(self, role: str, error: DeviceError | None) -> None:
        """A supervised call failed (``error``) or succeeded after failures (None)."""
        if error is None:
            self._spawn(self.episodes.recovered(role))
        else:
            self._spawn(self.episodes.failed(role, f"{type(error).__name__}: {error}"))

    async def _episode_alarm(self, kind: str, message: str, level: str) -> None:
        await self.alarm(kind, message, level=level)

    async def _fault(self, reason: str) -> None:
        """Abort the pass in progress (if any) and go to FAULT, whatever the abort did.

        FAULT is set first (operators learn of it now, not after a stow that may wait for
        the failing device) and whatever the abort then does: an abort that finds the pass
        already finishing (or finished) must not leave the station ENABLED (issue 10: a mount
        disconnect ended ENABLED about one time in three).
        """
        await self._set_summary(SummaryState.FAULT, reason)
        try:
            if self._run_task is not None and not self._run_task.done():
                await self._abort(reason)
        except CommandRejected as exc:
            log.warning("%s: abort for a fault: %s", self.cfg.name, exc)

    async def _publish_devices(self) -> None:
        await self.bus.publish_state("devices", self.devices.snapshot())

    async def alarm(self, kind: str, message: str, *, level: str = "warning") -> None:
        body = {"kind": kind, "message": message, "level": level, "t_utc": iso(self.clock.now())}
        self.alarms.append(body)
        log.warning("%s alarm %s: %s", self.cfg.name, kind, message)
        await self.bus.publish_event("alarm", body)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ schedule

    async def _schedule_loop(self) -> None:
        while not self._stop.is_set():
            now = self.clock.now()
            try:
                await self._fresh_schedule()
            except ValueError as exc:
                await self.alarm("schedule", f"pass prediction failed: {exc}", level="error")
            if self.summary is SummaryState.ENABLED and self._run_task is None:
                entry = self.schedule.next_wanted(now)
                if entry is not None and entry.pass_.aos_s - now <= START_AHEAD_S:
                    self._start_pass(entry)
                    await self.bus.publish_state("schedule", {"passes": self._schedule_json()})
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.clock.to_wall(1.0))

    async def _fresh_schedule(self) -> Schedule:
        """The schedule, predicted now if it has not been yet (cheap when it has)."""
        async with self._schedule_lock:  # one prediction at a time (it runs in a thread)
            await asyncio.to_thread(self.schedule.refresh, self.clock.now())
        return self.schedule

    def _schedule_json(self) -> list[dict[str, Any]]:
        return self.schedule.to_json(self.clock.now())

    def _start_pass(self, entry: Any) -> None:
        entry.outcome = PassOutcome.RUNNING
        alarm = self.alarm

        async def pass_alarm(kind: str, message: str) -> None:
            await alarm(kind, message)

        self.run = PassRun(
            self.cfg,
            self.devices,
            self.clock,
            self.elements,
            entry,
            self.machine,
            pass_alarm,
            episodes=self.episodes,
        )
        bus = self.bus

        async def live_sink(payload: bytes) -> bool:
            # the live classical channel: QoS 0, best effort (docs/mqtt-api.md)
            return await bus.publish_raw("live/events", payload, qos=0, retain=False)

        self.run.live_sink = live_sink
        self._run_task = asyncio.create_task(self.run.run(), name=f"pass-{entry.id}")
        self._run_task.add_done_callback(lambda _: self._spawn(self._pass_done()))
        log.info("%s: taking pass %s", self.cfg.name, entry.id)

    async def _pass_done(self) -> None:
        run, task = self.run, self._run_task
        if run is None or task is None:
            return
        outcome = task.result() if not task.cancelled() else PassOutcome.ABORTED
        manifest = run.manifest or {}
        events = manifest.get("events") or {}
        summary = {
            "pass_id": run.entry.id,
            "outcome": outcome.value,
            "reason": run.entry.reason,
            "bundle": run.entry.bundle,
            "bundle_status": manifest.get("status"),
            "events": events.get("total") if isinstance(events, Mapping) else None,
            "max_pointing_error_deg": round(run.max_error_deg, 5),
            "median_pointing_error_deg": round(float(np.median(run.errors_deg)), 5)
            if run.errors_deg
            else None,
            "level": "info" if outcome is PassOutcome.COMPLETE else "warning",
        }
        self.completed.append(summary)
        print(f"{self.cfg.name}: pass {json.dumps(summary)}", flush=True)
        await self.bus.publish_event("pass_complete", summary)
        await self.bus.publish_state("schedule", {"passes": self._schedule_json()})
        self.run, self._run_task = None, None
        self._spawn(self._look_at_the_sun())  # where the pass left the mount, at once
        if run.stow_failed:
            await self._set_summary(SummaryState.FAULT, "the mount could not be stowed")
        elif run.mount_lost and self.cfg.daemon.watchdog.mount == "safe":
            await self._set_summary(SummaryState.FAULT, f"mount lost: {run.entry.reason}")
        elif run.safe_fault:
            await self._set_summary(SummaryState.FAULT, run.safe_fault)
        self._wake.set()

    async def _abort(self, reason: str) -> PassOutcome:
        """Cancel the pass in progress (once) and wait (bounded) until it is stowed.

        Idempotent: a pass is cancelled at most once, and never once it is closing its
        bundle and stowing (:attr:`PassRun.finishing`). A second cancel (the link's
        ``degraded`` then ``failed``, an operator abort during a fault) used to interrupt
        the drain of the tagger stream or the stow itself (issue 10: events lost on abort,
        a station left ENABLED after a mount loss).
        """
        run, task = self.run, self._run_task
        if run is None or task is None:
            raise CommandRejected("no pass in progress")
        if not run.abort_requested and not run.finishing:
            run.abort_requested = True
            run.abort_reason = reason
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=self.clock.to_wall(ABORT_WAIT_S) + 10.0)
        if not done:
            raise CommandRejected(f"the pass did not stow within {ABORT_WAIT_S:g} s")
        return PassOutcome.ABORTED if task.cancelled() else task.result()

    # ------------------------------------------------------------------ telemetry

    async def _telemetry_loop(self) -> None:
        period = 1.0 / self.cfg.daemon.mqtt.telemetry_hz
        while True:
            await self.clock.sleep(period)
            run = self.run
            if run is None:
                continue
            samples, run.pointing_samples = run.pointing_samples, []
            if samples:
                await self.bus.publish_telemetry(
                    "pointing",
                    {
                        "t_utc": [iso(t) for t, _, _ in samples],
                        "az_deg": [round(p.az_deg, 5) for _, p, _ in samples],
                        "el_deg": [round(p.el_deg, 5) for _, p, _ in samples],
                        "error_arcsec": [round(e * 3600.0, 2) for _, _, e in samples],
                    },
                )
            if "rates_hz" in run.telemetry:
                await self.bus.publish_telemetry(
                    "rates",
                    {"rates_hz": run.telemetry["rates_hz"], "events": run.telemetry["events"]},
                )
            if "hwp" in run.telemetry:
                await self.bus.publish_telemetry("hwp", run.telemetry["hwp"])

    async def _sun_watch_loop(self) -> None:
        while True:
            await self._look_at_the_sun()
            await self.clock.sleep(SUN_WATCH_PERIOD_S)

    async def _look_at_the_sun(self) -> None:
        """One look of the Sun watch at the mount, when no pass runs (sun_watch.py)."""
        if self._run_task is not None:
            return  # a pass's pointing is the gate's (every target checked)
        try:
            here = await self.devices.position()
        except (DeviceError, TimeoutError):
            return  # the link's own alarms cover a mount that cannot be read
        if self._run_task is None:
            await self.sun_watch.check(here, self.clock.now())

    # ------------------------------------------------------------------ commands

    def _idle(self, what: str) -> None:
        if self._run_task is not None:
            raise CommandRejected(f"{what} is not allowed while pass {self.run_id} is in progress")

    @property
    def run_id(self) -> str:
        return self.run.entry.id if self.run is not None else "-"

    @staticmethod
    def _time(text: str, name: str) -> float:
        try:
            return parse_time(text)
        except ValueError as exc:
            raise CommandRejected(f"argument {name!r}: {exc}") from None

    async def _cmd_enable(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        await self._set_summary(SummaryState.ENABLED, f"enable by {cmd.reply_to}")
        return {"summary": self.summary.value}

    async def _cmd_standby(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        await self._set_summary(SummaryState.STANDBY, f"standby by {cmd.reply_to}")
        return {"summary": self.summary.value, "pass_in_progress": self.run_id}

    async def _cmd_abort(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        if self._run_task is None:
            raise CommandRejected("no pass in progress")
        await ctx.in_progress(ABORT_WAIT_S)
        outcome = await self._abort("aborted by operator")
        return {"outcome": outcome.value, "pass_state": self.machine.state.value}

    async def _cmd_safe(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        await ctx.in_progress(ABORT_WAIT_S)
        if self._run_task is not None:
            await self._abort("safe requested by operator")
        self.machine.to(PassState.SAFE, self.clock.now(), "safe requested")
        try:
            await self._park()
        finally:
            # the station stops taking passes even when the park is refused (a zenith park
            # under a noon Sun): the reply is FAILED with the gate's reason, the summary STANDBY
            self.machine.to(PassState.IDLE, self.clock.now(), "safe")
            if self.summary is SummaryState.ENABLED:
                await self._set_summary(SummaryState.STANDBY, "safe requested")
        return {"summary": self.summary.value, "pass_state": self.machine.state.value}

    async def _cmd_reset(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        await ctx.in_progress(60.0)
        for role, sup in self.devices.supervisors().items():
            try:
                await sup.reconnect()
            except Exception as exc:
                if role == "mount":
                    raise CommandRejected(f"mount still unreachable: {exc}") from None
                await self.alarm(role, f"still unreachable after reset: {exc}")
        unwritable = await asyncio.to_thread(self._data_dir_problem)
        if unwritable:
            raise CommandRejected(unwritable)
        await self._set_summary(SummaryState.STANDBY, "reset by operator")
        await self._publish_devices()
        return {"summary": self.summary.value, "devices": self.devices.snapshot()}

    async def _cmd_schedule_pass(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        try:
            schedule = await self._fresh_schedule()
            entry = schedule.book(self._time(cmd.args["aos_utc"], "aos_utc"))
        except ScheduleError as exc:
            raise CommandRejected(str(exc)) from None
        self._wake.set()
        return entry.to_json()

    async def _cmd_cancel_pass(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        try:
            schedule = await self._fresh_schedule()
            entry = schedule.cancel(self._time(cmd.args["aos_utc"], "aos_utc"))
        except ScheduleError as exc:
            raise CommandRejected(str(exc)) from None
        return entry.to_json()

    async def _cmd_book_window(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        start = self._time(cmd.args["start_utc"], "start_utc")
        end = self._time(cmd.args["end_utc"], "end_utc")
        campaign = {"id": cmd.args["campaign"], "peer": cmd.args.get("peer")}
        try:
            schedule = await self._fresh_schedule()
            entry = schedule.book_window(start, end, campaign)
        except ScheduleError as exc:
            raise CommandRejected(str(exc)) from None
        self._wake.set()
        return entry.to_json()

    async def _cmd_get_schedule(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        await self._fresh_schedule()
        return {
            "summary": self.summary.value,
            "pass_state": self.machine.state.value,
            "passes": self._schedule_json(),
            "completed": self.completed[-10:],
        }

    async def _cmd_goto(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        self._idle("goto")
        target = AltAz(cmd.args["az_deg"], cmd.args["el_deg"])
        now = self.clock.now()
        self.gate.check_target(target, now)  # LimitViolation -> FAILED with the numbers
        here = await self.devices.position()
        self.gate.check_slew(here, target, now)
        await ctx.in_progress(120.0)
        await self.devices.move_to(self.gate, target, self.clock.now())
        actual = await self.devices.position()
        return {"az_deg": actual.az_deg, "el_deg": actual.el_deg}

    async def _cmd_park(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        self._idle("park")
        here = await self.devices.position()
        park = self._park_position()
        gated_legs(self.gate, here, park, self.clock.now())  # refused: FAILED with the reason
        await ctx.in_progress(120.0)
        await self._park()
        return {"parked": True}

    def _park_position(self) -> AltAz:
        return AltAz(self.cfg.mount.park_az_deg, self.cfg.mount.park_el_deg)

    async def _park(self) -> None:
        """The operator's park (``park``, ``safe``): through the safety gate like a pass stow."""
        await self.devices.park(self.gate, self._park_position(), self.clock.now())

    async def _cmd_set_mode(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        self._idle("set_mode")  # the pass's bundle records one mode and one set of angles
        analyzer, hwp = self.devices.analyzer, self.devices.hwp
        if analyzer is None or hwp is None:
            raise CommandRejected("no analyzer waveplate configured ([devices] hwp)")
        mode = AnalyzerMode(cmd.args["mode"])
        settings = self.cfg.daemon.analyzer
        offset = float(cmd.args.get("bell_offset_deg", settings.bell_offset_deg))
        analyzer.bell_offset_deg = offset
        await hwp.call(lambda _: analyzer.set_mode(mode))
        # the next pass's manifest (`analyzer` section) is written from the config
        settings = dataclasses.replace(settings, mode=mode, bell_offset_deg=offset)
        self.cfg = dataclasses.replace(
            self.cfg, daemon=dataclasses.replace(self.cfg.daemon, analyzer=settings)
        )
        return {"mode": mode.value, "bell_offset_deg": offset}
