"""Security counts: attempts and successes (the bar is 0) against the shipped ACL and TLS.

Against a Mosquitto as shipped (configs/mosquitto/qgs.acl, a password file and
``use_username_as_clientid true``: the users of tests/conftest.py ``mosquitto_secured``), a
:class:`StationBus` for ``delingha`` logged in as ``delingha`` (client id
``qgs-station-delingha``, which the broker replaces by the user name) that records every
command it executes, and a read-only watcher logged in as ``dashboard``:

``anonymous``        connect without credentials (success: the broker accepts the session)
``wrong_password``   connect as ``operator`` with a wrong password (success: accepted)
``monitor_command``  a ``monitor`` publishes a command (success: the station executes it)
``station_spoof``    the station ``delingha`` publishes ``nanshan``'s status (retained), alarm,
                     state, telemetry and a command to it, and an ack "from nanshan" into the
                     watcher's inbox (success: the watcher receives any of them)
``client_id_takeover`` a ``monitor`` connects with the station's client id or its user name
                     (success: the station's connection drops — a new broker connection or
                     its Last Will seen by the watcher)
``monitor_takeover`` a ``monitor`` connects with the watcher's client id, which is also its
                     user name (success: the watcher's connection drops)
``reply_snooping``   a ``monitor`` connects with the operator's user name as client id and
                     subscribes to ``qgs/reply/operator/#`` and ``qgs/reply/#`` while the operator
                     commands the station (success: it receives any of the operator's acks)
``operator_snooping`` the same by an ``operator`` against the coordinator's bookings
                     (``coordinator-cmd``'s inbox)
``forged_reply_to``  an ``operator`` sends commands whose ``reply_to`` is the station's
                     ``status``, its ``event/alarm``, another station's inbox, or has a NUL
                     (success: an ack lands on a station topic / the station is disconnected)

Against the TLS central broker of ``write_broker_kit`` (a generated CA and server
certificate): ``tls_no_ca`` (verify against the system store: success = connected),
``tls_plain`` (plain MQTT to the TLS port: success = connected), ``tls_wrong_password``,
``tls_anonymous``; and the control ``tls_operator`` (the kit's operator with the CA: expected
to connect — it is counted as a control, not an attack).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from drivers.clock import SystemClock
from reliability.broker import USERS, exe, free_port, mosquitto, stop
from station.bus.connection import BrokerConfig
from station.bus.envelope import Command
from station.bus.requester import CommandTimeout, Requester
from station.bus.schema import CommandSpec
from station.bus.station_bus import CommandContext, StationBus
from station.network.brokers import write_broker_kit

STATION = "delingha"
OTHER = "nanshan"  #: the station ``station_spoof`` impersonates
STATION_ID = f"qgs-station-{STATION}"
WATCHER = "dashboard"  #: the read-only observer's user (and client id)
CLOCK = SystemClock()
BOUND_S = 3.0  #: wall s: connect timeout, and how long to wait for an effect
SETTLE_S = 0.5  #: wall s for a dropped connection to be noticed


@dataclass
class Attack:
    """One kind of attempt: how many were tried, how many succeeded (must be 0)."""

    kind: str
    attempts: int = 0
    successes: int = 0
    control: bool = False  #: a legitimate login that must succeed (not an attack)
    note: str = ""


def _login(port: int, user: str | None, password: str | None = None) -> BrokerConfig:
    pw = password if password is not None else USERS.get(user or "")
    return BrokerConfig(port=port, username=user, password=pw, timeout_s=BOUND_S)


async def _connects(config: BrokerConfig, client_id: str) -> bool:
    try:
        async with config.client(client_id):
            return True
    except (aiomqtt.MqttError, OSError, TimeoutError):
        return False


@dataclass
class _Watcher:
    """A long-running read-only client (user ``dashboard``): what it saw, how often it was
    dropped (a takeover of its session) and reconnected."""

    port: int
    topics: list[str]
    seen: list[tuple[str, bytes]]
    ready: asyncio.Event
    drops: int = 0

    async def run(self) -> None:
        while True:
            try:
                async with _login(self.port, WATCHER).client(WATCHER) as client:
                    for t in self.topics:
                        await client.subscribe(t, qos=1)
                    self.ready.set()
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes) else b""
                        self.seen.append((str(message.topic), payload))
            except aiomqtt.MqttError:
                self.drops += 1
                self.ready.clear()
                await asyncio.sleep(0.1)


async def _station_spoof(port: int, watcher: _Watcher, attempts: int) -> Attack:
    """``delingha`` publishes as ``nanshan`` (before delingha's own bus runs: a second
    connection of one user would take the first over, which is by design)."""
    a = Attack("station_spoof")
    forged = [
        (f"qgs/v1/{OTHER}/status", True),
        (f"qgs/v1/{OTHER}/event/alarm", False),
        (f"qgs/v1/{OTHER}/state/pass", True),
        (f"qgs/v1/{OTHER}/telemetry/pointing", False),
        (f"qgs/v1/{OTHER}/cmd/get_schedule", False),
        (f"qgs/reply/{WATCHER}/{OTHER}/get_schedule", False),
    ]
    for i in range(attempts):
        a.attempts += 1
        mark = len(watcher.seen)
        body = json.dumps({"id": f"spoof-{i}", "ack": "COMPLETE", "state": "offline"}).encode()
        with contextlib.suppress(aiomqtt.MqttError):
            async with _login(port, STATION).client(STATION_ID) as client:
                for topic, retain in forged:
                    await client.publish(topic, body, qos=1, retain=retain, timeout=BOUND_S)
        await asyncio.sleep(SETTLE_S)
        landed = [t for t, _ in watcher.seen[mark:] if f"/{OTHER}/" in t]
        if landed:
            a.successes += 1
            a.note = f"landed on {sorted(set(landed))}"
    return a


async def _snoop(port: int, attacker: str, victim: str, station: str) -> bool:
    """``attacker`` (client id = the victim's user name) listens while ``victim`` commands."""
    got: list[str] = []
    listening = asyncio.Event()

    async def listen() -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async with _login(port, attacker).client(victim) as client:
                for topic in (f"qgs/reply/{victim}/#", "qgs/reply/#"):
                    await client.subscribe(topic, qos=1, timeout=BOUND_S)
                listening.set()
                async for message in client.messages:
                    got.append(str(message.topic))
        listening.set()

    task = asyncio.create_task(listen())
    try:
        await asyncio.wait_for(listening.wait(), BOUND_S * 2)
        # its own client id (the broker replaces it by the user name): never the attacker's
        async with Requester(_login(port, victim), CLOCK, client_id=f"{victim}-own") as requester:
            with contextlib.suppress(CommandTimeout):
                await requester.send(station, "get_schedule", timeout_s=BOUND_S)
        await asyncio.sleep(SETTLE_S)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return any(t.startswith(f"qgs/reply/{victim}/") for t in got)


async def _acl_attacks(port: int, attempts: int) -> list[Attack]:
    executed: list[str] = []

    async def handler(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
        executed.append(cmd.id)
        return {}

    seen: list[tuple[str, bytes]] = []
    watcher = _Watcher(
        port,
        [
            f"qgs/v1/{STATION}/status",
            f"qgs/v1/{STATION}/event/#",
            f"qgs/v1/{OTHER}/#",
            "qgs/reply/#",
        ],
        seen,
        asyncio.Event(),
    )
    watching = asyncio.create_task(watcher.run())
    bus = StationBus(
        STATION, _login(port, STATION), CLOCK, state=lambda: "STANDBY", client_id=STATION_ID
    )
    bus.register(CommandSpec("get_schedule"), handler)
    out: list[Attack] = []
    try:
        await asyncio.wait_for(watcher.ready.wait(), 10.0)
        out.append(await _station_spoof(port, watcher, attempts))
        await bus.start()
        await bus.wait_connected(10.0)

        async def count(
            kind: str, attempt: Callable[[int], Awaitable[bool]], n: int = attempts
        ) -> None:
            a = Attack(kind)
            for i in range(n):
                a.attempts += 1
                if await attempt(i):
                    a.successes += 1
                await bus.wait_connected(10.0)  # the station is back before the next one
                await asyncio.wait_for(watcher.ready.wait(), 10.0)
            out.append(a)

        await count("anonymous", lambda i: _connects(_login(port, None), f"anon-{i}"))
        await count(
            "wrong_password", lambda i: _connects(_login(port, "operator", "guess"), f"ops-w{i}")
        )

        async def monitor_command(i: int) -> bool:
            before = len(executed)
            async with Requester(_login(port, "monitor"), CLOCK, client_id=f"mon-{i}") as mon:
                with contextlib.suppress(CommandTimeout):
                    await mon.send(STATION, "get_schedule", timeout_s=1.0)
            await asyncio.sleep(0.3)
            return len(executed) > before

        await count("monitor_command", monitor_command)

        async def takeover(i: int) -> bool:
            connections, mark = bus.connections, len(seen)
            await _connects(_login(port, "monitor"), (STATION_ID, STATION)[i % 2])
            await asyncio.sleep(SETTLE_S)
            await bus.wait_connected(10.0)
            will = any(b'"lwt"' in p for t, p in seen[mark:] if t.endswith("/status"))
            return bus.connections > connections or will

        await count("client_id_takeover", takeover)

        async def monitor_takeover(i: int) -> bool:
            drops = watcher.drops
            await _connects(_login(port, "monitor"), WATCHER)
            await asyncio.sleep(SETTLE_S)
            return watcher.drops > drops

        await count("monitor_takeover", monitor_takeover)
        await count("reply_snooping", lambda i: _snoop(port, "monitor", "operator", STATION))
        await count(
            "operator_snooping", lambda i: _snoop(port, "operator", "coordinator-cmd", STATION)
        )

        forged = [
            f"qgs/v1/{STATION}/status",
            f"qgs/v1/{STATION}/event/alarm",
            "qgs/reply/ops-x/lijiang/get_schedule",
            "qgs/reply/ops-x\x00/delingha/x",
            "qgs/reply/#",
            f"qgs/v1/{STATION}/cmd/get_schedule",
        ]

        async def forge(i: int) -> bool:
            reply_to = forged[i % len(forged)]
            body = {"id": f"forge-{i}", "ts": CLOCK.now(), "reply_to": reply_to}
            mark = len(seen)
            async with _login(port, "operator").client(f"ops-forge-{i}") as client:
                await client.publish(
                    f"qgs/v1/{STATION}/cmd/get_schedule", json.dumps(body).encode(), qos=1
                )
            await asyncio.sleep(SETTLE_S)
            landed = [t for t, p in seen[mark:] if b'"ack"' in p]
            dropped = not bus.connected
            if landed or dropped:
                why = f"ack on {landed[0]}" if landed else "the station was disconnected"
                notes.append(f"reply_to {reply_to!r}: {why}")
            return bool(landed) or dropped

        notes: list[str] = []
        await asyncio.sleep(1.0)  # let the station settle after the client-id attacks
        await bus.wait_connected(10.0)
        await count("forged_reply_to", forge, max(attempts, len(forged)))
        out[-1].note = "; ".join(notes)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await bus.stop()
    return out


@contextlib.contextmanager
def _tls_central(tmp: Path) -> Any:
    port, local = free_port(), free_port()
    kit = write_broker_kit(
        [STATION],
        tmp,
        central_port=port,
        central_local_port=local,
        site_ports={STATION: free_port()},
    )
    log = tmp / "central.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [exe("mosquitto"), "-c", str(kit.conf("central"))],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        yield kit, port, tmp
    finally:
        stop(proc)


async def _wait_tls(port: int) -> None:
    for _ in range(100):
        with contextlib.suppress(OSError):
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        await asyncio.sleep(0.05)


async def _handshake_without_ca(port: int) -> bool:
    """Whether a client trusting only the system CAs completes the TLS handshake (it must
    not: the server's certificate chains to the network's own CA). Raw ssl, so the socket
    is closed whatever happens (paho leaves a refused TLS socket open)."""
    ctx = ssl.create_default_context()
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"),
            BOUND_S,
        )
    except (ssl.SSLError, OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(ssl.SSLError, OSError):
        await writer.wait_closed()
    return True


async def _tls_attacks(port: int, root: Path, attempts: int) -> list[Attack]:
    await _wait_tls(port)
    ca = str(root / "ca.crt")
    op_pw = (root / "credentials" / "central" / "operator.pw").read_text().strip()

    def cfg(**kw: Any) -> BrokerConfig:
        return BrokerConfig(port=port, timeout_s=BOUND_S, **kw)

    cases: list[tuple[str, BrokerConfig, bool]] = [
        ("tls_operator", cfg(tls=True, ca_file=ca, username="operator", password=op_pw), True),
        ("tls_plain", cfg(username="operator", password=op_pw), False),
        (
            "tls_wrong_password",
            cfg(tls=True, ca_file=ca, username="operator", password="guess"),
            False,
        ),
        ("tls_anonymous", cfg(tls=True, ca_file=ca), False),
    ]
    out = [Attack("tls_no_ca")]
    for _ in range(attempts):  # a TLS handshake trusting only the system store
        out[0].attempts += 1
        if await _handshake_without_ca(port):
            out[0].successes += 1
    for kind, config, control in cases:
        a = Attack(kind, control=control)
        for i in range(attempts):
            a.attempts += 1
            if await _connects(config, f"tls-{kind}-{i}"):
                a.successes += 1
        out.append(a)
    return out


async def run_security(attempts: int) -> list[Attack]:
    with tempfile.TemporaryDirectory(prefix="qgs-sec-") as tmp:
        root = Path(tmp)
        with mosquitto(root / "acl", secured=True) as broker:
            out = await _acl_attacks(broker.port, attempts)
        with _tls_central(root / "kit") as (_kit, port, kit_root):
            out += await _tls_attacks(port, kit_root, attempts)
    for a in out:
        print(f"security {a.kind}: {a.successes}/{a.attempts}", flush=True)
    return out
