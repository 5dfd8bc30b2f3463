"""kill -9 trials: SIGKILL the daemon at seeded random moments of TRACK, then check the bundle.

A rig session runs a warped pass; the daemon books it and is enabled. Each trial waits until
the (re)started daemon is in TRACK, lets it record for a random ``U(0.5, 3.0)`` wall seconds
(seeded), SIGKILLs it and checks, on the bundle it left:

- every chunk under a final name verifies (``recover_bundle``: no problems), and the reader
  (``iter_blocks``) reads them all;
- the partial chunk is reported (a temporary file, or a manifest still ``recording``);
- events lost, in clock seconds: the kill's clock time minus the last recorded event's time
  (the tagger counts ps from the rig's ``tagger_epoch_utc``), against docs/recording.md's
  bound of 2 × ``max_chunk_s`` (the stream latency, daemon-side, adds to it);
- a restarted daemon publishes ``online``/``STANDBY`` within a bound, and after ``enable`` (its
  booking was saved) joins the pass late — the next trial's TRACK.

When the pass nears LOS a fresh rig session starts. Every process is stopped by PID.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reliability.station import (
    ONLINE_BOUND_S,
    RIG_CONFIG,
    STATION,
    Run,
    station_run,
)
from station.recording.errors import RecordingError
from station.recording.manifest import read_manifest
from station.recording.reader import iter_blocks, recover_bundle
from station.tracking.elements import parse_time

RATE = 5.0  #: slow enough that a restart (a few wall s) leaves most of the pass
START = "2021-04-29T17:19:40Z"  #: just before Delingha's AOS (17:19:52): the pass is joined at once
TRACK_BOUND_S = 60.0  #: wall s for a (re)started, enabled daemon to reach TRACK
LOS_MARGIN_S = 60.0  #: clock s: no trial this close to LOS (a new session instead)
MAX_CHUNK_S = 1.0  #: configs/stations/delingha.toml keeps the default [recording] max_chunk_s
BOUND_S = 2 * MAX_CHUNK_S  #: docs/recording.md "Write protocol and crash bound"
STALL_S = 3.0  #: clock s: stream_health's stall bound; a TRACK longer than bound + this records


@dataclass
class Trial:
    """One SIGKILL and what it left."""

    n: int
    delay_wall_s: float
    kill_clock_utc: float = 0.0
    bundle: str = ""
    status: str = ""
    intact_chunks: int = 0
    events: int = 0
    read_back: int | None = None  #: events iter_blocks read (None: the reader raised)
    problems: list[str] = field(default_factory=list)
    partial_reported: bool = False
    lost_clock_s: float | None = None
    restart_wall_s: float | None = None
    restarted_standby: bool = False
    restarted: bool = False  #: the killed daemon was itself restarted after a kill
    note: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and self.read_back == self.events
            and self.partial_reported
            and self.restarted_standby
        )


def tagger_epoch() -> float:
    world = tomllib.loads(RIG_CONFIG.read_text())["world"]
    return parse_time(str(world["tagger_epoch_utc"]))


def _bundles(run: Run) -> set[Path]:
    root = run.tmp / "data" / STATION
    return {p for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()


def inspect(trial: Trial, bundle: Path, epoch: float) -> None:
    """Fill ``trial`` from the bundle a killed daemon left."""
    trial.bundle = str(bundle)
    report = recover_bundle(bundle)
    trial.status = report.status
    trial.intact_chunks = len(report.intact)
    trial.events = report.events
    trial.problems = list(report.problems)
    trial.partial_reported = bool(report.unfinished) or report.status == "recording"
    try:
        trial.read_back = sum(len(b.t_ps) for b in iter_blocks(bundle))
    except RecordingError as exc:
        trial.problems.append(f"reader: {exc}")
    if report.events == 0 and trial.delay_wall_s * RATE > BOUND_S + STALL_S:
        trial.problems.append(
            f"no events recorded in {trial.delay_wall_s * RATE:.0f} clock s of TRACK"
        )
    if report.last_t_ps is not None:
        trial.lost_clock_s = round(trial.kill_clock_utc - (epoch + report.last_t_ps / 1e12), 3)


def _track_since(run: Run, n_seen: int) -> bool:
    return "TRACK" in [
        str(s.body.get("to")) for s in run.seen[n_seen:] if s.topic == "event/pass_state"
    ]


async def _trial(run: Run, trial: Trial, epoch: float) -> None:
    before = _bundles(run)
    await asyncio.sleep(trial.delay_wall_s)
    wall = run.kill_daemon()
    trial.kill_clock_utc = run.clock_at(wall)
    new = sorted(_bundles(run) - before) or sorted(
        (p for p in _bundles(run) if _status(p) == "recording"), key=lambda p: p.name
    )
    if new:
        inspect(trial, new[-1], epoch)
    else:
        trial.note = "no bundle found"
    n_seen = len(run.seen)
    t0 = time.monotonic()
    run.restart_daemon()
    trial.restarted_standby = await run.until(
        lambda: any(
            s.topic == "status"
            and s.body.get("state") == "online"
            and s.body.get("summary") == "STANDBY"
            for s in run.seen[n_seen:]
        ),
        ONLINE_BOUND_S,
    )
    trial.restart_wall_s = round(time.monotonic() - t0, 2)


def _status(bundle: Path) -> str:
    try:
        return str(read_manifest(bundle).get("status"))
    except RecordingError:
        return "unreadable"


async def run_trials(
    tmp: Path,
    broker_port: int,
    n: int,
    seed: int = 10,
    delay_s: tuple[float, float] = (0.5, 3.0),
    per_session: int = 2,
) -> list[Trial]:
    """``n`` trials, ``per_session`` per fresh rig (the first kills the original daemon, the
    next ones a restarted daemon that joined the pass late)."""
    rng = random.Random(seed)
    epoch = tagger_epoch()
    trials: list[Trial] = []
    session = 0
    while len(trials) < n and session < n + 2:
        session += 1
        async with station_run(
            tmp / f"session{session}", broker_port, rate=RATE, start_utc=START
        ) as run:
            schedule = await run.req.send(STATION, "get_schedule")
            passes: list[dict[str, Any]] = (schedule[-1].result or {}).get("passes") or []
            los = parse_time(str(passes[0]["los_utc"])) if passes else 0.0
            await run.book_first_pass_and_enable()
            for _ in range(per_session):
                if len(trials) >= n:
                    break
                if not await run.until(
                    functools.partial(_track_since, run, len(run.seen)), TRACK_BOUND_S
                ):
                    break
                if run.clock_at(time.time()) > los - LOS_MARGIN_S:
                    break
                trial = Trial(
                    len(trials) + 1,
                    round(rng.uniform(*delay_s), 2),
                    restarted=run.daemon_starts > 1,
                )
                await _trial(run, trial, epoch)
                trials.append(trial)
                print(
                    f"crash {trial.n}: lost {trial.lost_clock_s} s, chunks "
                    f"{trial.intact_chunks}, problems {trial.problems}, restart "
                    f"{trial.restart_wall_s} s ok={trial.ok}",
                    flush=True,
                )
                if not trial.restarted_standby:
                    break
                await run.enable()
    return trials


def as_json(trial: Trial) -> dict[str, Any]:
    return {**trial.__dict__, "ok": trial.ok}
