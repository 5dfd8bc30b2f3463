"""A short campaign: two warped common windows, two station daemons, the coordinator, the rig.

Processes (all loopback, stopped by PID): a real Mosquitto (fixture), and per window a rig
(`python -m sim_hardware`) and one `qgs station run` per station (station/network/
rehearsal.py); the coordinator runs here, one instance per window, continuing the campaign
from its directory as a restarted coordinator does.

Window 1: Nanshan's daemon is SIGKILLed a minute into the window. The broker publishes its
Last Will; the coordinator notes the drop-out, Delingha finishes its pass, and the window
ends ``partial`` with the reason. Window 2 runs clean: booked, executed, analysed (Bell
mode, the 2020 collection), its result retained on MQTT and in the campaign directory, with
the CHSH violation and the live figures from the classical channel agreeing with the
offline analysis of the same bundles.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from station.bus.connection import BrokerConfig
from station.network.campaign import CampaignDir
from station.network.commands import network_elements
from station.network.config import load_network_config
from station.network.coordinator import Coordinator
from station.network.plan import WindowStatus
from station.network.rehearsal import Session, with_directory
from station.network.rehearse import campaign_windows, rehearse_window, world_start
from tests.conftest import Broker

ROOT = Path(__file__).resolve().parents[3]
RIG = ROOT / "configs/rig/delingha_nanshan_2020.toml"
RATE = 10.0  #: the demo's rate: the daemons' loops keep up on 2 cores with margin
BELL_RECEIVERS = (
    *("--set", "stations.delingha.optics_loss_db=11.6"),
    *("--set", "stations.nanshan.optics_loss_db=11.6"),
)
KILL_AFTER_S = 60.0  #: clock s into window 1 at which Nanshan's daemon is killed


def _network(tmp: Path, port: int) -> Path:
    text = (ROOT / "configs/network/demo.toml").read_text()
    text = text.replace('broker = "embedded"', f'broker = "mqtt://127.0.0.1:{port}"')
    text = text.replace('id = "demo"', 'id = "itest"')
    text = text.replace("../satellites/", f"{ROOT}/configs/satellites/")
    text = text.replace("../stations/", f"{ROOT}/configs/stations/")
    path = tmp / "network.toml"
    path.write_text(text)
    return path


async def _kill_nanshan(session: Session, coordinator: Coordinator) -> None:
    """SIGKILL Nanshan's daemon ``KILL_AFTER_S`` into the running window (bounded wait)."""
    for _ in range(3000):
        running = [w for w in coordinator.windows if w.status is WindowStatus.RUNNING]
        if running and coordinator.clock.now() > running[0].start_s + KILL_AFTER_S:
            session.kill("nanshan")
            return
        await asyncio.sleep(0.1)
    pytest.fail("window 1 never ran long enough to kill a station in it")


async def _retained_results(broker: BrokerConfig, campaign: str) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    async with broker.client("itest-results") as client:
        await client.subscribe(f"qgs/v1/coordinator/campaign/{campaign}/result/#", qos=1)
        try:
            async with asyncio.timeout(5.0):
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    assert message.retain
                    results[str(message.topic).rsplit("/", 1)[1]] = json.loads(message.payload)
                    if len(results) == 2:
                        break
        except TimeoutError:
            pass
    return results


@pytest.mark.timeout(420)
def test_campaign_partial_then_done(tmp_path: Path, mosquitto: Broker) -> None:
    cfg = with_directory(load_network_config(_network(tmp_path, mosquitto.port)), tmp_path / "c")
    start = world_start(RIG)
    elements = network_elements(cfg, start)
    first, second = campaign_windows(cfg, elements, start, 2)
    broker = BrokerConfig(host="127.0.0.1", port=mosquitto.port)

    async def campaign() -> None:
        partial = await rehearse_window(
            cfg, elements, RIG, broker, first, RATE, hook=_kill_nanshan, rig_args=BELL_RECEIVERS
        )
        assert partial.status is WindowStatus.PARTIAL, (partial.status, partial.reason)
        assert partial.reason is not None
        assert "nanshan offline" in partial.reason, partial.reason
        assert partial.passes["delingha"]["outcome"] == "complete"
        done = await rehearse_window(
            cfg, elements, RIG, broker, second, RATE, rig_args=BELL_RECEIVERS
        )
        assert done.status is WindowStatus.DONE, (done.status, done.reason)

    try:
        asyncio.run(campaign())
    except aiomqtt.MqttError as exc:  # pragma: no cover - shown with the logs below
        pytest.fail(f"broker trouble: {exc}")

    # the campaign directory: the plan (as a restarted coordinator reads it) and each result
    plan = {w.id: w for w in CampaignDir(cfg.directory, cfg.campaign).load_plan()}
    assert plan[first.id].status is WindowStatus.PARTIAL
    assert plan[second.id].status is WindowStatus.DONE
    saved = json.loads((cfg.directory / second.id / "result.json").read_text())
    assert (cfg.directory / second.id / "report.png").stat().st_size > 10_000

    # the same results, retained on MQTT for a client that connects afterwards
    results = asyncio.run(_retained_results(broker, cfg.campaign))
    assert set(results) == {first.id, second.id}
    assert results[first.id]["status"] == "partial"
    assert "nanshan" in results[first.id]["reason"]
    figures = results[second.id]["figures"]
    assert figures == saved["figures"]

    # the physics: a CHSH violation at the 2020 collection, every coincidence space-like
    assert figures["coincidences"] > 200, figures
    assert figures["violation_sigma"] > 3.0, figures
    assert figures["locality_fraction_spacelike"] == 1.0

    # the live classical channel saw the same pass: its running S (published at 1 Hz during
    # the pass) agrees with the offline analysis of the bundles within the statistical error
    live = results[second.id]["live"]
    assert live is not None, live
    assert live["locked"], live
    assert live["coincidences"] >= 0.8 * figures["coincidences"], (live, figures)
    assert abs(live["s"] - figures["s"]) < 2.0 * figures["s_sigma"], (live, figures)
