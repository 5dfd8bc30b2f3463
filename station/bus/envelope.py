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
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TOPIC_ROOT = "qgs/v1"
#: requesters' inboxes live outside TOPIC_ROOT so that "read qgs/v1/#" (monitors) does not
#: include other clients' replies; the ACL grants each client only qgs/reply/<its id>/#.
REPLY_ROOT = "qgs/reply"

MAX_PAYLOAD_BYTES = 64 * 1024  #: a larger command payload is rejected before it is parsed
MAX_ID_CHARS = 128  #: a longer command id is rejected (bounds the idempotency cache)
MAX_REPLY_TO_BYTES = 256  #: UTF-8 bytes of ``reply_to``
#: command names: lower-case identifiers (bounds the topic level after ``cmd/``)
COMMAND_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
#: a client id or station level inside ``reply_to``
_LEVEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ufeff\ufff0-\uffff]")


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

    def fingerprint(self) -> str:
        """What the command asks for (name and arguments): a reused ``id`` must match it."""
        canonical = json.dumps([self.name, self.args], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

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


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float, None if it is not a JSON number or does not fit a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)  # OverflowError for integers beyond ~1.8e308
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _number(body: Mapping[str, Any], key: str) -> float:
    number = finite_number(body[key])
    if number is None:
        shown = short(repr(body[key]))
        raise EnvelopeError(f"field {key!r} must be a finite number (POSIX seconds), got {shown}")
    return number


def short(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters (hostile input is echoed in reasons and events)."""
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} chars)"


def reply_to_problem(reply_to: str, station: str) -> str | None:
    """Why ``reply_to`` may not receive acks from ``station`` (None if it may).

    A reply topic must be inside a requester's inbox for this station,
    ``qgs/reply/<inbox>/<station>/<name>…``: no wildcards, no empty level, no NUL or other
    control character, at most MAX_REPLY_TO_BYTES UTF-8 bytes. Anything else (the station's
    own ``status``, ``event/alarm``, another station's inbox, a topic the broker would refuse)
    is refused, so a forged ``reply_to`` cannot make the station publish there.
    """
    if _CONTROL.search(reply_to):
        return "'reply_to' must not contain NUL or control characters"
    try:
        size = len(reply_to.encode())
    except UnicodeEncodeError:
        return "'reply_to' is not valid UTF-8"
    if size > MAX_REPLY_TO_BYTES:
        return f"'reply_to' is longer than {MAX_REPLY_TO_BYTES} bytes"
    if "#" in reply_to or "+" in reply_to:
        return "'reply_to' must be a topic name without wildcards"
    levels = reply_to.split("/")
    root = REPLY_ROOT.split("/")
    if (
        len(levels) < len(root) + 3
        or levels[: len(root)] != root
        or not _LEVEL.fullmatch(levels[len(root)])
        or levels[len(root) + 1] != station
        or not all(levels[len(root) + 2 :])
    ):
        return (
            f"'reply_to' must be a requester inbox {REPLY_ROOT}/<inbox>/{station}/<name>, "
            f"got {short(repr(reply_to))}"
        )
    return None


def reply_client(reply_to: str) -> str:
    """The requester's client id in a valid ``reply_to``."""
    return reply_to.split("/")[len(REPLY_ROOT.split("/"))]


MAX_INT_DIGITS = 400  #: a longer JSON integer decodes as infinity (beyond every range)


def _int(text: str) -> int | float:
    # Python refuses to parse 4300+ digit integers (ValueError); beyond a float they are
    # meaningless here anyway: decode as infinity so the field check names the argument.
    return int(text) if len(text) <= MAX_INT_DIGITS else math.inf


def _decode(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise EnvelopeError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        return json.loads(payload, parse_int=_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"payload is not UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise EnvelopeError("payload is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer beyond sys.get_int_max_str_digits() digits
        raise EnvelopeError(f"payload is not acceptable JSON: {short(str(exc))}") from None


def peek_reply(payload: bytes) -> tuple[str, str] | None:
    """(id, reply_to) readable from a payload that is not a valid envelope, if any."""
    try:
        body = _decode(payload)
    except EnvelopeError:
        return None
    if not isinstance(body, dict):
        return None
    command_id, reply_to = body.get("id"), body.get("reply_to")
    if not isinstance(reply_to, str):
        return None
    if not isinstance(command_id, str) or len(command_id) > MAX_ID_CHARS:
        command_id = ""
    return command_id, reply_to


def parse_command(name: str, payload: bytes) -> Command:
    """Decode and validate a command envelope; raises EnvelopeError naming the fault.

    Never raises anything else on hostile input: oversized payloads, integers too long for
    Python's int parser, deep nesting and numbers beyond float range are EnvelopeErrors.
    """
    if not COMMAND_NAME.fullmatch(name):
        raise EnvelopeError(f"command name {short(repr(name))} is not a lower-case identifier")
    body = _decode(payload)
    if not isinstance(body, dict):
        raise EnvelopeError(f"payload must be a JSON object, got {type(body).__name__}")
    for key in ("id", "reply_to"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise EnvelopeError(f"field {key!r} is required and must be a non-empty string")
    if len(body["id"]) > MAX_ID_CHARS:
        raise EnvelopeError(f"field 'id' is longer than {MAX_ID_CHARS} characters")
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
        raise EnvelopeError(f"unknown envelope field(s) {short(str(sorted(unknown)))}")
    command = Command(name, body["id"], ts, body["reply_to"], expires_at, args)
    try:
        command.fingerprint()
    except (RecursionError, ValueError):
        raise EnvelopeError("field 'args' is nested too deeply") from None
    return command


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
