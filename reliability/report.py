"""docs/reliability.md from one run's results (generated: edit this module, not the page)."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from reliability import crash, matrix
from reliability.bridges import COMMAND as BRIDGE_COMMAND
from reliability.bridges import BridgeOutage
from reliability.crash import Trial
from reliability.fuzz import FuzzResult
from reliability.matrix import Cell
from reliability.outage import COMMAND as OUTAGE_COMMAND
from reliability.outage import STATE_BOUND_S, BrokerOutage
from reliability.security import Attack
from reliability.soak import COMMAND as SOAK_COMMAND
from reliability.soak import RSS_BAR, ProcessTrace, Sample, Soak


@dataclass
class Results:
    """Everything one ``python -m reliability`` run measured (None: section not run)."""

    command: str
    date_utc: str
    revision: str
    cores: int
    load_before: tuple[float, float, float]
    quick: bool
    matrix: list[Cell] | None = None
    crash: list[Trial] | None = None
    fuzz: list[FuzzResult] | None = None
    security: list[Attack] | None = None
    bridges: BridgeOutage | None = None
    outage: BrokerOutage | None = None
    soak: Soak | None = None
    wall_s: dict[str, float] = field(default_factory=dict)
    fuzz_cases: int = 0
    #: section -> "<date> at <revision>" of the run that measured it (``--merge`` keeps the
    #: sections of an earlier run that this one did not run)
    runs: dict[str, str] = field(default_factory=dict)


def _alarms(kinds: list[str]) -> str:
    counts = Counter(kinds)
    return ", ".join(f"{k}×{n}" if n > 1 else k for k, n in sorted(counts.items())) or "none"


def _yn(v: bool | None) -> str:
    return "?" if v is None else ("yes" if v else "no")


def _matrix(cells: list[Cell], cmd: str) -> list[str]:
    out = [
        "## 1. Fault matrix (one station: delingha)",
        "",
        f"Command: `{cmd} --only matrix`. Each cell is a fresh rig + daemon; the fault is a "
        f"`[[faults]]` entry of a temporary copy of configs/rig/delingha_lijiang.toml at "
        f"{matrix.FAULT_AT_S:.0f} clock s after {matrix.START} (~68 s into TRACK), lasting "
        f"{matrix.FAULT_FOR_S:.0f} clock s, warp {matrix.RATE:.0f}x. Policies are the defaults "
        '(`mount = "safe"`, `hwp = "degrade"`, `timetagger = "degrade"`); the documented '
        'outcome is docs/operations.md "Watchdogs": `safe` → pass aborted, station FAULT, an '
        "alarm naming the device; `degrade` → an alarm, the pass goes on (outcome complete). "
        "*First alarm* is clock s from the fault to the first alarm naming the device, as a "
        "subscriber received it (alarms before the fault are not counted). *Recorded / sent*: "
        "events in the bundle vs timestamps the emulated tagger says it sent (its DLT `status` "
        "extension). *Faithful*: the bundle's `quality.faithful` (the daemon's loops kept up "
        "with the warped clock; on a loaded machine they do not, and load-made alarms such as "
        "`loop_lag`, `pointing` or spurious stream-health alarms appear in every cell).",
        "",
        "| device | fault | policy | outcome | summary | state | alarms | first alarm (s) "
        "| hung | crashed | bundle verifies | events complete | recorded / sent | faithful "
        "| agrees with docs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        problems = c.problems()
        agree = "yes" if not problems else "**NO**: " + "; ".join(problems)
        sent = "?" if c.streamed is None else str(c.streamed)
        out.append(
            f"| {c.device} | {c.kind} | {c.policy} | {c.outcome} | {c.summary} | {c.state} "
            f"| {_alarms(c.alarms)} | {c.first_alarm_s if c.first_alarm_s is not None else '-'} "
            f"| {_yn(c.hung)} | {_yn(c.crashed)} | {_yn(c.bundle_ok)} "
            f"| {_yn(c.events_complete)} | {c.events} / {sent} | {_yn(c.faithful)} | {agree} |"
        )
    bad = [c for c in cells if c.problems()]
    out += [
        "",
        f"{len(cells)} cells, {len(cells) - len(bad)} agree with the documented outcome, "
        f"{len(bad)} disagree.",
    ]
    notes = [c for c in cells if c.note]
    if notes:
        out += ["", "Notes:", ""] + [f"- {c.device}/{c.kind}: {c.note}" for c in notes]
    return [*out, ""]


def _crash(trials: list[Trial], cmd: str) -> list[str]:
    lost = [t.lost_clock_s for t in trials if t.lost_clock_s is not None]
    first = [t for t in trials if not t.restarted]
    out = [
        "## 2. kill -9 trials",
        "",
        f"Command: `{cmd} --only crash`. {len(trials)} SIGKILLs of the daemon at seeded random "
        "moments (U(0.5, 3.0) wall s after the daemon reached TRACK, warp "
        f"{crash.RATE:.0f}x), two per fresh rig session: the first kills the original daemon, "
        "the second a daemon restarted after the first kill that joined the pass late. "
        "*Lost* = the kill's clock time minus the last recorded event's time (clock s); the "
        'documented bound is docs/recording.md "Write protocol and crash bound": ≤ 2 × '
        f"`max_chunk_s` = {crash.BOUND_S:.1f} s (delingha keeps the default `max_chunk_s` = "
        f"{crash.MAX_CHUNK_S:.0f} s); the stream latency from tagger to daemon adds to it "
        "and the bound does not mention it.",
        "",
        "| # | killed daemon | delay (wall s) | intact chunks | events | read back | partial "
        "reported | lost (clock s) | restart → STANDBY (wall s) | problems |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        out.append(
            f"| {t.n} | {'restarted' if t.restarted else 'original'} | {t.delay_wall_s} "
            f"| {t.intact_chunks} | {t.events} | {t.read_back} | {_yn(t.partial_reported)} "
            f"| {t.lost_clock_s if t.lost_clock_s is not None else '-'} "
            f"| {t.restart_wall_s if t.restarted_standby else 'NOT BACK'} "
            f"| {'; '.join(t.problems) or '-'} |"
        )
    ok_chunks = sum(1 for t in trials if not [p for p in t.problems if "no events" not in p])
    out += [""]
    if lost:
        over = sum(1 for x in lost if x > crash.BOUND_S)
        out.append(
            f"Lost per crash (clock s, {len(lost)} trials with events): min {min(lost):.3f}, "
            f"median {statistics.median(lost):.3f}, max {max(lost):.3f}; {over} over the "
            f"{crash.BOUND_S:.1f} s bound."
        )
    out.append(
        f"Completed chunks intact and readable in {ok_chunks}/{len(trials)} trials; the "
        f"partial chunk reported in {sum(t.partial_reported for t in trials)}/{len(trials)}; "
        f"the restarted daemon online/STANDBY in "
        f"{sum(t.restarted_standby for t in trials)}/{len(trials)}; trials that killed the "
        f"original daemon: {len(first)}."
    )
    silent = [t for t in trials if any("no events" in p for p in t.problems)]
    if silent:
        out.append(
            f"**Defect:** {len(silent)} trials killed a daemon that had recorded nothing: a "
            "daemon restarted after a SIGKILL joins the pass (TRACK) but its new acquisition "
            "gets no events (its log shows `stream_stalled`), apparently because the killed "
            "daemon's acquisition is still running on the tagger."
        )
    return [*out, ""]


def _fuzz(results: list[FuzzResult], cmd: str, cases: int) -> list[str]:
    out = [
        "## 4. Fuzzing (hypothesis)",
        "",
        f"Command: `{cmd} --only fuzz` ({cases} examples per target, derandomized). A failure "
        "is any exception other than the typed one (`ConfigError` for configs and elements, "
        "`RecordingError`/`ChunkError` for the bundle reader, `DeviceError` for a driver "
        "reading corrupted replies), a corruption read back as data, a driver sequence "
        "outliving its bound, "
        "an unhandled exception in the bus's event loop, an ack on a station topic, or the bus "
        "not answering a valid command afterwards (checked every 50 cases, bounded).",
        "",
        "| target | what | cases | typed refusals | failures |",
        "|---|---|---|---|---|",
    ]
    what = {
        "config": "station TOML: one value replaced (NaN, ±inf, huge, wrong type, text), a "
        "line dropped, random text",
        "elements": "TLE lines mutated, random text, OMM JSON/XML with mutated fields",
        "bundle": "a chunk truncated, bit-flipped, or two chunks swapped (reordered)",
        "commands": "payloads on a real Mosquitto to a real StationBus with the daemon's "
        "command table: bytes, any JSON, hostile envelopes (4,300+ digit numbers, "
        "NaN, 5,000-deep nesting, 200 kB ids, NUL/wildcard/foreign reply_to), "
        "retained or not",
    }
    for device in ("rotctld", "lx200", "elliptec"):
        what[f"replies/{device}"] = (
            f"the {device} driver (connect, position, one move) behind a proxy that mutates "
            "our emulator's replies: bit flips, truncation, random bytes, a tail, a dropped "
            "reply, digits replaced by nan/1e999/40 digits (an eighth of the cases)"
        )
    for r in results:
        out.append(
            f"| {r.target} | {what.get(r.target, '')} | {r.cases} | {r.typed_errors} "
            f"| {len(r.failures)} |"
        )
    fails = Counter((r.target, f) for r in results for f in r.failures)
    if fails:
        out += ["", "Failures (distinct; the first 20 per target are kept):", ""]
        out += [f"- {t} (×{n}): `{f}`" for (t, f), n in fails.items()]
    return [*out, ""]


def _security(attacks: list[Attack], cmd: str) -> list[str]:
    out = [
        "## 5. Security",
        "",
        f"Command: `{cmd} --only security`. Against Mosquitto with the shipped "
        "configs/mosquitto/qgs.acl, `use_username_as_clientid` and a password file (one user "
        "per station, operators, the coordinator, monitors: reliability/broker.py USERS), a "
        "real StationBus logged in as `delingha`; and against the TLS central broker written "
        "by `write_broker_kit` (a generated CA). A takeover counts only if the victim is "
        "really disconnected, snooping only if the attacker really receives the victim's "
        "acks (Mosquitto grants every subscription and filters at delivery). Success must be "
        "0 for every attack; the control must connect.",
        "",
        "| attempt | attempts | successes | verdict |",
        "|---|---|---|---|",
    ]
    for a in attacks:
        if a.control:
            verdict = "control: connects" if a.successes == a.attempts else "**control FAILED**"
        else:
            verdict = "ok" if a.successes == 0 else "**DEFECT**"
        out.append(f"| {a.kind} | {a.attempts} | {a.successes} | {verdict} |")
    noted = [f"- {a.kind}: {a.note}" for a in attacks if a.note]
    out += ["", *noted] if noted else []
    out += [
        "",
        "Client ids are user names (`use_username_as_clientid`), so a stolen client id is "
        "replaced by the thief's own user name: no takeover, and inboxes are per user "
        "(`pattern read qgs/reply/%u/#`). Each station may publish only under its own "
        "`qgs/v1/<station>/`.",
    ]
    return [*out, ""]


def _bridges(b: BridgeOutage) -> list[str]:
    out = [
        "## 3. Central broker outage (bridged sites)",
        "",
        f"Command: `{BRIDGE_COMMAND}` (run by the harness; test "
        f"{'passed' if b.passed else '**FAILED**'}, {b.wall_s} wall s). Its figures:",
        "",
    ]
    out.append(f"> {b.line}" if b.line else "> (the line was not printed)")
    if b.tail:
        out += ["", "```", b.tail, "```"]
    return [*out, ""]


def _outage(o: BrokerOutage, quick: bool) -> list[str]:
    verdict = "passed" if o.passed else "**FAILED**: " + "; ".join(o.problems)
    return [
        f"## 3b. The station's own broker down for {o.outage_s:.0f} s mid-pass",
        "",
        f"Command: `{OUTAGE_COMMAND}`{' --quick' if quick else ''} ({o.wall_s} wall s; "
        "reliability/outage.py describes the run). The broker restarts without persistence, "
        "so every retained message must be published again by the daemon.",
        "",
        "| figure | value | bar |",
        "|---|---|---|",
        f"| events recorded / sent by the tagger | {o.events} / {o.streamed} | equal |",
        f"| bundle verifies, events_complete | {o.bundle_ok}, {o.events_complete} | true |",
        f"| pass outcome | {o.outcome} | complete |",
        f"| retained status right after the return | {o.status_after_s} s | "
        f"≤ {STATE_BOUND_S:g} s |",
        f"| retained state/pass right after the return | {o.pass_state_after_s} s | "
        f"≤ {STATE_BOUND_S:g} s |",
        f"| `standby` typed during the outage, delivered after | {o.late_command_ack} "
        f"({o.late_command_reason or '-'}) | not COMPLETE |",
        f"| a fresh `get_schedule` after the return | {o.fresh_command_ack} | COMPLETE |",
        "",
        f"Verdict: {verdict}.",
        "",
    ]


def _soak(k: Soak, quick: bool) -> list[str]:
    verdict = "passed" if k.passed else "**FAILED**: " + "; ".join(k.problems)
    out = [
        "## 6. Soak",
        "",
        f"Command: `{SOAK_COMMAND}`{' --quick' if quick else ''} ({k.clock_hours:g} clock h "
        f"at {k.rate:g}x: {k.wall_s} wall s; reliability/soak.py describes the run and the "
        f"baseline). Passes ended (`event/pass_complete`, any outcome): "
        + (", ".join(f"{s} {n}" for s, n in sorted(k.passes.items())) or "none")
        + f"; bundles verified {k.bundles_verified}, failed {len(k.bundles_failed)}. "
        + "Outcomes: "
        + (", ".join(f"{key} {n}" for key, n in sorted(k.outcomes.items())) or "-")
        + f"; unhandled exceptions in the daemons' logs: {len(k.log_errors)}. "
        + f"Past the end of the clock span the soak sampled on {k.idle_wait_s:g} wall s, "
        + "until both stations' `state/pass` had been IDLE for a while (the end sample is an "
        + "idle one).",
        "",
        "| process | RSS baseline → end (MiB) | growth (bar "
        f"{RSS_BAR:.0%}) | fds | threads | asyncio tasks | children at end |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in k.traces:
        out.append(_soak_row(t))
    if k.pass_log:
        out += ["", "| station | pass | outcome | reason | events | bundle verifies |"]
        out.append("|---|---|---|---|---|---|")
        for row in k.pass_log:
            verified = {True: "yes", False: "**no**", None: "no bundle"}[row.get("verified")]
            reason = str(row.get("reason") or "-").replace("|", "/")
            out.append(
                f"| {row['station']} | {row.get('pass_id') or '-'} | {row.get('outcome')} "
                f"| {reason} | {row.get('events', '-')} | {verified} |"
            )
    return [*out, "", f"Verdict: {verdict}.", ""]


def _soak_row(t: ProcessTrace) -> str:
    def mib(kib: float | None) -> str:
        return "-" if kib is None else f"{kib / 1024:.1f}"

    growth = "-" if t.rss_growth is None else f"{t.rss_growth:+.1%}"
    tasks = "-" if t.tasks_end is None else f"{t.tasks_baseline_max} → {t.tasks_end}"
    return (
        f"| {t.name} | {mib(t.rss_baseline_kib)} → {mib(t.rss_end_kib)} | {growth} "
        f"| {t.fds_baseline_max} → {t.fds_end} | {t.threads_baseline_max} → {t.threads_end} "
        f"| {tasks} | {t.children_end} |"
    )


def _provenance(r: Results) -> list[str]:
    """One line per section when the sections come from different runs (``--merge``)."""
    if len(set(r.runs.values())) <= 1:
        return []
    lines = ", ".join(f"{section}: {run}" for section, run in r.runs.items())
    return [f"Sections from different runs (`--merge`): {lines}.", ""]


def render(r: Results, fuzz_cases: int) -> str:
    cmd = "python -m reliability" + (" --quick" if r.quick else "")
    head = [
        "# Reliability and security figures (issue 10)",
        "",
        "<!-- generated by `make reliability` (python -m reliability); do not edit by hand -->",
        "",
        f"Generated {r.date_utc} at git revision `{r.revision}` on a machine with {r.cores} "
        f"cores (load average before the run: {', '.join(f'{x:.2f}' for x in r.load_before)})"
        f" by `{cmd}`{' (quick subset)' if r.quick else ''}. Every process (Mosquitto, the "
        "rig, the daemons) is real and stopped by PID; every wait is bounded. A fast subset "
        "of every kind runs in `make test` "
        "(tests/integration/reliability/test_reliability_fast.py).",
        "",
        *_provenance(r),
        "Wall time per section (s): "
        + (", ".join(f"{k} {v:.0f}" for k, v in r.wall_s.items()) or "-"),
        "",
    ]
    body: list[str] = []
    if r.matrix is not None:
        body += _matrix(r.matrix, cmd)
    else:
        body += ["## 1. Fault matrix", "", "Not run in this invocation.", ""]
    if r.crash is not None:
        body += _crash(r.crash, cmd)
    else:
        body += ["## 2. kill -9 trials", "", "Not run in this invocation.", ""]
    if r.bridges is not None:
        body += _bridges(r.bridges)
    else:
        body += [
            "## 3. Central broker outage (bridged sites)",
            "",
            "Not run in this invocation.",
            "",
        ]
    if r.outage is not None:
        body += _outage(r.outage, r.quick)
    else:
        body += ["## 3b. Station broker outage", "", "Not run in this invocation.", ""]
    if r.fuzz is not None:
        body += _fuzz(r.fuzz, cmd, fuzz_cases)
    else:
        body += ["## 4. Fuzzing", "", "Not run in this invocation.", ""]
    if r.security is not None:
        body += _security(r.security, cmd)
    else:
        body += ["## 5. Security", "", "Not run in this invocation.", ""]
    if r.soak is not None:
        body += _soak(r.soak, r.quick)
    else:
        body += ["## 6. Soak", "", "Not run in this invocation.", ""]
    return "\n".join(head + body)


def as_json(r: Results) -> dict[str, Any]:
    """The run's results for reliability/results.json."""
    return {
        "command": r.command,
        "date_utc": r.date_utc,
        "revision": r.revision,
        "cores": r.cores,
        "quick": r.quick,
        "matrix": [matrix.as_json(c) for c in r.matrix] if r.matrix is not None else None,
        "crash": [crash.as_json(t) for t in r.crash] if r.crash is not None else None,
        "fuzz": [f.__dict__ for f in r.fuzz] if r.fuzz is not None else None,
        "security": [a.__dict__ for a in r.security] if r.security is not None else None,
        "bridges": r.bridges.__dict__ if r.bridges is not None else None,
        "outage": r.outage.__dict__ if r.outage is not None else None,
        "soak": _soak_json(r.soak),
        "wall_s": r.wall_s,
        "fuzz_cases": r.fuzz_cases,
        "load_before": list(r.load_before),
        "runs": r.runs,
    }


def _fields(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def from_json(d: dict[str, Any]) -> Results:
    """The inverse of :func:`as_json` (derived keys such as ``problems`` are recomputed)."""
    load = d.get("load_before") or [0.0, 0.0, 0.0]
    r = Results(
        d["command"],
        d["date_utc"],
        d["revision"],
        int(d["cores"]),
        (float(load[0]), float(load[1]), float(load[2])),
        bool(d["quick"]),
        wall_s=dict(d.get("wall_s") or {}),
        fuzz_cases=int(d.get("fuzz_cases") or 0),
        runs=dict(d.get("runs") or {}),
    )
    if d.get("matrix") is not None:
        r.matrix = [Cell(**_fields(Cell, c)) for c in d["matrix"]]
    if d.get("crash") is not None:
        r.crash = [Trial(**_fields(Trial, t)) for t in d["crash"]]
    if d.get("fuzz") is not None:
        r.fuzz = [FuzzResult(**_fields(FuzzResult, f)) for f in d["fuzz"]]
    if d.get("security") is not None:
        r.security = [Attack(**_fields(Attack, a)) for a in d["security"]]
    if d.get("bridges") is not None:
        r.bridges = BridgeOutage(**_fields(BridgeOutage, d["bridges"]))
    if d.get("outage") is not None:
        r.outage = BrokerOutage(**_fields(BrokerOutage, d["outage"]))
    if d.get("soak") is not None:
        r.soak = _soak_from(d["soak"])
    return r


def _soak_json(k: Soak | None) -> dict[str, Any] | None:
    if k is None:
        return None
    return {
        **k.__dict__,
        "traces": [{**t.__dict__, "samples": [s.__dict__ for s in t.samples]} for t in k.traces],
    }


def _soak_from(d: dict[str, Any]) -> Soak:
    k = Soak(**_fields(Soak, {key: v for key, v in d.items() if key != "traces"}))
    for t in d.get("traces") or []:
        trace = ProcessTrace(
            **_fields(ProcessTrace, {key: v for key, v in t.items() if key != "samples"})
        )
        trace.samples = [Sample(**_fields(Sample, s)) for s in t.get("samples") or []]
        k.traces.append(trace)
    return k
