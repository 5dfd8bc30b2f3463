"""The Alpaca driver's exact HTTP requests and its error mapping, against a scripted server.

The scripted server (a real aiohttp server on loopback, no mocks) records every request —
method, path, raw query string, raw form body, content type — and answers from a table of
canned JSON replies per member, so the tests assert the bytes the driver sends (ClientID and
ClientTransactionID counting up) and what it makes of each documented reply.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from drivers.datatypes import AltAz
from drivers.errors import (
    DeviceFault,
    DeviceTimeout,
    DeviceURLError,
    LimitViolation,
    NotConnected,
    ProtocolError,
)
from drivers.mount.alpaca import AlpacaMount
from drivers.mount.options import MountOptions
from drivers.registry import open_device

from .conftest import StepClock

CLIENT_ID = 7


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    body: bytes
    content_type: str


#: a canned reply: (HTTP status, JSON object or raw body bytes)
Reply = tuple[int, dict[str, Any] | bytes]


@dataclass
class ScriptedAlpaca:
    """Loopback HTTP server answering ``/api/v1/telescope/0/<member>`` from :attr:`replies`."""

    replies: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    #: set: every reply waits for it (a silent server until the test releases it)
    hold: asyncio.Event | None = None
    gotos: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    def ok(self, method: str, member: str, value: Any = None, *, times: int = 1) -> None:
        body: dict[str, Any] = {"ErrorNumber": 0, "ErrorMessage": ""}
        if method == "GET":
            body["Value"] = value
        self.replies.setdefault((method, member), []).extend([(200, body)] * times)

    def error(self, method: str, member: str, number: int, message: str = "refused") -> None:
        body: dict[str, Any] = {"ErrorNumber": number, "ErrorMessage": message}
        if method == "GET":
            body["Value"] = None
        self.replies.setdefault((method, member), []).append((200, body))

    def raw(self, method: str, member: str, status: int, body: dict[str, Any] | bytes) -> None:
        self.replies.setdefault((method, member), []).append((status, body))

    def handshake(self, *, tracking: bool = False) -> None:
        self.ok("PUT", "connected")
        self.ok("GET", "connected", True)
        self.ok("GET", "interfaceversion", 4)
        self.ok("GET", "name", "scripted")
        self.ok("GET", "alignmentmode", 0)
        self.ok("GET", "canslewaltazasync", True)
        self.ok("GET", "tracking", tracking)
        if tracking:
            self.ok("PUT", "tracking")

    def calls(self) -> list[str]:
        return [f"{s.method} {s.path.rsplit('/', 1)[1]}" for s in self.seen]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        member = request.match_info["member"]
        self.seen.append(
            Seen(request.method, request.path, request.query_string, body, request.content_type)
        )
        if member == "slewtoaltazasync":
            self.gotos.set()
        if self.hold is not None:
            await asyncio.wait_for(self.hold.wait(), 10.0)
        queue = self.replies.get((request.method, member))
        if not queue:
            return web.Response(status=400, text=f"unscripted {request.method} {member}")
        status, reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(reply, bytes):
            return web.Response(status=status, body=reply, content_type="application/json")
        args = dict(request.query) if request.method == "GET" else dict(await request.post())
        tid = int(str(args.get("ClientTransactionID", "0")))
        full = dict(reply, ClientTransactionID=tid, ServerTransactionID=len(self.seen))
        if status != 200:
            return web.Response(status=status, text=str(reply))
        return web.json_response(full)


@pytest.fixture
async def server() -> AsyncIterator[ScriptedAlpaca]:
    script = ScriptedAlpaca()
    app = web.Application()
    app.router.add_route("*", "/api/v1/telescope/0/{member}", script.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    script.port = runner.addresses[0][1]
    try:
        yield script
    finally:
        await runner.cleanup()


def make_mount(server: ScriptedAlpaca, clock: StepClock, **options: Any) -> AlpacaMount:
    return AlpacaMount(
        f"127.0.0.1:{server.port}",
        0,
        clock,
        client_id=CLIENT_ID,
        options=MountOptions(**options),
    )


async def test_connect_sends_the_documented_requests(
    server: ScriptedAlpaca, clock: StepClock
) -> None:
    server.handshake(tracking=True)
    mount = make_mount(server, clock)
    await mount.connect()
    try:
        assert mount.interface_version == 4
        assert mount.name == "scripted"
        first, second = server.seen[0], server.seen[1]
        assert (first.method, first.path) == ("PUT", "/api/v1/telescope/0/connected")
        assert first.content_type == "application/x-www-form-urlencoded"
        assert first.body == b"Connected=true&ClientID=7&ClientTransactionID=1"
        assert first.query == ""
        assert (second.method, second.query, second.body) == (
            "GET",
            "ClientID=7&ClientTransactionID=2",
            b"",
        )
        assert server.calls() == [
            "PUT connected",
            "GET connected",
            "GET interfaceversion",
            "GET name",
            "GET alignmentmode",
            "GET canslewaltazasync",
            "GET tracking",
            "PUT tracking",  # ASCOM refuses SlewToAltAz while tracking: switched off
        ]
        assert server.seen[-1].body == b"Tracking=false&ClientID=7&ClientTransactionID=8"
        assert mount.client.last_transaction_id == 8
    finally:
        await mount.close()
    assert not mount.is_connected


async def test_goto_wraps_azimuth_and_unparks_once(
    server: ScriptedAlpaca, clock: StepClock
) -> None:
    server.handshake()
    server.ok("GET", "azimuth", 260.0, times=3)  # -100 deg on the wire
    server.ok("GET", "altitude", 30.0, times=3)
    server.error("PUT", "slewtoaltazasync", 0x408, "parked")
    server.ok("PUT", "unpark")
    server.ok("PUT", "slewtoaltazasync")
    mount = make_mount(server, clock)
    await mount.connect()
    try:
        await mount.slew_to(AltAz(-100.0, 30.0))
        assert mount.unparks == 1
        gotos = [s for s in server.seen if s.path.endswith("/slewtoaltazasync")]
        assert [g.body for g in gotos] == [
            b"Azimuth=260.0&Altitude=30.0&ClientID=7&ClientTransactionID=10",
            b"Azimuth=260.0&Altitude=30.0&ClientID=7&ClientTransactionID=12",
        ]
        assert server.calls()[7:12] == [
            "GET azimuth",
            "GET altitude",
            "PUT slewtoaltazasync",
            "PUT unpark",
            "PUT slewtoaltazasync",
        ]
        # the reported 260 is the target's -100, not +260
        assert (await mount.position()) == AltAz(-100.0, 30.0)
    finally:
        await mount.close()


async def test_limit_is_checked_before_any_request(
    server: ScriptedAlpaca, clock: StepClock
) -> None:
    server.handshake()
    mount = make_mount(server, clock)
    await mount.connect()
    sent = len(server.seen)
    try:
        with pytest.raises(LimitViolation):
            await mount.slew_to(AltAz(10.0, 95.0))  # Alpaca altitude stops at 90
        assert len(server.seen) == sent
    finally:
        await mount.close()


@pytest.mark.parametrize(
    ("number", "error", "pattern"),
    [
        (
            0x401,
            LimitViolation,
            r"PUT slewtoaltazasync answered ErrorNumber 0x401 \(InvalidValue\)",
        ),
        (0x407, NotConnected, r"0x407 \(NotConnected\)"),
        (0x40B, DeviceFault, r"0x40B \(InvalidOperation\)"),
        (0x5FF, DeviceFault, r"0x5FF \(driver error\): refused"),
    ],
)
async def test_ascom_errors_are_typed_and_the_axes_stopped(
    server: ScriptedAlpaca,
    clock: StepClock,
    number: int,
    error: type[Exception],
    pattern: str,
) -> None:
    server.handshake()
    server.ok("GET", "azimuth", 0.0)
    server.ok("GET", "altitude", 45.0)
    server.error("PUT", "slewtoaltazasync", number)
    server.ok("PUT", "abortslew")
    mount = make_mount(server, clock)
    await mount.connect()
    try:
        with pytest.raises(error, match=pattern):
            await mount.slew_to(AltAz(10.0, 45.0))
        assert server.calls()[-1] == "PUT abortslew"  # stop in finally
    finally:
        await mount.close()


async def test_cancelled_slew_sends_abortslew(server: ScriptedAlpaca, clock: StepClock) -> None:
    server.handshake()
    server.ok("GET", "azimuth", 0.0)
    server.ok("GET", "altitude", 45.0)
    server.ok("PUT", "slewtoaltazasync")
    server.ok("PUT", "abortslew")
    mount = make_mount(server, clock)
    await mount.connect()
    try:
        task = asyncio.create_task(mount.slew_to(AltAz(120.0, 45.0)))
        await asyncio.wait_for(server.gotos.wait(), 5.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert server.calls()[-1] == "PUT abortslew"
        assert server.calls().count("PUT slewtoaltazasync") == 1
    finally:
        await mount.close()


ReplySetup = Callable[[ScriptedAlpaca], None]


@pytest.mark.parametrize(
    ("setup", "error", "pattern"),
    [
        (lambda s: s.raw("GET", "azimuth", 400, b""), ProtocolError, r"HTTP 400"),
        (lambda s: s.raw("GET", "azimuth", 200, b"<html>"), ProtocolError, r"not JSON"),
        (
            lambda s: s.raw(
                "GET",
                "azimuth",
                200,
                b'{"Value": 1, "ClientTransactionID": 99, "ErrorNumber": 0, "ErrorMessage": ""}',
            ),
            ProtocolError,
            r"ClientTransactionID 99 does not echo ours",
        ),
        (
            lambda s: s.raw("GET", "azimuth", 200, b'{"Value": 1, "ErrorMessage": ""}'),
            ProtocolError,
            r"lacks an integer ErrorNumber",
        ),
        (lambda s: s.ok("GET", "azimuth", "north"), ProtocolError, r"expected a number"),
    ],
)
async def test_malformed_replies_are_protocol_errors(
    server: ScriptedAlpaca,
    clock: StepClock,
    setup: ReplySetup,
    error: type[Exception],
    pattern: str,
) -> None:
    server.handshake()
    mount = make_mount(server, clock)
    await mount.connect()
    try:
        setup(server)
        with pytest.raises(error, match=pattern):
            await mount.position()
    finally:
        await mount.close()


async def test_silent_server_is_a_bounded_timeout(server: ScriptedAlpaca, clock: StepClock) -> None:
    server.handshake()
    mount = make_mount(server, clock, io_timeout_s=0.05)
    await mount.connect()
    server.ok("GET", "azimuth", 1.0)
    server.hold = asyncio.Event()
    try:
        with pytest.raises(DeviceTimeout, match=r"GET azimuth: no reply within 0\.05 s"):
            await mount.position()
    finally:
        server.hold.set()  # the held handler ends, so no server task outlives the test
        await mount.close()


async def test_nothing_listening_is_not_connected(clock: StepClock) -> None:
    mount = AlpacaMount("127.0.0.1:1", 0, clock, client_id=CLIENT_ID)
    with pytest.raises(NotConnected, match="PUT connected"):
        await mount.connect()
    assert not mount.is_connected


def test_url_parameters(clock: StepClock) -> None:
    mount = open_device("alpaca://127.0.0.1:11111/3?client_id=9&timeout_s=0.5&el_min=10", clock)
    assert isinstance(mount, AlpacaMount)
    assert mount.client.base == "http://127.0.0.1:11111/api/v1/telescope/3"
    assert mount.client.client_id == 9
    assert mount.client.timeout_s == 0.5
    assert mount.limits.el.min_deg == 10.0
    assert mount.limits.el.max_deg == 90.0
    for bad in ("client_id=-1", "client_id=x", "connect_timeout_s=-1", "bogus=1", "az_min=900"):
        with pytest.raises(DeviceURLError):
            open_device(f"alpaca://127.0.0.1:11111/0?{bad}", clock)
    # a soft limit beyond what Alpaca can command is narrowed to it (altitude <= 90)
    over = open_device("alpaca://127.0.0.1:11111/0?el_max=120", clock)
    assert json.dumps(over.limits.el.max_deg) == "90.0"
