"""The campaign coordinator: books common windows on two stations, follows, analyses, publishes.

One coordinator per campaign (``qgs network run --config configs/network/<name>.toml``).
It never talks to a device: everything goes through the stations' MQTT command tables and
topics, as an operator's client would. Its loop, once per clock second:

1. keep a plan of the common windows of every station pair (station/network/plan.py),
   saved in the campaign directory so a restart picks it up;
2. ``BOOK_AHEAD_S`` before a window, book it on both stations: ``set_mode`` (the campaign's
   mode, each station's Bell plate offset), ``book_window``, ``enable`` — each command
   retried with the same id on a timeout (the station's id cache makes retries idempotent);
   a refusal fails the window with the station's reason and cancels the other's booking;
3. follow both stations through the window: a station that goes offline (its Last Will) or
   to FAULT is noted with the time and reason; the other finishes its pass;
4. when both passes have ended (``event/pass_complete``, or the station's ``get_schedule``
   when an event was missed), run ``qgs analyze`` on the two bundles (a subprocess, bounded)
   and publish the result retained on ``qgs/v1/<coordinator>/result/<window id>``;
   a window with a missing or incomplete pass is ``partial`` with the reason;
5. while a window runs, put the stations' live frames through the live correlator and
   publish ``telemetry/live`` (coincidences, QBER, S) once per clock second.

Its own status (retained, Last Will), ``state/plan`` and command table (``pause``,
``resume``, ``skip_window``, ``get_plan``) follow the station conventions (docs/mqtt-api.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import aiomqtt

from drivers.clock import Clock
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack, Command
from station.bus.requester import CommandTimeout, Requester
from station.bus.schema import CommandRejected
from station.bus.station_bus import CommandContext, StationBus
from station.network import api
from station.network.campaign import CampaignDir, summarize
from station.network.config import NetworkConfig
from station.network.live_feed import LiveFeed
from station.network.plan import Window, WindowStatus, merge, predict_windows
from station.network.stations import StationWatcher
from station.recording.errors import RecordingError
from station.tracking.elements import OrbitElements, iso, parse_time

log = logging.getLogger(__name__)

BOOK_AHEAD_S = 900.0  #: book a window this long before it opens (stations start 600 s ahead)
LAST_CALL_S = 60.0  #: a window still unbooked this close to its start fails
PASS_END_GRACE_S = 300.0  #: clock s after the later LOS before a silent station is given up
STALE_LIVE_S = 5.0  #: clock s without frames after which the live figures say so


class BookingFailed(Exception):
    """A station refused or never answered a booking command (message says which)."""


class Coordinator:
    """Runs one campaign until :meth:`request_stop` (or ``max_windows`` windows ended)."""

    def __init__(
        self,
        cfg: NetworkConfig,
        clock: Clock,
        broker: BrokerConfig,
        elements: OrbitElements,
        *,
        max_windows: int | None = None,
    ) -> None:
        self.cfg, self.clock, self.broker, self.elements = cfg, clock, broker, elements
        self.max_windows = max_windows
        self.summary = api.ACTIVE
        self.dir = CampaignDir(cfg.directory, cfg.campaign)
        self.windows: list[Window] = []
        self.ended: list[str] = []  #: ids of windows this run took to a terminal state
        self._attempted: set[str] = set()
        self._analysing: set[str] = set()  #: windows whose analysis task runs
        self._predicted_until = 0.0
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        name = cfg.coordinator.name
        self.bus = StationBus(name, broker, clock, state=lambda: self.summary)
        for spec in api.COMMANDS:
            self.bus.register(spec, getattr(self, f"_cmd_{spec.name}"))
        self.watcher = StationWatcher(
            broker.for_connection("watch"),  # its own user: on a secured broker client id = user
            clock,
            tuple(s.name for s in cfg.stations),
            client_id=f"qgs-{name}-watch",
            on_pass=self._on_pass_complete,
            on_live=self._on_live,
            on_change=self._wake.set,
        )
        self.live: LiveFeed | None = None
        self._send_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def serve(self) -> None:
        self.dir.check_writable()
        self.windows = self.dir.load_plan()
        await self.bus.start()
        watcher = asyncio.create_task(self.watcher.run(), name="station-watcher")
        try:
            with contextlib.suppress(TimeoutError):
                await self.bus.wait_connected(5.0)
                async with asyncio.timeout(5.0):
                    await self.watcher.connected.wait()
            await self.bus.publish_status()
            await self._loop()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            self._save()
            await self.bus.stop()

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self._step()
            except (OSError, ValueError) as exc:  # prediction or campaign directory trouble
                log.error("coordinator step failed: %s", exc)
                await self._alarm("coordinator", str(exc), level="error")
            if self.max_windows is not None and len(self.ended) >= self.max_windows:
                log.info("%d window(s) ended; stopping", len(self.ended))
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.clock.to_wall(1.0))

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ the plan

    async def _step(self) -> None:
        now = self.clock.now()
        if now >= self._predicted_until - self.cfg.horizon_days * 43200.0:
            fresh = await asyncio.to_thread(predict_windows, self.cfg, self.elements, now)
            self.windows = merge(self.windows, fresh)
            self._predicted_until = now + self.cfg.horizon_days * 86400.0
            await self._publish_plan()
        for w in self.windows:
            if w.status is WindowStatus.PLANNED:
                if w.end_s <= now:
                    await self._finish(w, WindowStatus.SKIPPED, "missed: ended before booking")
                elif self.summary == api.ACTIVE and w.start_s - now <= BOOK_AHEAD_S:
                    await self._book(w)
            elif w.status is WindowStatus.BOOKED and now >= w.start_s:
                w.status = WindowStatus.RUNNING
                try:
                    self.live = LiveFeed(self.cfg, self.elements, w)
                    self._spawn(self._live_ticker(w), f"live-{w.id}")
                except ValueError as exc:  # the window runs; only the live figures are missing
                    self.live = None
                    await self._alarm("live_channel", f"window {w.id}: no live figures: {exc}")
                await self._publish_plan()
            elif w.status is WindowStatus.RUNNING:
                await self._follow(w, now)
            elif w.status is WindowStatus.ANALYSING and w.id not in self._analysing:
                self._start_analysis(w)  # a restart found it half done: analyse again

    def _save(self) -> None:
        try:
            self.dir.save_plan(self.windows)
        except (OSError, RecordingError) as exc:
            log.error("cannot save the campaign plan: %s", exc)

    async def _publish_plan(self) -> None:
        self._save()
        since = self.clock.now() - 86400.0  # the last day's windows and every later one
        upcoming = [
            w for w in self.windows if w.status is not WindowStatus.SKIPPED and w.end_s > since
        ][:50]
        await self.bus.publish_state(
            "plan",
            {
                "campaign": self.cfg.campaign,
                "mode": self.cfg.mode,
                "summary": self.summary,
                "windows": [
                    {k: v for k, v in w.to_json().items() if k not in ("passes", "result")}
                    for w in upcoming
                ],
            },
        )

    async def _alarm(self, kind: str, message: str, *, level: str = "warning") -> None:
        body = {"kind": kind, "message": message, "level": level, "t_utc": iso(self.clock.now())}
        log.warning("alarm %s: %s", kind, message)
        await self.bus.publish_event("alarm", body)

    # ------------------------------------------------------------------ booking

    async def _send(self, station: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """One command with retries under the same id; the COMPLETE result or BookingFailed."""
        command_id = uuid.uuid4().hex
        settings = self.cfg.coordinator
        last = "no reply"
        for attempt in range(1, settings.book_retries + 1):
            try:
                # a fresh connection per command: the central broker may have restarted since
                # the last one (commands are rare: a few per window); one at a time, so the
                # fixed client id (the ACL's reply inbox) is never taken over by ourselves
                async with (
                    self._send_lock,
                    Requester(
                        self.broker.for_connection("cmd"),
                        self.clock,
                        client_id=f"qgs-{self.cfg.coordinator.name}",
                    ) as requester,
                ):
                    replies = await requester.send(
                        station,
                        name,
                        args,
                        timeout_s=settings.ack_timeout_s,
                        expires_in_s=settings.ack_timeout_s * 2 * self.clock.rate,
                        command_id=command_id,
                    )
            except (CommandTimeout, aiomqtt.MqttError, TimeoutError) as exc:
                last = str(exc)
                log.warning("%s %s attempt %d: %s", station, name, attempt, exc)
                continue
            final = replies[-1]
            if final.ack is Ack.COMPLETE:
                return final.result or {}
            raise BookingFailed(f"{station} answered {name} with {final.ack.value}: {final.reason}")
        raise BookingFailed(
            f"{station} did not answer {name} ({settings.book_retries} tries): {last}"
        )

    async def _book(self, w: Window) -> None:
        self._attempted.add(w.id)
        views = self.watcher.views
        down = [views[s].describe() for s in w.stations if not views[s].online]
        faulted = [
            views[s].describe()
            for s in w.stations
            if views[s].online and views[s].summary not in ("STANDBY", "ENABLED")
        ]
        if down or faulted:
            if w.start_s - self.clock.now() > LAST_CALL_S:
                return  # try again next step; the station may come (back) up
            await self._finish(w, WindowStatus.FAILED, "not booked: " + "; ".join(down + faulted))
            return
        booked: list[str] = []
        try:
            for s in w.stations:
                st = self.cfg.station(s)
                await self._send(
                    s, "set_mode", {"mode": self.cfg.mode, "bell_offset_deg": st.bell_offset_deg}
                )
                peer = next(x for x in w.stations if x != s)
                entry = await self._send(
                    s,
                    "book_window",
                    {
                        "start_utc": iso(w.start_s),
                        "end_utc": iso(w.end_s),
                        "campaign": f"{self.cfg.campaign}/{w.id}",
                        "peer": peer,
                    },
                )
                w.passes[s] = {
                    "pass_id": entry.get("id"),
                    "aos_utc": entry.get("aos_utc"),
                    "los_utc": entry.get("los_utc"),
                    "mode": self.cfg.mode,
                }
                booked.append(s)
                if views[s].summary == "STANDBY":
                    await self._send(s, "enable", {})
        except BookingFailed as exc:
            for s in booked:  # undo the half booking: the other station need not take it
                with contextlib.suppress(BookingFailed):
                    await self._send(s, "cancel_pass", {"aos_utc": w.passes[s]["aos_utc"]})
            await self._finish(w, WindowStatus.FAILED, f"not booked: {exc}")
            return
        w.status = WindowStatus.BOOKED
        log.info("booked %s on %s", w.id, " and ".join(w.stations))
        await self._publish_plan()

    # ------------------------------------------------------------------ following a window

    def _on_pass_complete(self, station: str, body: dict[str, Any]) -> None:
        for w in self.windows:
            p = w.passes.get(station)
            if p is not None and p.get("pass_id") == body.get("pass_id") and "outcome" not in p:
                p.update(
                    outcome=body.get("outcome"),
                    reason=body.get("reason"),
                    bundle=body.get("bundle"),
                    events=body.get("events"),
                )
                self._wake.set()

    def _on_live(self, station: str, payload: bytes) -> None:
        if self.live is not None:
            self.live.add(station, payload)

    async def _follow(self, w: Window, now: float) -> None:
        views = self.watcher.views
        for s in w.stations:
            p = w.passes[s]
            if "outcome" in p or "dropped" in p:
                continue
            view = views[s]
            if not view.online or view.summary == "FAULT":
                p["dropped"] = f"{view.describe()} at {iso(now)}"
                await self._alarm("station_dropped", f"window {w.id}: {p['dropped']}")
                await self._publish_plan()
        los = max(parse_time(str(w.passes[s]["los_utc"])) for s in w.stations)
        overdue = now > los + PASS_END_GRACE_S
        missing = [s for s in w.stations if "outcome" not in w.passes[s]]
        if missing and overdue:
            await self._recover_outcomes(w, missing)
            missing = [s for s in w.stations if "outcome" not in w.passes[s]]
        if missing and not overdue:
            live = [s for s in missing if "dropped" not in w.passes[s]]
            if live or now <= w.end_s:
                return  # a station is still in its pass (or the window is still open)
        w.status = WindowStatus.ANALYSING
        await self._publish_plan()
        self._start_analysis(w)

    def _start_analysis(self, w: Window) -> None:
        self._analysing.add(w.id)
        self._spawn(self._conclude_safely(w), f"analyse-{w.id}")

    async def _conclude_safely(self, w: Window) -> None:
        """:meth:`_conclude`, and a failed window (never a stuck one) if it raises."""
        try:
            await self._conclude(w)
        except (OSError, ValueError, KeyError, RecordingError) as exc:
            log.exception("window %s: concluding failed", w.id)
            await self._finish(w, WindowStatus.FAILED, f"could not conclude: {exc!r}")
        finally:
            self._analysing.discard(w.id)

    async def _recover_outcomes(self, w: Window, missing: list[str]) -> None:
        """Ask a station whose pass_complete we never saw (broker outage, restart)."""
        for s in missing:
            if not self.watcher.views[s].online:
                continue
            with contextlib.suppress(BookingFailed):
                sched = await self._send(s, "get_schedule", {})
                for entry in [*sched.get("completed", []), *sched.get("passes", [])]:
                    if entry.get("pass_id", entry.get("id")) != w.passes[s]["pass_id"]:
                        continue
                    outcome = entry.get("outcome")
                    if outcome not in (None, "planned", "running"):
                        w.passes[s].update(
                            outcome=outcome, reason=entry.get("reason"), bundle=entry.get("bundle")
                        )
                        break

    # ------------------------------------------------------------------ results

    async def _conclude(self, w: Window) -> None:
        problems = []
        for s in w.stations:
            p = w.passes[s]
            if p.get("outcome") != "complete":
                what = p.get("dropped") or (
                    f"{s} pass {p.get('outcome')}: {p.get('reason')}"
                    if "outcome" in p
                    else f"{s} never reported its pass"
                )
                problems.append(what)
        live = None
        if self.live is not None and self.live.window is w:  # the channel's last word
            live = await asyncio.to_thread(self.live.estimate, self.clock.now(), final=True)
        bundles = [w.passes[s].get("bundle") for s in w.stations]
        figures: dict[str, Any] | None = None
        analysis_error: str | None = None
        if all(isinstance(b, str) for b in bundles) and await asyncio.to_thread(
            lambda: all(Path(str(b), "manifest.json").exists() for b in bundles)
        ):
            figures, analysis_error = await self._analyse(w, [str(b) for b in bundles])
        else:
            analysis_error = "not analysed: a bundle is missing"
        if problems:
            status, reason = WindowStatus.PARTIAL, "; ".join(problems)
        elif analysis_error is not None:
            status, reason = WindowStatus.FAILED, analysis_error
        else:
            status, reason = WindowStatus.DONE, None
        w.result = {
            "campaign": self.cfg.campaign,
            "window_id": w.id,
            "stations": list(w.stations),
            "mode": self.cfg.mode,
            "start_utc": iso(w.start_s),
            "end_utc": iso(w.end_s),
            "status": status.value,
            "reason": reason,
            "analysis_error": analysis_error if figures is None else None,
            "passes": w.passes,
            "figures": figures,
            "live": live,
            "analysis": str(self.dir.window_dir(w.id) / "analysis.json") if figures else None,
            "report": str(self.dir.window_dir(w.id) / "report.png") if figures else None,
        }
        self.dir.save_result(w.id, w.result)
        await self.bus.publish_retained(f"campaign/{self.cfg.campaign}/result/{w.id}", w.result)
        await self._finish(w, status, reason)

    async def _analyse(
        self, w: Window, bundles: list[str]
    ) -> tuple[dict[str, Any] | None, str | None]:
        """``qgs analyze`` in a subprocess (its own memory, killable): figures or the error."""
        out = self.dir.window_dir(w.id)
        out.mkdir(parents=True, exist_ok=True)
        argv = [
            *(sys.executable, "-m", "station.cli", "analyze", *bundles),
            *("--json", str(out / "analysis.json"), "--report", str(out / "report.png"), "--force"),
        ]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                proc.communicate(), self.cfg.coordinator.analysis_timeout_s
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None, f"analysis took longer than {self.cfg.coordinator.analysis_timeout_s:g} s"
        (out / "analysis.txt").write_bytes(stdout + stderr)
        if proc.returncode != 0:
            lines = stderr.decode(errors="replace").strip().splitlines()
            return None, f"analysis failed (exit {proc.returncode}): {lines[-1] if lines else ''}"
        try:
            return summarize(json.loads((out / "analysis.json").read_text())), None
        except (OSError, ValueError, KeyError, IndexError) as exc:
            return None, f"analysis output unreadable: {exc!r}"

    async def _finish(self, w: Window, status: WindowStatus, reason: str | None) -> None:
        w.status, w.reason = status, reason
        if self.live is not None and self.live.window is w:
            self.live.window_ended = True
        if w.id in self._attempted or status in (WindowStatus.DONE, WindowStatus.PARTIAL):
            self.ended.append(w.id)
        log.info("window %s: %s%s", w.id, status.value, f" ({reason})" if reason else "")
        await self._publish_plan()
        self._wake.set()

    # ------------------------------------------------------------------ live figures

    async def _live_ticker(self, w: Window) -> None:
        """``telemetry/live`` once per clock second while the window's passes run."""
        feed = self.live
        assert feed is not None
        while w.status is WindowStatus.RUNNING:
            await self.clock.sleep(1.0)
            estimate = await asyncio.to_thread(feed.estimate, self.clock.now())
            await self.bus.publish_telemetry("live", estimate)

    # ------------------------------------------------------------------ commands

    def _find(self, window_id: str) -> Window:
        for w in self.windows:
            if w.id == window_id:
                return w
        known = [w.id for w in self.windows if not w.status.terminal][:10]
        raise CommandRejected(f"no window {window_id!r}; upcoming: {known}")

    async def _set_summary(self, summary: str) -> None:
        self.summary = summary
        await self.bus.publish_status()
        await self._publish_plan()

    async def _cmd_pause(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        await self._set_summary(api.PAUSED)
        return {"summary": self.summary}

    async def _cmd_resume(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        await self._set_summary(api.ACTIVE)
        self._wake.set()
        return {"summary": self.summary}

    async def _cmd_skip_window(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        w = self._find(cmd.args["window_id"])
        if w.status.terminal:
            raise CommandRejected(f"window {w.id} is already {w.status.value}")
        if w.status not in (WindowStatus.PLANNED, WindowStatus.BOOKED):
            raise CommandRejected(
                f"window {w.id} is {w.status.value}; abort the stations' passes to stop it"
            )
        cancelled = []
        if w.status is WindowStatus.BOOKED:
            await ctx.in_progress(self.cfg.coordinator.ack_timeout_s * 3)
            for s in w.stations:
                try:
                    await self._send(s, "cancel_pass", {"aos_utc": w.passes[s]["aos_utc"]})
                    cancelled.append(s)
                except BookingFailed as exc:
                    await self._alarm("skip_window", f"{w.id}: {exc}")
        await self._finish(w, WindowStatus.SKIPPED, f"skipped by {cmd.reply_to}")
        return {"window_id": w.id, "status": w.status.value, "cancelled_on": cancelled}

    async def _cmd_get_plan(self, cmd: Command, ctx: CommandContext) -> dict[str, Any]:
        return {
            "campaign": self.cfg.campaign,
            "mode": self.cfg.mode,
            "summary": self.summary,
            "stations": {k: v.describe() for k, v in self.watcher.views.items()},
            "windows": [w.to_json() for w in self.windows if w.status is not WindowStatus.SKIPPED][
                :20
            ],
        }
