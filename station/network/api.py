"""The coordinator's MQTT command table (``qgs/v1/<coordinator>/cmd/<name>``).

Same envelope, graded acks and checks as a station's (docs/mqtt-api.md); the table in the
docs is generated from this one (``python -m station.network.api``).
"""

from __future__ import annotations

from station.bus.schema import Arg, CommandSpec

ACTIVE, PAUSED = "ACTIVE", "PAUSED"
RUNNING = frozenset({ACTIVE, PAUSED})

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        "pause",
        (),
        frozenset({ACTIVE}),
        "book no further windows (ACTIVE -> PAUSED); a window already booked or running goes on",
    ),
    CommandSpec("resume", (), frozenset({PAUSED}), "book windows again (PAUSED -> ACTIVE)"),
    CommandSpec(
        "skip_window",
        (Arg("window_id", "string", doc="a window id from get_plan"),),
        RUNNING,
        "never take this window; a booked window is cancelled on both stations "
        "(not once it is running: abort the stations' passes instead)",
    ),
    CommandSpec(
        "get_plan",
        (),
        frozenset(),
        "the campaign's windows (planned, booked, running, done, partial, ...) and results",
    ),
)


if __name__ == "__main__":
    from station.daemon.api import markdown_table

    print(markdown_table(COMMANDS))
