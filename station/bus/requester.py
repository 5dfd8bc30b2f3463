"""The operator side of a command: send it, collect its graded acks until a terminal one.

Used by ``qgs cmd``, the coordinator, the tests and the latency bench. The requester
subscribes to its own inbox ``qgs/reply/<owner>/#`` *before* sending (MQTT v5
request/response practice; ``<owner>`` is the user name, which the ACL's
``qgs/reply/%u/#`` grants, or the client id on an open broker), sets v5
ResponseTopic/CorrelationData/MessageExpiryInterval when connected with v5, and repeats the
same fields in the JSON envelope for 3.1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.clock import Clock, WarpClock, WarpSpec
from drivers.errors import ConfigError
from station.bus.connection import BrokerConfig
from station.bus.envelope import REPLY_ROOT, Command, Reply, reply_topic, station_topic

log = logging.getLogger(__name__)


class CommandTimeout(TimeoutError):
    """No terminal ack arrived within the requester's bound."""


class Requester:
    """A connected command client (async context manager)."""

    def __init__(self, broker: BrokerConfig, clock: Clock, *, client_id: str | None = None) -> None:
        self.broker = broker
        self.clock = clock
        # the broker makes the user name the client id (use_username_as_clientid): say so
        self.client_id = client_id or broker.username or f"ops-{uuid.uuid4().hex[:8]}"
        self.inbox = broker.inbox_owner(self.client_id)  #: the level after qgs/reply/
        self._client: aiomqtt.Client | None = None
        self._pending: dict[str, asyncio.Queue[Reply]] = {}
        self._status: dict[str, asyncio.Future[bytes]] = {}  #: use_station_clock's waits
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Requester:
        client = self.broker.client(self.client_id)
        await client.__aenter__()
        self._client = client
        try:
            await client.subscribe(
                f"{REPLY_ROOT}/{self.inbox}/#", qos=1, timeout=self.broker.timeout_s
            )
        except BaseException:
            await client.__aexit__(None, None, None)
            raise
        self._reader = asyncio.create_task(self._read(client))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(None, None, None)
            self._client = None

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            waiting = self._status.get(str(message.topic))
            if waiting is not None:
                if not waiting.done() and isinstance(payload, bytes):
                    waiting.set_result(payload)
                continue
            if not str(message.topic).startswith(f"{REPLY_ROOT}/"):
                continue  # a status update after use_station_clock's wait
            try:
                assert isinstance(payload, bytes)
                reply = dataclasses.replace(
                    Reply.from_payload(payload), received_monotonic=time.monotonic()
                )
            except (AssertionError, ValueError, KeyError, TypeError):
                log.warning("unreadable reply on %s: %r", message.topic, payload)
                continue
            queue = self._pending.get(reply.id)
            if queue is not None:
                queue.put_nowait(reply)

    async def use_station_clock(self, station: str, timeout_s: float = 2.0) -> Clock:
        """Adopt the station's clock for ``ts``/``expires_at`` (and wait conversions).

        The station checks ``expires_at`` against its own clock, which is warped on the
        emulated rig; a warped daemon publishes its clock (``epoch=…,anchor=…,rate=…``) in
        its retained ``status``. Without that field (a real-time station) or without a
        retained status within ``timeout_s`` wall seconds, the requester's clock is kept.
        """
        client = self._client
        assert client is not None, "use Requester as an async context manager"
        # on this connection: a second one of the same user would take this one over
        topic = station_topic(station, "status")
        status: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._status[topic] = status
        try:
            await client.subscribe(topic, qos=1, timeout=self.broker.timeout_s)
            with contextlib.suppress(TimeoutError):
                payload = await asyncio.wait_for(status, timeout_s)
                try:
                    spec = json.loads(payload).get("clock")
                    if isinstance(spec, str):
                        self.clock = WarpClock.from_spec(WarpSpec.parse(spec))
                except (ValueError, AttributeError, ConfigError):
                    log.warning("unreadable status of %s: %r", station, payload)
        finally:
            del self._status[topic]
            with contextlib.suppress(aiomqtt.MqttError):
                await client.unsubscribe(topic, timeout=self.broker.timeout_s)
        return self.clock

    async def publish_raw(self, station: str, name: str, payload: bytes) -> None:
        """Publish arbitrary bytes as a command (tests of malformed input)."""
        assert self._client is not None, "use Requester as an async context manager"
        await self._client.publish(
            station_topic(station, "cmd", name), payload, qos=1, timeout=self.broker.timeout_s
        )

    async def send(
        self,
        station: str,
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout_s: float = 10.0,
        expires_in_s: float | None = 30.0,
        command_id: str | None = None,
    ) -> list[Reply]:
        """Send a command and return its acks, the last one terminal.

        ``timeout_s`` bounds the wait for ACK (wall seconds); after an INPROGRESS the wait is
        extended by the announced timeout. Raises CommandTimeout.
        """
        assert self._client is not None, "use Requester as an async context manager"
        now = self.clock.now()
        command = Command(
            name,
            command_id or uuid.uuid4().hex,
            now,
            reply_topic(self.inbox, station, name),
            None if expires_in_s is None else now + expires_in_s,
            dict(args or {}),
        )
        properties: Properties | None = None
        if self.broker.protocol == "v5":
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.ResponseTopic = command.reply_to
            properties.CorrelationData = command.id.encode()
            if expires_in_s is not None:
                properties.MessageExpiryInterval = max(1, int(expires_in_s))
        queue: asyncio.Queue[Reply] = asyncio.Queue()
        self._pending[command.id] = queue
        replies: list[Reply] = []
        try:
            await self._client.publish(
                station_topic(station, "cmd", name),
                command.to_payload(),
                qos=1,
                properties=properties,
                timeout=self.broker.timeout_s,
            )
            wait = timeout_s
            while True:
                try:
                    reply = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    raise CommandTimeout(
                        f"no terminal ack for {name!r} (id {command.id}) within {wait:g} s; "
                        f"got {[r.ack.value for r in replies]}"
                    ) from None
                replies.append(reply)
                if reply.ack.terminal:
                    return replies
                if reply.timeout_s is not None:
                    wait = self.clock.to_wall(reply.timeout_s) + timeout_s
        finally:
            self._pending.pop(command.id, None)
