"""An embedded local broker: a supervised child process for single-machine use and the demo.

With ``broker = "embedded"`` the daemon (or the demo) starts its own broker bound to
loopback: Mosquitto when it is installed, otherwise amqtt (pure Python, MQTT 3.1.1 only; a
single-user local bus — its ACLs must not be relied on, reference/mqtt.md §2.4). The child
is restarted if it dies and stopped by PID on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Literal

from station.bus.connection import BrokerConfig

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0


class BrokerUnavailable(RuntimeError):
    """No broker program could be started; the message says what to install."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mosquitto() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


def _amqtt() -> str | None:
    exe = Path(sys.executable).with_name("amqtt")
    return str(exe) if exe.exists() else shutil.which("amqtt")


class EmbeddedBroker:
    """Start, supervise and stop a loopback broker (async context manager -> BrokerConfig)."""

    def __init__(self, *, prefer: Literal["auto", "mosquitto", "amqtt"] = "auto") -> None:
        self.prefer = prefer
        self.kind: str | None = None
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0

    def _command(self, workdir: Path) -> list[str]:
        mosquitto = _mosquitto() if self.prefer in ("auto", "mosquitto") else None
        if mosquitto is not None:
            conf = workdir / "mosquitto.conf"
            conf.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "set_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\n"
            )
            self.kind = "mosquitto"
            return [mosquitto, "-c", str(conf)]
        amqtt = _amqtt() if self.prefer in ("auto", "amqtt") else None
        if amqtt is not None:
            conf = workdir / "amqtt.yaml"
            conf.write_text(
                "listeners:\n  default:\n    type: tcp\n"
                f"    bind: 127.0.0.1:{self.port}\n"
                "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                "    allow_anonymous: true\n"
            )
            self.kind = "amqtt"
            return [amqtt, "-c", str(conf)]
        raise BrokerUnavailable(
            "no MQTT broker to embed: install mosquitto (apt-get install mosquitto) "
            "or the Python package amqtt (pip install amqtt)"
        )

    @property
    def config(self) -> BrokerConfig:
        # amqtt speaks MQTT 3.1.1 only; an MQTT 5 CONNECT hangs there (reference/mqtt.md §2.4).
        protocol: Literal["v5", "v311"] = "v5" if self.kind == "mosquitto" else "v311"
        return BrokerConfig(port=self.port, protocol=protocol)

    async def _spawn(self) -> None:
        assert self._dir is not None
        cmd = self._command(Path(self._dir.name))
        self._proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while True:
            if self._proc.returncode is not None:
                raise BrokerUnavailable(f"{self.kind} exited with {self._proc.returncode}")
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), 1.0
                )
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                break
            except (OSError, TimeoutError):
                if asyncio.get_running_loop().time() > deadline:
                    raise BrokerUnavailable(
                        f"{self.kind} did not listen on 127.0.0.1:{self.port} "
                        f"within {START_TIMEOUT_S:g} s"
                    ) from None
                await asyncio.sleep(0.05)
        log.info("embedded %s broker pid %d on 127.0.0.1:%d", self.kind, self._proc.pid, self.port)

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def _supervise(self) -> None:
        while not self._stopping:
            assert self._proc is not None
            code = await self._proc.wait()
            if self.stopping:
                return
            self.restarts += 1
            log.warning("embedded broker exited with %s; restarting", code)
            await asyncio.sleep(min(5.0, 0.2 * self.restarts))
            await self._spawn()

    async def __aenter__(self) -> BrokerConfig:
        self._dir = tempfile.TemporaryDirectory(prefix="qgs-broker-")
        os.chmod(self._dir.name, 0o755)  # mosquitto drops to its own user when run as root
        self.port = _free_port()
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise())
        return self.config

    async def __aexit__(self, *exc: object) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await asyncio.wait_for(proc.wait(), 10)
        if self._dir is not None:
            self._dir.cleanup()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid
