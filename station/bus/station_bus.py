"""The station side of the MQTT bus: status with Last Will, state, telemetry, events, commands.

One :class:`StationBus` per daemon owns the broker connection: it reconnects with
exponential backoff and jitter, capped at 1 wall s by default (fresh client objects: aiomqtt
clients are not reentrant),
re-subscribes, re-publishes the retained status and last-known states, and dispatches
commands with graded acks. Recording never depends on it: every publish is best effort
with a bounded wait, and a lost broker only shows up as ``connected == False``.

Topics (``qgs/v1/<station>/…``; see docs/mqtt-api.md):

- ``status`` (retained, QoS 1): ``{"state": "online"|"offline", "summary": …, "session": n}``;
  the Last Will is the same topic with ``offline`` (summary ``OFFLINE``). ``session``
  increases with every connection, also across restarts (wall-clock ms), so a late Will
  from an older session (broker session takeover) is recognisable.
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
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.clock import Clock, WarpClock
from drivers.errors import DeviceError
from station.bus.connection import BrokerConfig
from station.bus.envelope import (
    Ack,
    Command,
    EnvelopeError,
    ack_payload,
    parse_command,
    peek_reply,
    reply_client,
    reply_to_problem,
    short,
    station_topic,
)
from station.bus.schema import CommandRejected, CommandSpec

log = logging.getLogger(__name__)

RECENT_IDS = 1024  #: command ids remembered for idempotency
RECENT_BYTES = 4 * 1024 * 1024  #: bound on the remembered ids and terminal acks, in bytes
PREEMPT_WAIT_S = 10.0  #: wall seconds a preempting command waits for the superseded one


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


def _entry_size(command_id: str, entry: tuple[str, bytes | None]) -> int:
    fingerprint, terminal = entry
    return len(command_id) + len(fingerprint) + len(terminal or b"") + 64


@dataclass(frozen=True)
class _Registered:
    spec: CommandSpec
    handler: Handler


class StationBus:
    """MQTT adapter of one station daemon.

    Args:
        station: station name, the second topic level.
        broker: where and how to connect.
        clock: the station clock (command expiry, timestamps).
        state: returns the current summary state (commands are checked against it).
        allowed_clients: fnmatch patterns of the requesters' inboxes (user names on a secured
            broker, client ids on an open one) that may command the station (NOPERM
            otherwise). Defence in depth only: the broker ACL is what stops a monitor from
            publishing commands at all (configs/mosquitto/).
        backoff_initial_s, backoff_max_s: reconnect waits in wall seconds (the broker lives
            in real time, not on a warped station clock), doubling from the first to the
            cap, each drawn from [½, 1] × the current value. The cap is short because a
            station's broker is its own (embedded or on site): a refused connect costs
            nothing, and the retained state must be right within 2 s of the broker's return
            (docs/reliability.md §3b).
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
        backoff_max_s: float = 1.0,
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
        #: id -> (fingerprint of name and args, terminal ack payload or None while running)
        self._recent: OrderedDict[str, tuple[str, bytes | None]] = OrderedDict()
        self._recent_bytes = 0
        #: exclusive group -> (the command running in it, its handler task)
        self._exclusive: dict[str, tuple[Command, asyncio.Task[Any]]] = {}
        self._superseded: dict[asyncio.Task[Any], str] = {}
        self.rejected = 0  #: commands refused before running (envelope, reply_to, retained…)
        self._retained: dict[str, bytes] = {}
        self._seq: dict[str, int] = {}
        self.session = 0
        self.connections = 0  #: successful broker connections since start
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

    def _status_payload(
        self, state: str, reason: str | None = None, *, summary: str | None = None
    ) -> bytes:
        body: dict[str, Any] = {
            "state": state,
            "summary": summary or self._state(),
            "session": self.session,
            "ts": self.clock.now(),
        }
        if isinstance(self.clock, WarpClock):
            # requesters stamp expires_at on this timeline (Requester.use_station_clock)
            body["clock"] = self.clock.spec.to_string()
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
        await self.publish_retained(f"state/{component}", state)

    async def publish_retained(self, suffix: str, body: Mapping[str, Any]) -> None:
        """A retained JSON message under this node, re-published after every reconnect."""
        payload = json.dumps({"ts": self.clock.now(), **body}).encode()
        self._retained[suffix] = payload
        await self._best_effort(suffix, payload, qos=1, retain=True)

    async def publish_telemetry(self, stream: str, samples: Mapping[str, Any]) -> None:
        """Batched samples, QoS 0, with a per-stream ``seq`` (dropped while offline)."""
        seq = self._seq.get(stream, 0)
        self._seq[stream] = seq + 1
        payload = json.dumps({"ts": self.clock.now(), "seq": seq, **samples}).encode()
        if not self.connected:
            self.dropped_telemetry += 1
            return
        await self._best_effort(f"telemetry/{stream}", payload, qos=0, retain=False)

    async def publish_raw(self, suffix: str, payload: bytes, *, qos: int, retain: bool) -> bool:
        """A binary payload (no JSON), best effort: False when it was not handed over."""
        if not self.connected:
            return False
        try:
            await self._publish(suffix, payload, qos=qos, retain=retain)
        except (aiomqtt.MqttError, TimeoutError):
            return False
        return True

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
            # Sessions must also increase across daemon restarts (readers drop an "offline"
            # older than the last "online"): wall-clock milliseconds, never below last + 1.
            self.session = max(self.session + 1, time.time_ns() // 1_000_000)
            will = aiomqtt.Will(
                station_topic(self.station, "status"),
                # what the broker says when the station is gone: nothing of the state it had
                # when it connected (that would be stale), only OFFLINE
                self._status_payload("offline", "lwt", summary="OFFLINE"),
                qos=1,
                retain=True,
            )
            try:
                async with self.broker.client(self.client_id, will=will) as client:
                    self._client = client
                    self.connections += 1
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
            await asyncio.sleep(delay * (0.5 + 0.5 * random.random()))
            delay = min(delay * 2, self._backoff[1])

    def _should_stop(self) -> bool:
        return self._stopping

    def _dispatch(self, message: aiomqtt.Message) -> None:
        task = asyncio.create_task(self._guarded(message))
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
            known = self._recent.get(command.id)
            # keep the fingerprint of the command as received (args here are normalised)
            self._remember(command.id, known[0] if known else command.fingerprint(), payload)
        await self._send_reply(command.reply_to, payload, properties, f"{ack.value} {command.id}")

    async def _send_reply(
        self, reply_to: str, payload: bytes, properties: Properties | None, what: str
    ) -> None:
        if reply_to_problem(reply_to, self.station) is not None:  # callers checked; belt
            log.warning("reply %s not sent: bad reply_to %s", what, short(repr(reply_to)))
            return
        client = self._client
        if client is None:
            log.warning("reply %s lost: not connected", what)
            return
        try:
            await client.publish(
                reply_to,
                payload,
                qos=1,
                properties=_correlated(properties),
                timeout=self.broker.timeout_s,
            )
        except (aiomqtt.MqttError, TimeoutError, ValueError) as exc:
            log.warning("reply %s failed: %s", what, exc)

    def _remember(self, command_id: str, fingerprint: str, terminal: bytes | None) -> None:
        """Remember an id (bounded: RECENT_IDS entries and RECENT_BYTES bytes, oldest out)."""
        old = self._recent.pop(command_id, None)
        if old is not None:
            self._recent_bytes -= _entry_size(command_id, old)
        entry = (fingerprint, terminal)
        self._recent[command_id] = entry
        self._recent_bytes += _entry_size(command_id, entry)
        while len(self._recent) > RECENT_IDS or (
            self._recent_bytes > RECENT_BYTES and len(self._recent) > 1
        ):
            evicted_id, evicted = self._recent.popitem(last=False)
            self._recent_bytes -= _entry_size(evicted_id, evicted)

    async def _reject(
        self,
        name: str,
        reason: str,
        *,
        reply: tuple[str, str] | None = None,
        properties: Properties | None = None,
    ) -> None:
        """Refused before running: always an event; FAILED where a usable reply_to is known.

        ``reply`` is (id, reply_to) read from the payload; with MQTT 5 the request's
        ResponseTopic/CorrelationData are used when the payload did not give them.
        """
        self.rejected += 1
        shown = short(name, 64)
        log.warning("command %s rejected: %s", shown, reason)
        await self.publish_event("command_rejected", {"command": shown, "reason": reason})
        command_id, reply_to = reply if reply is not None else ("", "")
        if not reply_to or reply_to_problem(reply_to, self.station) is not None:
            topic = getattr(properties, "ResponseTopic", None)
            reply_to = topic if isinstance(topic, str) else ""
        if not reply_to or reply_to_problem(reply_to, self.station) is not None:
            return
        payload = ack_payload(command_id, Ack.FAILED, self.clock.now(), reason=reason)
        await self._send_reply(reply_to, payload, properties, f"FAILED {short(command_id)}")

    async def _guarded(self, message: aiomqtt.Message) -> None:
        """Handle one command; nothing a requester sends may end as a task exception."""
        name = str(message.topic).rsplit("/cmd/", 1)[-1]
        try:
            await self._handle(name, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("command %s: unexpected error", short(name, 64))
            with contextlib.suppress(Exception):
                await self._reject(
                    name,
                    f"internal error: {type(exc).__name__}: {short(str(exc))}",
                    properties=message.properties,
                )

    async def _handle(self, name: str, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        props = message.properties
        if message.retain:
            # A retained command would run again on every (re)subscription: never execute.
            await self._reject(name, "retained command not executed (commands are never retained)")
            return
        try:
            command = parse_command(name, payload)
        except EnvelopeError as exc:
            await self._reject(
                name,
                f"invalid command envelope: {exc}",
                reply=peek_reply(payload),
                properties=props,
            )
            return
        problem = reply_to_problem(command.reply_to, self.station)
        if problem is not None:
            # No ack to a forged topic: only the event says what happened.
            await self._reject(name, f"invalid command envelope: {problem}", properties=props)
            return
        if command.id in self._recent:
            # QoS 1 may deliver twice and operators retry: never execute an id twice.
            fingerprint, previous = self._recent[command.id]
            if fingerprint != command.fingerprint():
                reason = "id reused for a different command; not executed"
                await self.publish_event(
                    "command_rejected", {"command": name, "reason": f"{reason} ({command.id})"}
                )
                self.rejected += 1
                payload = ack_payload(command.id, Ack.FAILED, self.clock.now(), reason=reason)
                await self._send_reply(command.reply_to, payload, props, f"FAILED {command.id}")
            elif previous is not None:
                await self._send_reply(command.reply_to, previous, props, f"again {command.id}")
            return
        self._remember(command.id, command.fingerprint(), None)
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
        requester = reply_client(command.reply_to)
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
        spec = registered.spec
        for preempted in sorted(spec.preempts):
            await self._preempt(preempted, command)
        group = spec.exclusive
        if group is not None and group in self._exclusive:
            running, _ = self._exclusive[group]
            await self._reply(
                command,
                Ack.FAILED,
                props,
                reason=(
                    f"another {group} command is running ({running.name!r}, id {running.id}); "
                    "not executed"
                ),
            )
            return
        command = Command(
            command.name, command.id, command.ts, command.reply_to, command.expires_at, args
        )
        ctx = CommandContext(self, command, props)
        acked = asyncio.Event()  # the handler starts once ACK is out (ACK precedes INPROGRESS)

        async def run(handler: Handler = registered.handler) -> Mapping[str, Any] | None:
            await acked.wait()
            return await handler(command, ctx)

        task = asyncio.create_task(run())
        if group is not None:
            self._exclusive[group] = (command, task)
        try:
            await self._reply(command, Ack.ACK, props)
            acked.set()
            await self._execute(task, command, ctx, props)
        finally:
            task.cancel()  # no-op once done; stops it if the ACK could not be sent
            self._superseded.pop(task, None)
            if group is not None and self._exclusive.get(group, (None, None))[1] is task:
                del self._exclusive[group]

    async def _preempt(self, group: str, by: Command) -> None:
        """Cancel the command running in ``group`` (it is answered ABORTED) and wait for it."""
        running = self._exclusive.get(group)
        if running is None:
            return
        command, task = running
        log.warning("%s %s superseded by %s %s", command.name, command.id, by.name, by.id)
        self._superseded[task] = f"superseded by {by.name!r} (id {by.id})"
        task.cancel()
        await asyncio.wait({task}, timeout=PREEMPT_WAIT_S)
        if self._exclusive.get(group, (None, None))[1] is task:
            del self._exclusive[group]  # released now, whatever its ABORTED reply is doing

    async def _execute(
        self,
        task: asyncio.Task[Mapping[str, Any] | None],
        command: Command,
        ctx: CommandContext,
        props: Properties | None,
    ) -> None:
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
            if task.cancelled() and task in self._superseded:
                reason = self._superseded.pop(task)
                await self._reply(command, Ack.ABORTED, props, reason=reason)
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
