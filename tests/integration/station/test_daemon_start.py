"""What a station daemon says as soon as it starts (before any pass), through a real broker.

Processes: Mosquitto (fixture), the rig and two `qgs station run` daemons (the demo's
stations, station/network/rehearsal.py), stopped by PID. The data directory is a plain
file, so no bundle could ever be written: each daemon must say so at start (an alarm and
FAULT with the reason), not at its first AOS; and the retained `state/pass` and
`state/schedule` are there from the start for any reader that connects later.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from station.bus.connection import BrokerConfig
from station.network.config import load_network_config
from station.network.rehearsal import rig_session
from station.network.rehearse import world_start
from tests.conftest import Broker

ROOT = Path(__file__).resolve().parents[3]
RIG = ROOT / "configs/rig/delingha_nanshan_2020.toml"
BOUND_S = 45.0


async def _collect(broker: BrokerConfig, seen: dict[str, list[dict[str, Any]]]) -> None:
    async with broker.client("start-watch") as client:
        await client.subscribe("qgs/v1/+/status", qos=1)
        await client.subscribe("qgs/v1/+/state/#", qos=1)
        await client.subscribe("qgs/v1/+/event/#", qos=1)
        async for message in client.messages:
            if isinstance(message.payload, bytes) and message.payload:
                seen.setdefault(str(message.topic), []).append(json.loads(message.payload))


def test_unwritable_data_dir_is_a_fault_at_start(tmp_path: Path, mosquitto: Broker) -> None:
    cfg = load_network_config(ROOT / "configs/network/demo.toml")
    out = tmp_path / "session"
    out.mkdir()
    (out / "bundles").write_text("a file where the data directory should be\n")
    broker = BrokerConfig(host="127.0.0.1", port=mosquitto.port)
    url = f"mqtt://127.0.0.1:{mosquitto.port}"
    names = [s.name for s in cfg.stations]
    seen: dict[str, list[dict[str, Any]]] = {}

    def faulted(name: str) -> bool:
        return any(
            s.get("summary") == "FAULT" for s in seen.get(f"qgs/v1/{name}/status", [])
        ) and bool(seen.get(f"qgs/v1/{name}/state/schedule"))

    async def run() -> None:
        watcher = asyncio.create_task(_collect(broker, seen))
        try:
            with rig_session(cfg, RIG, cfg.tle_path, url, out, world_start(RIG), 5.0):
                async with asyncio.timeout(BOUND_S):
                    while not all(faulted(n) for n in names):
                        await asyncio.sleep(0.2)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    asyncio.run(run())
    for name in names:
        alarms = [a for a in seen.get(f"qgs/v1/{name}/event/alarm", []) if a["kind"] == "recording"]
        assert alarms, seen.get(f"qgs/v1/{name}/event/alarm")
        assert "not writable" in alarms[0]["message"]
        summaries = seen[f"qgs/v1/{name}/event/summary"]
        assert summaries[-1]["state"] == "FAULT"
        assert "not writable" in summaries[-1]["reason"]
        # retained from the start: the pass state and the predicted schedule
        assert seen[f"qgs/v1/{name}/state/pass"][-1]["state"] == "IDLE"
        assert isinstance(seen[f"qgs/v1/{name}/state/schedule"][-1]["passes"], list)


def test_sigterm_while_a_silent_mount_connects_exits_promptly(
    tmp_path: Path, mosquitto: Broker
) -> None:
    """A mount that accepts the TCP connection and never answers: SIGTERM still stops the
    daemon at once (it was 28 s: the connect retries ran to their end first)."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    from tests.conftest import stop_process

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    urls = tmp_path / "urls.json"
    urls.write_text(json.dumps({"delingha": {"mount": f"rotctld://127.0.0.1:{port}"}}))
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "station.cli", "station", "run"),
            *("--config", str(ROOT / "configs/stations/delingha.toml")),
            *("--devices-json", str(urls), "--data-dir", str(tmp_path / "data")),
            *("--tle", str(ROOT / "configs/satellites/micius.tle")),
            *("--clock", f"epoch=1497700800,anchor={time.time()},rate=1"),
            *("--broker", f"mqtt://127.0.0.1:{mosquitto.port}"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    broker = BrokerConfig(host="127.0.0.1", port=mosquitto.port)

    async def online() -> None:
        async with broker.client("sigterm-watch") as client:
            await client.subscribe("qgs/v1/delingha/status", qos=1)
            async with asyncio.timeout(30.0):
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    if json.loads(message.payload)["state"] == "online":
                        return

    try:
        asyncio.run(online())  # on the bus, its mount still connecting
        conn, _ = silent.accept()  # the daemon is talking to the silent mount now
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20.0)
        took = time.monotonic() - t0
        conn.close()
    finally:
        stop_process(proc)
        silent.close()
    assert code == 0
    # a liveness bound, far from the 28 s it took (not a speed target)
    assert took < 10.0, took
