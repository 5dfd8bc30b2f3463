"""The coordinator's protocol with its stations over a real Mosquitto, without the rig.

The two "stations" here are MQTT nodes built on the daemon's own bus (StationBus) and
command table (station/daemon/api.py) whose handlers answer as a daemon would — accept,
refuse with a reason, go offline mid-window, report the pass — so each coordinator rule
is held against one behaviour: a refusal fails the window with the station's reason and
cancels the other booking; a station that drops out makes the window partial; pause stops
booking; skip_window cancels a booked window on both stations. The clock runs at 50x (no
device to keep up with).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.clock import WarpClock
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack, Command
from station.bus.requester import Requester
from station.bus.schema import CommandRejected
from station.bus.station_bus import CommandContext, StationBus
from station.daemon.api import COMMANDS
from station.network.commands import network_elements
from station.network.config import NetworkConfig, load_network_config
from station.network.coordinator import Coordinator
from station.network.plan import Window, WindowStatus
from station.network.rehearsal import with_directory
from station.network.rehearse import campaign_windows, world_start
from station.tracking.elements import iso
from tests.conftest import Broker

ROOT = Path(__file__).resolve().parents[3]
RATE = 50.0
BOUND_S = 60.0  #: wall seconds any one scenario may take


class FakeStation:
    """A station node that answers the daemon's commands by a script (no devices)."""

    def __init__(self, name: str, broker: BrokerConfig, clock: WarpClock) -> None:
        self.name, self.clock = name, clock
        self.summary = "STANDBY"
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.refuse: dict[str, str] = {}
        self.window: tuple[float, float] | None = None
        self.bus = StationBus(name, broker, clock, state=lambda: self.summary)
        for spec in COMMANDS:
            self.bus.register(spec, self._handler(spec.name))

    def _handler(self, name: str) -> Callable[[Command, CommandContext], Any]:
        async def handle(cmd: Command, ctx: CommandContext) -> dict[str, Any]:
            self.calls.append((name, dict(cmd.args)))
            if name in self.refuse:
                raise CommandRejected(self.refuse[name])
            if name == "enable":
                self.summary = "ENABLED"
                await self.bus.publish_status()
            if name == "book_window":
                start = cmd.args["start_utc"]
                self.window = (start, cmd.args["end_utc"])
                return {"id": f"{self.name}-p1", "aos_utc": start, "los_utc": cmd.args["end_utc"]}
            return {}

        return handle

    async def report_pass(self, outcome: str = "complete") -> None:
        await self.bus.publish_event(
            "pass_complete",
            {"pass_id": f"{self.name}-p1", "outcome": outcome, "reason": "", "bundle": None},
        )


def _config(tmp: Path, port: int) -> NetworkConfig:
    cfg = load_network_config(ROOT / "configs/network/demo.toml")
    return with_directory(cfg, tmp / "campaign")


async def _scenario(
    tmp: Path,
    mosquitto: Broker,
    script: Callable[[Coordinator, Window, FakeStation, FakeStation], Any],
) -> tuple[Window, FakeStation, FakeStation]:
    cfg = _config(tmp, mosquitto.port)
    broker = BrokerConfig(host="127.0.0.1", port=mosquitto.port)
    start = world_start(ROOT / "configs/rig/delingha_nanshan_2020.toml")
    elements = network_elements(cfg, start)
    window = campaign_windows(cfg, elements, start, 1)[0]
    clock = WarpClock(window.start_s - 120.0, anchor=time.time(), rate=RATE)
    a, b = (FakeStation(name, broker, clock) for name in window.stations)
    await a.bus.start()
    await b.bus.start()
    await a.bus.wait_connected(5.0)
    await b.bus.wait_connected(5.0)
    coordinator = Coordinator(cfg, clock, broker, elements, max_windows=1)
    serving = asyncio.create_task(coordinator.serve())
    try:
        async with asyncio.timeout(BOUND_S):
            await script(coordinator, window, a, b)
            await serving
    finally:
        coordinator.request_stop()
        await asyncio.wait({serving}, timeout=10.0)
        await a.bus.stop()
        await b.bus.stop()
    done = next(w for w in coordinator.windows if w.id == window.id)
    return done, a, b


async def _until(cond: Callable[[], bool]) -> None:
    while not cond():
        await asyncio.sleep(0.05)


def test_a_refusal_fails_the_window_and_cancels_the_other_booking(
    tmp_path: Path, mosquitto: Broker
) -> None:
    async def script(c: Coordinator, w: Window, a: FakeStation, b: FakeStation) -> None:
        b.refuse["book_window"] = "mount under maintenance"

    w, a, b = asyncio.run(_scenario(tmp_path, mosquitto, script))
    assert w.status is WindowStatus.FAILED
    assert w.reason is not None, w.reason
    assert "mount under maintenance" in w.reason, w.reason
    assert b.name in w.reason
    names = [n for n, _ in a.calls]
    assert names[:2] == ["set_mode", "book_window"]
    assert "cancel_pass" in names, names  # A need not take a pass its partner cannot
    cancel = dict(a.calls)["cancel_pass"]
    assert cancel["aos_utc"] == a.window[0] if a.window else False
    # Bell mode: the coordinator set each station's plate offset from the network config
    modes = {s.name: dict(s.calls)["set_mode"] for s in (a, b)}
    assert modes[w.stations[0]] == {"mode": "bell", "bell_offset_deg": 0.0}
    assert modes[w.stations[1]] == {"mode": "bell", "bell_offset_deg": 11.25}


def test_a_station_dropping_out_makes_the_window_partial(tmp_path: Path, mosquitto: Broker) -> None:
    async def script(c: Coordinator, w: Window, a: FakeStation, b: FakeStation) -> None:
        await _until(lambda: w.id in {x.id for x in c.windows if x.status is WindowStatus.RUNNING})
        await b.bus.stop()  # gone mid-window (a clean stop says "offline"; a crash, the Will)
        await c.clock.sleep_until(w.end_s + 5.0)
        await a.report_pass("complete")

    w, a, b = asyncio.run(_scenario(tmp_path, mosquitto, script))
    assert w.status is WindowStatus.PARTIAL, (w.status, w.reason)
    assert w.reason is not None, w.reason
    assert f"{b.name} offline" in w.reason, w.reason
    assert w.passes[a.name]["outcome"] == "complete"
    assert "dropped" in w.passes[b.name]


def test_pause_books_nothing_and_skip_cancels_a_booked_window(
    tmp_path: Path, mosquitto: Broker
) -> None:
    async def script(c: Coordinator, w: Window, a: FakeStation, b: FakeStation) -> None:
        async with Requester(c.broker, c.clock, client_id="test-operator") as ops:
            await _until(lambda: any(x.status is WindowStatus.BOOKED for x in c.windows))
            paused = await ops.send("coordinator", "pause", timeout_s=10.0)
            assert paused[-1].ack is Ack.COMPLETE
            bad = await ops.send(
                "coordinator", "skip_window", {"window_id": "nope"}, timeout_s=10.0
            )
            assert bad[-1].ack is Ack.FAILED
            assert "no window 'nope'" in str(bad[-1].reason)
            plan = await ops.send("coordinator", "get_plan", timeout_s=10.0)
            body = plan[-1].result or {}
            assert body["summary"] == "PAUSED"
            assert any(x["id"] == w.id and x["status"] == "booked" for x in body["windows"])
            skipped = await ops.send(
                "coordinator", "skip_window", {"window_id": w.id}, timeout_s=10.0
            )
            assert skipped[-1].ack is Ack.COMPLETE, skipped[-1].reason
            assert (skipped[-1].result or {})["cancelled_on"] == list(w.stations)

    w, a, b = asyncio.run(_scenario(tmp_path, mosquitto, script))
    assert w.status is WindowStatus.SKIPPED
    for s in (a, b):
        assert ("cancel_pass", {"aos_utc": s.window[0] if s.window else ""}) in s.calls


def test_results_and_plan_are_retained(tmp_path: Path, mosquitto: Broker) -> None:
    """The plan and a window's result stay on the broker for clients that come later."""

    async def script(c: Coordinator, w: Window, a: FakeStation, b: FakeStation) -> None:
        await c.clock.sleep_until(w.end_s + 1.0)
        await a.report_pass("complete")
        await b.report_pass("aborted")

    w, _, _ = asyncio.run(_scenario(tmp_path, mosquitto, script))
    assert w.status is WindowStatus.PARTIAL
    broker = BrokerConfig(host="127.0.0.1", port=mosquitto.port)

    async def read() -> dict[str, dict[str, Any]]:
        got: dict[str, dict[str, Any]] = {}
        async with broker.client("late-reader") as client:
            await client.subscribe("qgs/v1/coordinator/#", qos=1)
            async with asyncio.timeout(5.0):
                async for m in client.messages:
                    if isinstance(m.payload, bytes) and m.payload:
                        got[str(m.topic)] = json.loads(m.payload)
                    if len(got) >= 3:
                        return got
        return got

    got = asyncio.run(read())
    result = got[f"qgs/v1/coordinator/campaign/demo/result/{w.id}"]
    assert result["status"] == "partial"
    assert "pass aborted" in result["reason"]
    assert got["qgs/v1/coordinator/status"]["state"] == "offline"  # stopped cleanly
    plan = got["qgs/v1/coordinator/state/plan"]
    assert any(x["id"] == w.id and x["status"] == "partial" for x in plan["windows"])
    assert iso(w.start_s) == result["start_utc"]
