"""The station side of the MQTT bus: status with Last Will, state, telemetry, events, commands.

One :class:`StationBus` per daemon owns the broker connection: it reconnects with
exponential backoff and jitter (fresh client objects: aiomqtt clients are not reentrant),
re-subscribes, re-publishes the retained status and last-known states, and dispatches
commands with graded acks. Recording never depends on it: every publish is best effort
with a bounded wait, and a lost broker only shows up as ``connected == False``.

Topics (``qgs/v1/<station>/…``; see docs/mqtt-api.md):

- ``status`` (retained, QoS 1): ``{"state": "online"|"offline", "summary": …, "session": n}``;
  the Last Will is the same topic with ``offline``. ``session`` increases with every
  connection so a late Will from an older session (broker session takeover) is recognisable.
- ``state/<component>`` (retained, QoS 1), ``telemetry/<stream>`` (QoS 0, ``seq`` for gap
  detection), ``event/<name>`` (QoS 1), ``cmd/<name>`` (QoS 1, never retained).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.clock import Clock
from drivers.errors import DeviceError
from station.bus.connection import BrokerConfig
from station.bus.envelope import (
    Ack,
    Command,
    EnvelopeError,
    ack_payload,
    parse_command,
    station_topic,
)
from station.bus.schema import CommandRejected, CommandSpec

log = logging.getLogger(__name__)

RECENT_IDS = 1024  #: command ids remembered for idempotency


async def _cancel(task: asyncio.Task[None], *, attempts: int = 20) -> None:
    """Cancel ``task`` and wait for it, re-cancelling if a cancellation was swallowed.

    Python 3.11's ``asyncio.wait_for`` (used inside aiomqtt) can swallow a cancellation that
    arrives as its inner future completes (CPython gh-86296); the task then carries on into
    ``client.messages`` and would never end. Bounded: ``attempts`` x 0.5 s.
    """
    for _ in range(attempts):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    if not task.done():
        log.error("bus task did not stop after %d cancellations", attempts)
    elif not task.cancelled() and task.exception() is not None:
        log.error("bus task ended with %r", task.exception())


class CommandContext:
    """Handed to a command handler so a long action can announce INPROGRESS."""

    def __init__(self, bus: StationBus, command: Command, properties: Properties | None) -> None:
        self._bus = bus
        self.command = command
        self._properties = properties
        self.timeout_s: float | None = None
        self.announced = asyncio.Event()

    async def in_progress(self, timeout_s: float) -> None:
        """Publish INPROGRESS; the bus answers TIMEOUT if the handler runs past ``timeout_s``.

        ``timeout_s`` is in clock seconds, counted from this call.
        """
        self.timeout_s = timeout_s
        await self._bus._reply(self.command, Ack.INPROGRESS, self._properties, timeout_s=timeout_s)
        self.announced.set()


Handler = Callable[[Command, CommandContext], Coroutine[Any, Any, Mapping[str, Any] | None]]


def _correlated(properties: Properties | None) -> Properties | None:
    """v5 reply properties echoing the request's CorrelationData (None for MQTT 3.1.1)."""
    correlation = getattr(properties, "CorrelationData", None)
    if correlation is None:
        return None
    reply = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    reply.CorrelationData = correlation
    return reply


@dataclass(frozen=True)
class _Registered:
    spec: CommandSpec
    handler: Handler


class StationBus:
    """MQTT adapter of one station daemon.

    Args:
        station: station name, the second topic level.
        broker: where and how to connect.
        clock: the station clock (command expiry, timestamps, backoff waits).
        state: returns the current summary state (commands are checked against it).
        allowed_clients: fnmatch patterns of requester client ids that may command the
            station (NOPERM otherwise). Defence in depth only: the broker ACL is what stops
            a monitor from publishing commands at all (configs/mosquitto/).
    """

    def __init__(
        self,
        station: str,
        broker: BrokerConfig,
        clock: Clock,
        *,
        state: Callable[[], str],
        client_id: str | None = None,
        allowed_clients: tuple[str, ...] = ("*",),
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
    ) -> None:
        self.station = station
        self.broker = broker
        self.clock = clock
        self.client_id = client_id or f"qgs-station-{station}"
        self._state = state
        self._allowed = allowed_clients
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._commands: dict[str, _Registered] = {}
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._recent: OrderedDict[str, bytes | None] = OrderedDict()
        self._retained: dict[str, bytes] = {}
        self._seq: dict[str, int] = {}
        self.session = 0
        self.dropped_telemetry = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def register(self, spec: CommandSpec, handler: Handler) -> None:
        """Serve ``cmd/<spec.name>`` with ``handler`` after schema and state checks."""
        self._commands[spec.name] = _Registered(spec, handler)

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"bus-{self.station}")

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait (wall seconds) for the first connection; raises TimeoutError."""
        async with asyncio.timeout(timeout_s):
            await self._connected.wait()

    async def stop(self) -> None:
        """Publish ``offline`` (a clean disconnect suppresses the Will) and disconnect."""
        self._stopping = True
        for task in list(self._handlers):
            task.cancel()
        if self._client is not None and self.connected:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await self._publish(
                    "status", self._status_payload("offline", "shutdown"), qos=1, retain=True
                )
        if self._task is not None:
            await _cancel(self._task)
        self._connected.clear()

    async def __aenter__(self) -> StationBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ publishing

    def _status_payload(self, state: str, reason: str | None = None) -> bytes:
        body: dict[str, Any] = {
            "state": state,
            "summary": self._state(),
            "session": self.session,
            "ts": self.clock.now(),
        }
        if reason:
            body["reason"] = reason
        return json.dumps(body).encode()

    async def _publish(self, suffix: str, payload: bytes, *, qos: int, retain: bool) -> None:
        client = self._client
        if client is None or not self.connected:
            raise aiomqtt.MqttError("not connected to the broker")
        await client.publish(
            station_topic(self.station, suffix),
            payload,
            qos=qos,
            retain=retain,
            timeout=self.broker.timeout_s,
        )

    async def publish_status(self) -> None:
        """Re-publish the retained status (call on every summary-state change)."""
        payload = self._status_payload("online")
        self._retained["status"] = payload
        await self._best_effort("status", payload, qos=1, retain=True)

    async def publish_state(self, component: str, state: Mapping[str, Any]) -> None:
        """Retained last-known state of a component (mount, analyzer, tagger, pass)."""
        payload = json.dumps({"ts": self.clock.now(), **state}).encode()
        self._retained[f"state/{component}"] = payload
        await self._best_effort(f"state/{component}", payload, qos=1, retain=True)

    async def publish_telemetry(self, stream: str, samples: Mapping[str, Any]) -> None:
        """Batched samples, QoS 0, with a per-stream ``seq`` (dropped while offline)."""
        seq = self._seq.get(stream, 0)
        self._seq[stream] = seq + 1
        payload = json.dumps({"ts": self.clock.now(), "seq": seq, **samples}).encode()
        if not self.connected:
            self.dropped_telemetry += 1
            return
        await self._best_effort(f"telemetry/{stream}", payload, qos=0, retain=False)

    async def publish_event(self, name: str, body: Mapping[str, Any]) -> None:
        payload = json.dumps({"ts": self.clock.now(), **body}).encode()
        await self._best_effort(f"event/{name}", payload, qos=1, retain=False)

    async def _best_effort(self, suffix: str, payload: bytes, *, qos: int, retain: bool) -> None:
        try:
            await self._publish(suffix, payload, qos=qos, retain=retain)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.debug("publish %s skipped: %s", suffix, exc)

    # ------------------------------------------------------------------ connection loop

    async def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stopping:
            self.session += 1
            will = aiomqtt.Will(
                station_topic(self.station, "status"),
                self._status_payload("offline", "lwt"),
                qos=1,
                retain=True,
            )
            try:
                async with self.broker.client(self.client_id, will=will) as client:
                    self._client = client
                    self._connected.set()
                    delay = self._backoff[0]
                    self._retained["status"] = self._status_payload("online")
                    for suffix, payload in list(self._retained.items()):
                        await self._publish(suffix, payload, qos=1, retain=True)
                    await client.subscribe(
                        station_topic(self.station, "cmd", "#"),
                        qos=1,
                        timeout=self.broker.timeout_s,
                    )
                    log.info("bus connected (session %d)", self.session)
                    async for message in client.messages:
                        self._dispatch(message)
            except (aiomqtt.MqttError, TimeoutError) as exc:
                log.warning("bus connection lost: %s; retrying in %.2f s", exc, delay)
            finally:
                self._client = None
                self._connected.clear()
            if self._should_stop():
                return
            await self.clock.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self._backoff[1])

    def _should_stop(self) -> bool:
        return self._stopping

    def _dispatch(self, message: aiomqtt.Message) -> None:
        task = asyncio.create_task(self._handle(message))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    # ------------------------------------------------------------------ commands

    async def _reply(
        self,
        command: Command,
        ack: Ack,
        properties: Properties | None,
        *,
        reason: str | None = None,
        timeout_s: float | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> None:
        payload = ack_payload(
            command.id, ack, self.clock.now(), reason=reason, timeout_s=timeout_s, result=result
        )
        if ack.terminal:
            self._remember(command.id, payload)
        reply_props = _correlated(properties)
        client = self._client
        if client is None:
            log.warning("reply %s to %s lost: not connected", ack.value, command.id)
            return
        try:
            await client.publish(
                command.reply_to,
                payload,
                qos=1,
                properties=reply_props,
                timeout=self.broker.timeout_s,
            )
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning("reply %s to %s failed: %s", ack.value, command.id, exc)

    def _remember(self, command_id: str, terminal: bytes | None) -> None:
        self._recent[command_id] = terminal
        self._recent.move_to_end(command_id)
        while len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)

    async def _reject_unparsable(self, name: str, payload: bytes, reason: str) -> None:
        """No valid envelope: answer FAILED where a reply_to is readable, always log an event."""
        log.warning("command %s rejected: %s", name, reason)
        await self.publish_event("command_rejected", {"command": name, "reason": reason})
        try:
            body = json.loads(payload)
            reply_to, command_id = body["reply_to"], str(body.get("id", ""))
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(reply_to, str) and reply_to and "#" not in reply_to and "+" not in reply_to:
            stub = Command(name, command_id, 0.0, reply_to, None)
            await self._reply(stub, Ack.FAILED, None, reason=reason)

    async def _handle(self, message: aiomqtt.Message) -> None:
        name = str(message.topic).rsplit("/cmd/", 1)[-1]
        payload = message.payload if isinstance(message.payload, bytes) else b""
        props = message.properties
        try:
            command = parse_command(name, payload)
        except EnvelopeError as exc:
            await self._reject_unparsable(name, payload, f"invalid command envelope: {exc}")
            return
        if command.id in self._recent:
            # QoS 1 may deliver twice and operators retry: never execute an id twice.
            previous = self._recent[command.id]
            if previous is not None:
                with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                    if self._client is not None:
                        await self._client.publish(
                            command.reply_to, previous, qos=1, timeout=self.broker.timeout_s
                        )
            return
        self._remember(command.id, None)
        registered = self._commands.get(name)
        if registered is None:
            await self._reply(
                command,
                Ack.FAILED,
                props,
                reason=f"unknown command {name!r}; known: {sorted(self._commands)}",
            )
            return
        now = self.clock.now()
        if command.expires_at is not None and command.expires_at < now:
            await self._reply(
                command,
                Ack.FAILED,
                props,
                reason=f"command expired {now - command.expires_at:.3f} s ago; not executed",
            )
            return
        requester = command.reply_to.split("/")[2] if command.reply_to.count("/") >= 2 else ""
        if not any(fnmatch.fnmatchcase(requester, pattern) for pattern in self._allowed):
            await self._reply(
                command, Ack.NOPERM, props, reason=f"client {requester!r} may not command"
            )
            return
        try:
            args = registered.spec.validate(command.args)
            registered.spec.check_state(self._state())
        except CommandRejected as exc:
            await self._reply(command, Ack.FAILED, props, reason=str(exc))
            return
        command = Command(
            command.name, command.id, command.ts, command.reply_to, command.expires_at, args
        )
        await self._reply(command, Ack.ACK, props)
        ctx = CommandContext(self, command, props)
        await self._execute(registered.handler, command, ctx, props)

    async def _execute(
        self, handler: Handler, command: Command, ctx: CommandContext, props: Properties | None
    ) -> None:
        task = asyncio.create_task(handler(command, ctx))
        announced = asyncio.create_task(ctx.announced.wait())
        try:
            await asyncio.wait({task, announced}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and ctx.timeout_s is not None:
                limit = ctx.timeout_s
                done, _ = await asyncio.wait({task}, timeout=self.clock.to_wall(limit))
                if not done:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                    await self._reply(
                        command, Ack.TIMEOUT, props, reason=f"did not finish within {limit:g} s"
                    )
                    return
            result = task.result()
        except asyncio.CancelledError:
            task.cancel()
            await self._reply(command, Ack.ABORTED, props, reason="aborted")
            raise
        except CommandRejected as exc:
            await self._reply(command, Ack.FAILED, props, reason=str(exc))
            return
        except DeviceError as exc:
            await self._reply(command, Ack.FAILED, props, reason=str(exc))
            return
        except Exception as exc:  # a handler bug must not kill the bus; report it
            log.exception("command %s failed", command.name)
            await self._reply(
                command, Ack.FAILED, props, reason=f"internal error: {type(exc).__name__}: {exc}"
            )
            return
        finally:
            announced.cancel()
        await self._reply(command, Ack.COMPLETE, props, result=result)
