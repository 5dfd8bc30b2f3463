"""What the coordinator knows of each station, from the station's own MQTT topics.

A watcher client subscribes to every campaign station's retained ``status`` (online or the
Last Will's ``offline``, the summary state), ``event/pass_complete`` and ``event/alarm``,
and the live channel (``live/events``, binary). It reconnects with backoff, like the
station bus; a malformed message is logged and ignored, never fatal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from drivers.clock import Clock
from station.bus.connection import BrokerConfig
from station.bus.envelope import station_topic

log = logging.getLogger(__name__)

#: topics per station: (suffix, qos)
SUBSCRIPTIONS = (
    ("status", 1),
    ("event/pass_complete", 1),
    ("event/alarm", 1),
    ("live/events", 0),
)


@dataclass
class StationView:
    """The last thing each station said about itself (clock seconds for times)."""

    name: str
    online: bool = False
    summary: str = "UNKNOWN"
    session: int = 0
    reason: str | None = None
    changed_s: float = 0.0
    alarms: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        if not self.online:
            return f"{self.name} offline ({self.reason or 'no status'})"
        return f"{self.name} {self.summary}"


PassHandler = Callable[[str, dict[str, Any]], None]
LiveHandler = Callable[[str, bytes], None]


class StationWatcher:
    """Follows the campaign stations; calls back on pass completions and live frames."""

    def __init__(
        self,
        broker: BrokerConfig,
        clock: Clock,
        stations: tuple[str, ...],
        *,
        client_id: str,
        on_pass: PassHandler,
        on_live: LiveHandler,
        on_change: Callable[[], None],
    ) -> None:
        self.broker, self.clock = broker, clock
        self.views = {name: StationView(name) for name in stations}
        self.client_id = client_id
        self._on_pass, self._on_live, self._on_change = on_pass, on_live, on_change
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Watch until cancelled (reconnecting with 0.2-10 s jittered backoff)."""
        delay = 0.2
        while True:
            try:
                async with self.broker.client(self.client_id) as client:
                    for name in self.views:
                        for suffix, qos in SUBSCRIPTIONS:
                            await client.subscribe(
                                station_topic(name, suffix), qos=qos, timeout=self.broker.timeout_s
                            )
                    self.connected.set()
                    delay = 0.2
                    async for message in client.messages:
                        self._handle(str(message.topic), message.payload)
            except (aiomqtt.MqttError, TimeoutError) as exc:
                log.warning("station watcher lost the broker: %s; retrying in %.1f s", exc, delay)
            self.connected.clear()
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2.0, 10.0)

    def _handle(self, topic: str, payload: Any) -> None:
        parts = topic.split("/")
        if len(parts) < 4 or parts[2] not in self.views or not isinstance(payload, bytes):
            return
        name, suffix = parts[2], "/".join(parts[3:])
        if suffix == "live/events":
            self._on_live(name, payload)
            return
        try:
            body = json.loads(payload) if payload else {}
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            log.warning("ignoring malformed %s from %s: %s", suffix, name, exc)
            return
        view = self.views[name]
        if suffix == "status":
            self._status(view, body)
        elif suffix == "event/pass_complete":
            self._on_pass(name, body)
        elif suffix == "event/alarm":
            view.alarms = [*view.alarms[-49:], body]
        self._on_change()

    def _status(self, view: StationView, body: dict[str, Any]) -> None:
        session = body.get("session")
        session = session if isinstance(session, int) and not isinstance(session, bool) else 0
        online = body.get("state") == "online"
        if not online and view.online and session < view.session:
            return  # a late Will of an older connection; the station is back already
        view.online = online
        view.summary = str(body.get("summary", "UNKNOWN"))
        view.session = session
        reason = body.get("reason")
        view.reason = str(reason) if reason is not None else None
        view.changed_s = self.clock.now()
