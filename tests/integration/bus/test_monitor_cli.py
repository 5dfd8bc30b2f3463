"""`qgs monitor` shows a live station from MQTT alone; `mosquitto_sub` sees readable JSON."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys

from drivers.clock import SystemClock
from station.bus.connection import BrokerConfig
from station.bus.station_bus import StationBus
from tests.conftest import Broker


async def test_monitor_and_mosquitto_sub_show_the_station(mosquitto: Broker) -> None:
    config = BrokerConfig(port=mosquitto.port)
    bus = StationBus("delingha", config, SystemClock(), state=lambda: "ENABLED")
    async with bus:
        await bus.wait_connected(10)
        await bus.publish_state("pass", {"state": "WAIT_AOS"})
        monitor = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "station.cli",
            "monitor",
            "--broker",
            f"mqtt://127.0.0.1:{mosquitto.port}",
            "--duration",
            "2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
        )
        exe = shutil.which("mosquitto_sub")
        assert exe is not None, "mosquitto_sub missing (apt-get install mosquitto-clients)"
        sub = await asyncio.create_subprocess_exec(
            exe,
            "-p",
            str(mosquitto.port),
            "-t",
            "qgs/v1/#",
            "-v",
            "-C",
            "2",
            "-W",
            "10",
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(monitor.communicate(), 30)
            sub_out, _ = await asyncio.wait_for(sub.communicate(), 30)
        finally:
            for proc in (monitor, sub):
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    text = out.decode()
    assert monitor.returncode == 0, err.decode()
    assert "delingha" in text
    assert "online" in text
    assert "WAIT_AOS" in text
    lines = sub_out.decode().splitlines()
    assert len(lines) == 2
    for line in lines:
        topic, _, payload = line.partition(" ")
        assert topic.startswith("qgs/v1/delingha/")
        assert isinstance(json.loads(payload), dict)
