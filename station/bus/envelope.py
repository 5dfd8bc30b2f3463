"""The JSON command envelope and graded acks, independent of the MQTT protocol version.

Every command is a JSON object ``{"id", "ts", "reply_to", "expires_at", "args"}`` published
(QoS 1, never retained) to ``qgs/v1/<station>/cmd/<name>``. Every reply goes to the
requester's ``reply_to`` topic as ``{"id", "ack", "ts", ...}`` with ``ack`` one of the graded
states below (after the Rubin/LSST SAL ack codes, see reference/mqtt.md §3.4). The envelope
carries what MQTT v5 would carry in properties (response topic, correlation data, message
expiry) so the protocol works over MQTT 3.1.1 too.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TOPIC_ROOT = "qgs/v1"
#: requesters' inboxes live outside TOPIC_ROOT so that "read qgs/v1/#" (monitors) does not
#: include other clients' replies; the ACL grants each client only qgs/reply/<its id>/#.
REPLY_ROOT = "qgs/reply"


class Ack(enum.Enum):
    """Graded command acknowledgements; the last four and COMPLETE are terminal."""

    ACK = "ACK"  #: accepted, about to run
    INPROGRESS = "INPROGRESS"  #: running; ``timeout_s`` says how long it may take
    COMPLETE = "COMPLETE"  #: done; ``result`` holds any output
    FAILED = "FAILED"  #: refused or failed; ``reason`` says why
    NOPERM = "NOPERM"  #: the requester may not issue this command
    TIMEOUT = "TIMEOUT"  #: did not finish within its announced timeout
    ABORTED = "ABORTED"  #: stopped by an abort/safe command or shutdown

    @property
    def terminal(self) -> bool:
        return self not in (Ack.ACK, Ack.INPROGRESS)


class EnvelopeError(ValueError):
    """A command payload is not a valid envelope; the message says which field and why."""


def station_topic(station: str, *parts: str) -> str:
    return "/".join((TOPIC_ROOT, station, *parts))


def reply_topic(client_id: str, station: str, command: str) -> str:
    """The requester's inbox for one command (ACL: only ``client_id`` may read it)."""
    return "/".join((REPLY_ROOT, client_id, station, command))


@dataclass(frozen=True)
class Command:
    """A validated command envelope."""

    name: str
    id: str
    ts: float  #: POSIX s when the requester sent it
    reply_to: str
    expires_at: float | None  #: POSIX s after which it must not run
    args: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> bytes:
        body: dict[str, Any] = {
            "id": self.id,
            "ts": self.ts,
            "reply_to": self.reply_to,
            "args": self.args,
        }
        if self.expires_at is not None:
            body["expires_at"] = self.expires_at
        return json.dumps(body, separators=(",", ":")).encode()


def _number(body: Mapping[str, Any], key: str) -> float:
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EnvelopeError(f"field {key!r} must be a finite number (POSIX seconds), got {value!r}")
    return float(value)


def parse_command(name: str, payload: bytes) -> Command:
    """Decode and validate a command envelope; raises EnvelopeError naming the fault."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"payload is not UTF-8 JSON: {exc}") from None
    if not isinstance(body, dict):
        raise EnvelopeError(f"payload must be a JSON object, got {type(body).__name__}")
    for key in ("id", "reply_to"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise EnvelopeError(f"field {key!r} is required and must be a non-empty string")
    if "#" in body["reply_to"] or "+" in body["reply_to"]:
        raise EnvelopeError("field 'reply_to' must be a topic name without wildcards")
    if "ts" not in body:
        raise EnvelopeError("field 'ts' is required (POSIX seconds when sent)")
    ts = _number(body, "ts")
    expires_at = _number(body, "expires_at") if body.get("expires_at") is not None else None
    args = body.get("args", {})
    if not isinstance(args, dict):
        raise EnvelopeError(f"field 'args' must be a JSON object, got {type(args).__name__}")
    unknown = set(body) - {"id", "ts", "reply_to", "expires_at", "args"}
    if unknown:
        raise EnvelopeError(f"unknown envelope field(s) {sorted(unknown)}")
    return Command(name, body["id"], ts, body["reply_to"], expires_at, args)


def ack_payload(
    command_id: str,
    ack: Ack,
    ts: float,
    *,
    reason: str | None = None,
    timeout_s: float | None = None,
    result: Mapping[str, Any] | None = None,
) -> bytes:
    body: dict[str, Any] = {"id": command_id, "ack": ack.value, "ts": ts}
    if reason is not None:
        body["reason"] = reason
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    if result is not None:
        body["result"] = dict(result)
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Reply:
    """A decoded ack as the requester sees it."""

    id: str
    ack: Ack
    ts: float
    reason: str | None = None
    timeout_s: float | None = None
    result: dict[str, Any] | None = None
    received_monotonic: float = 0.0  #: when the requester got it (time.monotonic, for latency)

    @classmethod
    def from_payload(cls, payload: bytes) -> Reply:
        body = json.loads(payload)
        return cls(
            body["id"],
            Ack(body["ack"]),
            float(body["ts"]),
            body.get("reason"),
            body.get("timeout_s"),
            body.get("result"),
        )
