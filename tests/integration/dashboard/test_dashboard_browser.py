"""`qgs dashboard` in headless Chromium: a warped pass on real daemons, and the read-only wall.

Processes (all loopback, stopped by PID): a real Mosquitto (fixture), ``qgs dashboard`` (a
subprocess, as an operator starts it), Debian's ``chromium`` driven over the DevTools
protocol (cdp.py), and for the pass a rehearsal session (station/network/rehearsal.py): the
rig and one ``qgs station run`` per station, with the campaign coordinator in this process.

1. While the warped pass runs (rate 12), the page shows both stations tracking, the mount
   marker on the sky plot moves, the singles rates change, the coordinator's plan and live
   classical-channel figures appear; a screenshot is taken (to docs/figures/dashboard.png
   with QGS_UPDATE_FIGURES=1). After the window, the retained result is listed and the
   stations show offline.
2. With the secured broker (shipped ACL) and the ``monitor`` account, nothing reaches the
   station through the page (no form; every non-GET request is refused) or around it (the
   monitor's own command is dropped by the broker), while an operator's command does run.
"""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from drivers.clock import SystemClock
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack, Command
from station.bus.requester import CommandTimeout, Requester
from station.bus.schema import CommandSpec
from station.bus.station_bus import CommandContext, StationBus
from station.network.commands import network_elements
from station.network.config import load_network_config
from station.network.coordinator import Coordinator
from station.network.rehearsal import Session, with_directory
from station.network.rehearse import campaign_windows, rehearse_window, world_start
from tests.conftest import TEST_USERS, Broker, stop_process
from tests.integration.dashboard.cdp import Page, chromium

ROOT = Path(__file__).resolve().parents[3]
RIG = ROOT / "configs/rig/delingha_nanshan_2020.toml"
RATE = 12.0
BELL_RECEIVERS = (
    *("--set", "stations.delingha.optics_loss_db=11.6"),
    *("--set", "stations.nanshan.optics_loss_db=11.6"),
)
STATIONS = ("delingha", "nanshan")
#: the docs' figure is rewritten only when asked (QGS_UPDATE_FIGURES=1): `make test` must not
#: dirty the tree; otherwise the screenshot goes to the test's temporary directory
DOCS_SCREENSHOT = ROOT / "docs/figures/dashboard.png"
LOCK_WAIT_S = 10.0  #: wall s the screenshot waits for the live channel's S (mid-window)
PASS_BOUND_S = 120.0  #: wall s for the pass to reach each checked point (window ~20 s at 12x)


@contextmanager
def dashboard(tmp: Path, *args: str) -> Iterator[str]:
    """``qgs dashboard --port 0 ...`` as a subprocess; yields the URL it prints."""
    out = tmp / "dashboard.out"
    with out.open("wb") as stdout, (tmp / "dashboard.err").open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "station.cli", "dashboard", "--port", "0", *args],
            stdout=stdout,
            stderr=stderr,
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 20.0
        while True:
            lines = [x for x in out.read_text().splitlines() if x.startswith("qgs dashboard: http")]
            if lines:
                url = lines[0].split(": ", 1)[1]
                assert url.startswith("http://127.0.0.1:"), url
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dashboard did not start: {(tmp / 'dashboard.err').read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        stop_process(proc)
    assert proc.returncode == 0, (tmp / "dashboard.err").read_text()


def _network(tmp: Path, port: int) -> Path:
    text = (ROOT / "configs/network/demo.toml").read_text()
    text = text.replace('broker = "embedded"', f'broker = "mqtt://127.0.0.1:{port}"')
    text = text.replace('id = "demo"', 'id = "dash"')
    text = text.replace("../satellites/", f"{ROOT}/configs/satellites/")
    text = text.replace("../stations/", f"{ROOT}/configs/stations/")
    path = tmp / "network.toml"
    path.write_text(text)
    return path


def card(station: str) -> str:
    return f"document.querySelector('[data-station=\"{station}\"]')"


async def _mount(page: Page, station: str) -> tuple[float, float] | None:
    value = await page.evaluate(
        f"(() => {{ const m = {card(station)}?.querySelector('circle.mount');"
        " return m ? [Number(m.dataset.az), Number(m.dataset.el)] : null; })()"
    )
    return None if value is None else (float(value[0]), float(value[1]))


async def _watch_pass(page: Page, seen: dict[str, Any], screenshot: Path) -> None:
    """During the pass: tracking state, a moving mount marker, changing rates, live figures."""
    tracking = " && ".join(
        f"{card(s)}?.querySelector('.pass-state')?.dataset.state === 'TRACK'" for s in STATIONS
    )
    await page.wait_for(tracking, bound_s=PASS_BOUND_S)
    seen["tracking"] = True
    first = await _mount(page, "delingha")
    rates = f"{card('delingha')}?.querySelector('.rates')?.dataset.total"
    first_rates = await page.wait_for(rates, bound_s=20.0)
    seen["track_points"] = await page.evaluate(
        f"{card('delingha')}.querySelector('polyline.track').getAttribute('points')"
        ".split(' ').length"
    )
    seen["satellite_marker"] = await page.evaluate(
        f"!!{card('delingha')}.querySelector('circle.sat')"
    )
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        later = await _mount(page, "delingha")
        later_rates = await page.evaluate(rates)
        if later != first and later_rates != first_rates:
            seen["mount"] = (first, later)
            seen["rates"] = (first_rates, later_rates)
            break
        await asyncio.sleep(0.25)
    # the coordinator: its plan, then live figures from the classical channel
    coordinator = "document.querySelector('[data-node=\"coordinator\"]')"
    seen["plan_rows"] = await page.wait_for(
        f"{coordinator}?.querySelectorAll('table.plan tr[data-status]').length", bound_s=20.0
    )
    live = f"{coordinator}?.querySelector('.live-window')"
    seen["live_window"] = await page.wait_for(f"{live}?.dataset.window", bound_s=PASS_BOUND_S)
    # the figures once the classical channel locks (best effort: the picture is nicer)
    deadline = time.monotonic() + LOCK_WAIT_S
    while time.monotonic() < deadline and not seen.get("live_s"):
        seen["live_s"] = await page.evaluate(
            f"{coordinator}.querySelector('.live-s').dataset.value"
        )
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)  # a few more points on the trail for the picture
    await page.screenshot(screenshot)
    seen["screenshot"] = True


@pytest.mark.mosquitto
@pytest.mark.timeout(420)
async def test_dashboard_follows_a_warped_pass(tmp_path: Path, mosquitto: Broker) -> None:
    cfg = with_directory(load_network_config(_network(tmp_path, mosquitto.port)), tmp_path / "c")
    start = world_start(RIG)
    elements = network_elements(cfg, start)
    [window] = campaign_windows(cfg, elements, start, 1)
    broker = BrokerConfig(host="127.0.0.1", port=mosquitto.port)
    seen: dict[str, Any] = {}
    with dashboard(tmp_path, "--broker", f"mqtt://127.0.0.1:{mosquitto.port}") as url:
        async with chromium(tmp_path) as page:
            await page.call("Page.navigate", url=url)
            # the first paint says "Waiting for the dashboard server…" until the model arrives
            text = await page.wait_for(
                "(t => t && t.includes('Nothing connected yet') ? t : null)"
                "(document.getElementById('empty')?.textContent)",
                bound_s=20,
            )
            assert "Nothing connected yet" in text, text
            assert "connected" in await page.evaluate(
                "document.getElementById('broker').textContent"
            )

            shot = DOCS_SCREENSHOT if os.environ.get("QGS_UPDATE_FIGURES") else tmp_path / "d.png"

            async def hook(session: Session, coordinator: Coordinator) -> None:
                await _watch_pass(page, seen, shot)

            done = await rehearse_window(
                cfg, elements, RIG, broker, window, RATE, hook=hook, rig_args=BELL_RECEIVERS
            )
            # after the window: its retained result is listed with the coordinator's status
            # (whatever the analysis gave), and the stations went offline (clean shutdown at
            # the end of the rehearsal session)
            row = f"document.querySelector('table.results tr[data-window=\"{window.id}\"]')"
            shown = await page.wait_for(f"{row}?.children[1].textContent", bound_s=20)
            assert shown == done.status.value, (shown, done.status, done.reason)
            for s in STATIONS:
                await page.wait_for(f"{card(s)}?.dataset.link === 'offline'", bound_s=20)
    assert seen.get("screenshot"), (seen, done.status, done.reason)
    assert seen["track_points"] > 20, seen  # the planned sky track from state/pass
    assert seen["satellite_marker"], seen
    (az0, el0), (az1, el1) = seen["mount"]
    assert (az0, el0) != (az1, el1), seen
    assert 0.0 <= el1 <= 90.0, seen
    assert float(seen["rates"][1]) > 0.0, seen
    assert seen["plan_rows"] >= 1, seen
    assert seen["live_window"] == window.id, seen
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def login(broker: Broker, user: str) -> BrokerConfig:
    return BrokerConfig(port=broker.port, username=user, password=TEST_USERS[user], timeout_s=3.0)


@pytest.mark.mosquitto
async def test_monitor_cannot_command_through_the_page_or_around_it(
    tmp_path: Path, mosquitto_secured: Broker
) -> None:
    executed: list[str] = []

    async def safe(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
        executed.append(cmd.reply_to.split("/")[2])
        return {}

    bus = StationBus(
        "delingha", login(mosquitto_secured, "delingha"), SystemClock(), state=lambda: "ENABLED"
    )
    bus.register(CommandSpec("safe"), safe)
    password = tmp_path / "monitor.pass"
    # the page's own monitor-role user: a second connection of one user would take the
    # first over (the broker's client id is the user name), and "monitor" is used below
    password.write_text(TEST_USERS["dashboard"] + "\n")
    broker_url = f"mqtt://127.0.0.1:{mosquitto_secured.port}"
    await bus.start()
    try:
        await bus.wait_connected(10)
        await bus.publish_state("pass", {"state": "IDLE"})
        args = ("--broker", broker_url, "--username", "dashboard", "--password-file", str(password))
        with dashboard(tmp_path, *args) as url:
            async with chromium(tmp_path) as page:
                await page.call("Page.navigate", url=url)
                online = f"{card('delingha')}?.dataset.link === 'online'"
                await page.wait_for(online, bound_s=20)
                # through the page: nothing to fill in or press, and the server takes only GET
                controls = (
                    "document.querySelectorAll('form, input, button, textarea, select').length"
                )
                assert await page.evaluate(controls) == 0
                statuses = await page.evaluate(
                    "Promise.all(["
                    + ", ".join(
                        f"fetch('{path}', {{method: '{method}', body: '{{}}'}}).then(r => r.status)"
                        for method in ("POST", "PUT", "DELETE", "PATCH")
                        for path in ("/", "/events", "/cmd/safe", "/qgs/v1/delingha/cmd/safe")
                    )
                    + "])"
                )
                assert statuses == [405] * 16, statuses
                assert (
                    await page.evaluate("fetch('/qgs/v1/delingha/cmd/safe').then(r => r.status)")
                    == 404
                )
                # around it: the monitor account's own command is dropped by the broker
                async with Requester(
                    login(mosquitto_secured, "monitor"), SystemClock(), client_id="mon-dash"
                ) as mon:
                    with pytest.raises(CommandTimeout):
                        await mon.send("delingha", "safe", {}, timeout_s=1.5)
                assert executed == []
                # ... while the same command from an operator runs (the station would obey)
                async with Requester(
                    login(mosquitto_secured, "operator"), SystemClock(), client_id="ops-dash"
                ) as op:
                    replies = await op.send("delingha", "safe", {})
                assert [r.ack for r in replies] == [Ack.ACK, Ack.COMPLETE]
                assert executed == ["operator"]  # the inbox is the user name
                # the page saw none of it as a state change, and still shows the station
                assert await page.evaluate(online)
                # the station leaves: its offline status reaches the page
                await bus.stop()
                await page.wait_for(f"{card('delingha')}?.dataset.link === 'offline'", bound_s=20)
    finally:
        await bus.stop()


def test_the_dashboard_package_never_publishes() -> None:
    """No code path in station/dashboard calls an MQTT publish (read-only by construction)."""
    calls = []
    for source in (ROOT / "station/dashboard").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Attribute) and "publish" in node.attr.lower():
                calls.append(f"{source.name}:{node.lineno} {node.attr}")
    assert calls == []
