"""`qgs dashboard`'s server: subscribe to ``qgs/v1/#`` read-only, push the model to the page.

Architecture (docs/operations.md, "Dashboard"): a small stdlib-asyncio HTTP server on
loopback plus one MQTT subscription, rather than the page talking MQTT itself through
Mosquitto's websockets listener. Why:

- **Read-only by construction.** The server has no publish path: the MQTT side only
  subscribes and reads messages (this module never calls ``publish``; a test checks the
  source), and the HTTP side answers ``GET``/``HEAD`` on four fixed routes and refuses every
  other method (405) and path (404). A browser-side MQTT client would hold broker
  credentials in the page and could publish whatever those credentials allow; here the
  credentials stay in the server process and the broker ACL (monitor role) is a second,
  independent wall.
- **No extra broker surface.** The site broker keeps its loopback/TLS MQTT listeners; no
  websockets listener, no second authentication path to secure. It works unchanged against
  the embedded broker and amqtt.
- **One model, one place.** The page receives the whole model (station/dashboard/model.py,
  unit-tested without a browser) as JSON over Server-Sent Events (``/events``), so it needs
  no MQTT parsing, no session/Last-Will logic and no JavaScript library: every asset is
  hand-written and shipped in ``station/dashboard/static/`` (no CDN, works offline).
- **Loopback only.** It binds 127.0.0.1 and checks the ``Host`` header (a DNS-rebinding page
  cannot read it); to watch from another machine, tunnel it (``ssh -L``).

Pushes are coalesced: at most one snapshot per :data:`PUSH_INTERVAL_S` per page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from importlib import resources

import aiomqtt

from station.bus.connection import BrokerConfig
from station.bus.envelope import TOPIC_ROOT
from station.dashboard.model import DashboardModel

log = logging.getLogger(__name__)

PUSH_INTERVAL_S = 0.25  #: wall seconds between two snapshots sent to one page (coalescing)
HEARTBEAT_S = 15.0  #: SSE comment line that keeps idle connections (and proxies) alive
REQUEST_TIMEOUT_S = 10.0  #: bound on reading one request head
MAX_HEAD_BYTES = 8192
RECONNECT_MAX_S = 10.0  #: backoff cap between broker connection attempts (wall s)

#: file name -> content type; nothing else is served
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
SECURITY_HEADERS = (
    "Content-Security-Policy: default-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Cache-Control: no-store\r\n"
)


def load_assets() -> dict[str, bytes]:
    """The page's files, read from the installed package (``station/dashboard/static``)."""
    root = resources.files("station.dashboard") / "static"
    return {name: (root / name).read_bytes() for name in ASSETS}


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    content_type: str = "text/plain; charset=utf-8"
    body: bytes = b""
    extra_headers: str = ""


def _plain(status: int, reason: str, text: str, extra: str = "") -> Response:
    return Response(status, reason, body=(text + "\n").encode(), extra_headers=extra)


class DashboardServer:
    """The loopback HTTP server and its read-only MQTT subscription (async context manager).

    Args:
        broker: where to subscribe (a monitor-role account is enough).
        broker_label: how the page names the broker (URL without the password).
        port: TCP port on 127.0.0.1; 0 picks a free one (see :attr:`url`).
        embedded: the broker was started by ``qgs dashboard`` itself (nothing may be
            connected to it yet; the page says so).
    """

    def __init__(
        self,
        broker: BrokerConfig,
        *,
        broker_label: str,
        port: int = 0,
        embedded: bool = False,
        client_id: str | None = None,
    ) -> None:
        self.broker = broker
        self.port = port
        self.model = DashboardModel()
        self.model.set_broker(url=broker_label, embedded=embedded)
        self.client_id = client_id or f"qgs-dashboard-{uuid.uuid4().hex[:8]}"
        self.assets = load_assets()
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._mqtt: asyncio.Task[None] | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.refused = 0  #: requests answered 4xx (methods other than GET/HEAD, unknown paths)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def __aenter__(self) -> DashboardServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._mqtt = asyncio.create_task(self._subscribe(), name="dashboard-mqtt")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in (self._mqtt, *self._conns) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ MQTT (read only)

    async def _subscribe(self) -> None:
        """Subscribe to ``qgs/v1/#`` and feed the model; reconnect with backoff forever."""
        delay = 0.5
        while True:
            try:
                async with self.broker.client(self.client_id) as client:
                    await client.subscribe(f"{TOPIC_ROOT}/#", qos=1, timeout=self.broker.timeout_s)
                    self.model.set_broker(connected=True, error=None)
                    await self._notify()
                    delay = 0.5
                    async for message in client.messages:
                        if isinstance(message.payload, bytes) and self.model.update(
                            str(message.topic), message.payload
                        ):
                            await self._notify()
            except aiomqtt.MqttError as exc:
                log.warning("dashboard: broker %s: %s", self.model.broker["url"], exc)
                self.model.set_broker(connected=False, error=str(exc))
                await self._notify()
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX_S, delay * 2)

    # ------------------------------------------------------------------ HTTP (GET only)

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._connection(reader, writer))
        self._conns.add(task)
        task.add_done_callback(self._conns.discard)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            if len(head) > MAX_HEAD_BYTES:
                await self._send(writer, _plain(431, "Request Header Fields Too Large", "too big"))
                return
            method, path, host = _parse_head(head)
            if method == "GET" and path == "/events" and self._host_ok(host):
                await self._events(writer)
                return
            response = self._route(method, path, host)
            if response.status >= 400:
                self.refused += 1
            await self._send(writer, response, head_only=method == "HEAD")
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    def _host_ok(self, host: str | None) -> bool:
        return host in (f"127.0.0.1:{self.port}", f"localhost:{self.port}")

    def _route(self, method: str, path: str, host: str | None) -> Response:
        if method not in ("GET", "HEAD"):
            # read-only: nothing here accepts data, whatever the path
            return _plain(405, "Method Not Allowed", "read-only dashboard", "Allow: GET, HEAD\r\n")
        if not self._host_ok(host):
            return _plain(403, "Forbidden", "loopback only: use http://127.0.0.1:<port>/")
        if path == "/":
            path = "/static/index.html"
        if path == "/model.json":
            body = json.dumps(self.model.snapshot(), allow_nan=False).encode()
            return Response(200, "OK", "application/json", body)
        name = path.removeprefix("/static/")
        if path.startswith("/static/") and name in self.assets:
            return Response(200, "OK", ASSETS[name], self.assets[name])
        return _plain(404, "Not Found", "no such page")

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, r: Response, *, head_only: bool = False) -> None:
        head = (
            f"HTTP/1.1 {r.status} {r.reason}\r\nContent-Type: {r.content_type}\r\n"
            f"Content-Length: {len(r.body)}\r\nConnection: close\r\n{SECURITY_HEADERS}"
            f"{r.extra_headers}\r\n"
        )
        writer.write(head.encode() + (b"" if head_only else r.body))
        await writer.drain()

    async def _events(self, writer: asyncio.StreamWriter) -> None:
        """Server-Sent Events: the snapshot now, then on every change (coalesced)."""
        writer.write(
            (
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                f"Connection: close\r\n{SECURITY_HEADERS}\r\n"
            ).encode()
        )
        sent = -1
        while True:
            if self.model.version != sent:
                sent = self.model.version
                data = json.dumps(self.model.snapshot(), allow_nan=False)
                writer.write(f"event: model\ndata: {data}\n\n".encode())
            else:
                writer.write(b": keep-alive\n\n")
            await writer.drain()
            await asyncio.sleep(PUSH_INTERVAL_S)
            async with self._changed:
                if self.model.version == sent:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), HEARTBEAT_S)


def _parse_head(head: bytes) -> tuple[str, str, str | None]:
    """Method, path (query dropped) and Host of a request head; ("", "", None) if unreadable."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        return "", "", None
    host = None
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "host":
            host = value.strip()
    return method.upper(), target.split("?", 1)[0], host
