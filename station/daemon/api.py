"""The daemon's MQTT command table: names, arguments, valid summary states, doc lines.

Each command arrives on ``qgs/v1/<station>/cmd/<name>`` in the JSON envelope of
docs/mqtt-api.md; the bus checks it against its spec here before any handler runs, so a bad
argument or a command in the wrong state gets ``FAILED`` with a reason and changes nothing.
docs/mqtt-api.md's daemon table is generated from this table (``python -m
station.daemon.api``), so the two cannot drift apart.
"""

from __future__ import annotations

from station.bus.schema import Arg, CommandSpec

STANDBY, ENABLED, FAULT = "STANDBY", "ENABLED", "FAULT"
CONNECTED = frozenset({STANDBY, ENABLED, FAULT})
RUNNING = frozenset({STANDBY, ENABLED})
#: exclusive group of the commands that move the mount: one at a time; `safe` supersedes
MOTION = "motion"

_UTC = "ISO-8601 UTC time, e.g. 2021-04-29T17:23:15Z"

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("enable", (), frozenset({STANDBY}), "run the schedule (STANDBY -> ENABLED)"),
    CommandSpec(
        "standby",
        (),
        frozenset({ENABLED}),
        "stop taking passes (ENABLED -> STANDBY); a pass in progress continues, abort it",
    ),
    CommandSpec("abort", (), CONNECTED, "abort the pass in progress: stop recording, stow"),
    CommandSpec(
        "safe",
        (),
        CONNECTED,
        "abort any pass, park the mount, close the recording; ENABLED -> STANDBY (also "
        "when the park is refused: FAILED with the gate's reason); supersedes a running "
        "goto/park (ABORTED)",
        exclusive=MOTION,
        preempts=frozenset({MOTION}),
    ),
    CommandSpec("reset", (), frozenset({FAULT}), "reconnect every device; FAULT -> STANDBY"),
    CommandSpec(
        "schedule_pass",
        (Arg("aos_utc", "string", doc=_UTC),),
        RUNNING,
        "book the predicted pass with this AOS (within 60 s)",
    ),
    CommandSpec(
        "cancel_pass",
        (Arg("aos_utc", "string", doc=_UTC),),
        RUNNING,
        "never take the predicted pass with this AOS",
    ),
    CommandSpec(
        "book_window",
        (
            Arg("start_utc", "string", doc=_UTC),
            Arg("end_utc", "string", doc=_UTC),
            Arg("campaign", "string", doc="campaign id, recorded in the bundle"),
            Arg("peer", "string", required=False, doc="the other station of the campaign"),
        ),
        RUNNING,
        "book the pass overlapping a common-visibility window (coordinator request)",
    ),
    CommandSpec("get_schedule", (), frozenset(), "the upcoming passes and their outcomes"),
    CommandSpec(
        "goto",
        (
            Arg("az_deg", "number", min=-360.0, max=540.0, doc="axis azimuth (deg)"),
            Arg("el_deg", "number", min=-5.0, max=180.0, doc="axis elevation (deg)"),
        ),
        frozenset({STANDBY}),
        "slew to a position (checked by the safety gate); STANDBY and no pass only; "
        "FAILED while another motion command runs",
        exclusive=MOTION,
    ),
    CommandSpec(
        "park",
        (),
        frozenset({STANDBY}),
        "park the mount; STANDBY and no pass only; FAILED while another motion command runs",
        exclusive=MOTION,
    ),
    CommandSpec(
        "set_mode",
        (
            Arg("mode", "string", choices=("key", "bell"), doc="analyzer mode"),
            Arg(
                "bell_offset_deg",
                "number",
                required=False,
                min=-90.0,
                max=90.0,
                doc="Bell mode: this station's extra plate angle (deg; [analyzer] default)",
            ),
        ),
        RUNNING,
        "select the analyzer mode (BB84 key bases or CHSH Bell angles) for the next passes; "
        "not while a pass is in progress (its bundle records one mode)",
    ),
)


def markdown_table(commands: tuple[CommandSpec, ...] = COMMANDS) -> str:
    """A command table as Markdown (for docs/mqtt-api.md); the daemon's by default."""
    rows = ["| command | arguments | valid in | what it does |", "|---|---|---|---|"]
    for spec in commands:
        args = (
            "<br>".join(
                f"`{a.name}` {a.type}{'' if a.required else ' (optional)'}"
                + (f" in [{a.min:g}, {a.max:g}]" if a.min is not None and a.max is not None else "")
                + (f" one of {list(a.choices)}" if a.choices else "")
                for a in spec.args
            )
            or "-"
        )
        states = ", ".join(sorted(spec.states)) if spec.states else "any"
        rows.append(f"| `{spec.name}` | {args} | {states} | {spec.doc} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
