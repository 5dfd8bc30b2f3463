"""`qgs monitor`: every station's status, pass state, pointing error, rates and alarms, live.

Built from MQTT alone (read-only subscription to ``qgs/v1/#``), so a monitor account with
the ``monitor`` ACL role is enough. :class:`StationView` is the model (fed by messages,
tested on its own); :func:`render` draws it with rich.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from rich.console import Console
from rich.live import Live
from rich.table import Table

from drivers.errors import ConfigError
from station.bus.connection import BrokerConfig, read_secret
from station.bus.envelope import TOPIC_ROOT


@dataclass
class StationView:
    """What the monitor knows about one station."""

    name: str
    status: str = "?"
    summary: str = "?"
    session: int = 0
    pass_state: str = "-"
    pointing_error_arcsec: float | None = None
    rates_hz: dict[str, float] = field(default_factory=dict)
    alarms: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    telemetry_gaps: int = 0
    #: a coordinator's live classical-channel figures (``telemetry/live``), one line
    live: str = "-"
    _seq: dict[str, int] = field(default_factory=dict)


class MonitorModel:
    """All stations, updated from ``qgs/v1/<station>/<kind>/...`` messages."""

    def __init__(self) -> None:
        self.stations: dict[str, StationView] = {}

    def update(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 4 or "/".join(parts[:2]) != TOPIC_ROOT:
            return
        station, kind, rest = parts[2], parts[3], parts[4:]
        try:
            body = json.loads(payload) if payload else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            return
        if not isinstance(body, dict):
            return
        view = self.stations.setdefault(station, StationView(station))
        if kind == "status":
            session = body.get("session", 0)
            if not isinstance(session, int) or isinstance(session, bool):
                session = 0  # a malformed retained status must not stop the monitor
            # A Will from an older session (broker session takeover) must not win.
            if session >= view.session:
                view.session = session
                view.status = str(body.get("state", "?"))
                view.summary = str(body.get("summary", "?"))
        elif kind == "state" and rest == ["pass"]:
            view.pass_state = str(body.get("state", "-"))
        elif kind == "telemetry" and rest:
            self._telemetry(view, rest[0], body)
        elif kind == "event" and rest:
            # state changes and completed passes are "info": only warnings and errors alarm
            level = body.get("level", "info")
            if level in ("warning", "error"):
                text = body.get("message") or body.get("reason") or ""
                label = body.get("kind") or rest[0]
                view.alarms.append(f"{label} [{level}] {text}".strip())

    def _telemetry(self, view: StationView, stream: str, body: dict[str, Any]) -> None:
        seq = body.get("seq")
        if isinstance(seq, int):
            last = view._seq.get(stream)
            if last is not None and seq > last + 1:
                view.telemetry_gaps += seq - last - 1
            view._seq[stream] = seq
        if stream == "pointing":
            errors = body.get("error_arcsec")
            if isinstance(errors, list) and errors:
                view.pointing_error_arcsec = float(max(abs(float(e)) for e in errors))
        elif stream == "rates":
            rates = body.get("rates_hz")
            if isinstance(rates, dict):
                view.rates_hz = {str(k): float(v) for k, v in rates.items()}
        elif stream == "live":
            view.live = live_line(body)


def live_line(body: dict[str, Any]) -> str:
    """``telemetry/live`` as one line: window, coincidences, rate, S ± σ, QBER ± σ."""
    if not body.get("locked"):
        frames = sum(body.get("frames", {}).values())
        return f"{body.get('window_id', '?')}: searching ({frames} frames)"
    parts = [f"{body.get('window_id', '?')}: {body.get('coincidences', 0)} coinc"]
    for key, label, scale, unit in (
        ("rate_hz", "", 1.0, "/s"),
        ("s", "S ", 1.0, ""),
        ("qber", "QBER ", 100.0, "%"),
    ):
        value = body.get(key)
        if isinstance(value, int | float):
            sigma = body.get(f"{key}_sigma")
            err = f"±{sigma * scale:.2f}" if isinstance(sigma, int | float) else ""
            parts.append(f"{label}{value * scale:.2f}{err}{unit}")
    return " ".join(parts)


def render(model: MonitorModel) -> Table:
    table = Table(title="qgs stations", expand=True)
    columns = ("station", "link", "summary", "pass", "pointing err", "rates (Hz)", "live", "alarms")
    for column in columns:
        table.add_column(column)
    for name in sorted(model.stations):
        v = model.stations[name]
        style = {"online": "green", "offline": "red"}.get(v.status, "yellow")
        err = "-" if v.pointing_error_arcsec is None else f'{v.pointing_error_arcsec:.1f}"'
        rates = " ".join(f"{k}:{r:,.0f}" for k, r in sorted(v.rates_hz.items())) or "-"
        table.add_row(
            name,
            f"[{style}]{v.status}[/{style}] #{v.session}",
            v.summary,
            v.pass_state,
            err,
            rates,
            v.live,
            "\n".join(v.alarms) or "-",
        )
    return table


async def watch(
    broker: BrokerConfig, model: MonitorModel, *, duration_s: float | None, console: Console
) -> None:
    """Subscribe read-only and redraw until ``duration_s`` (wall) or Ctrl-C."""
    client = broker.client(f"monitor-{uuid.uuid4().hex[:8]}")
    async with client:
        await client.subscribe(f"{TOPIC_ROOT}/#", qos=1, timeout=broker.timeout_s)
        with Live(render(model), console=console, refresh_per_second=4) as live:

            async def pump() -> None:
                async for message in client.messages:
                    if isinstance(message.payload, bytes):
                        model.update(str(message.topic), message.payload)
                        live.update(render(model))

            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration_s):
                    await pump()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("monitor", help="live view of every station from MQTT")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL")
    parser.add_argument("--username", help="broker user (e.g. one with the monitor role)")
    parser.add_argument(
        "--password-file", help="file whose first line is the password (never on the command line)"
    )
    parser.add_argument("--ca-file", help="CA file for mqtts:// brokers")
    parser.add_argument("--v311", action="store_true", help="use MQTT 3.1.1 (e.g. amqtt)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        password = (
            read_secret(args.password_file, key="--password-file") if args.password_file else None
        )
        broker = BrokerConfig.from_url(
            args.broker,
            username=args.username,
            password=password,
            ca_file=args.ca_file,
            protocol="v311" if args.v311 else "v5",
        )
    except ConfigError as exc:
        print(f"qgs monitor: {exc}", file=sys.stderr)
        return 2
    model = MonitorModel()
    console = Console()
    try:
        asyncio.run(watch(broker, model, duration_s=args.duration, console=console))
    except aiomqtt.MqttError as exc:
        print(f"qgs monitor: cannot use broker {args.broker}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
