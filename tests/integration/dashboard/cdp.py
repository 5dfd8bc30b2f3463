"""Headless Chromium driven over the DevTools protocol (no Playwright/Selenium download).

Debian's ``chromium`` (``.ci/run`` installs it) runs with ``--remote-debugging-port=0``; the
port it picked is read from ``DevToolsActivePort`` in its profile directory, the page's
websocket from ``/json/list``, and the protocol is spoken with the ``websockets`` package:
``Page.navigate``, ``Runtime.evaluate`` (read the DOM), ``Page.captureScreenshot``. Every wait
is bounded; the browser is stopped by PID (``tests/conftest.py`` ``stop_process``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import stop_process

START_BOUND_S = 30.0
CALL_BOUND_S = 20.0


class Page:
    """One browser tab: CDP calls with bounded waits."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        async with asyncio.timeout(CALL_BOUND_S):
            while True:
                reply = json.loads(await self.ws.recv())
                if reply.get("id") == msg_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    result: dict[str, Any] = reply.get("result", {})
                    return result

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, bound_s: float, poll_s: float = 0.2) -> Any:
        """Poll ``expression`` until it is truthy (bounded); its value."""
        deadline = time.monotonic() + bound_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"page never satisfied {expression!r} within {bound_s} s")
            await asyncio.sleep(poll_s)

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


def _devtools_port(profile: Path, proc: subprocess.Popen[bytes]) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_BOUND_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"chromium exited with {proc.returncode}")
        if marker.exists():
            lines = marker.read_text().splitlines()
            if lines and lines[0].isdigit():
                return int(lines[0])
        time.sleep(0.1)
    pytest.fail(f"chromium did not open its DevTools port within {START_BOUND_S} s")


def _targets(port: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
        targets: list[dict[str, Any]] = json.loads(r.read())
    return targets


@asynccontextmanager
async def chromium(tmp: Path, *, width: int = 1500, height: int = 1100) -> AsyncIterator[Page]:
    """A headless Chromium with one blank tab (a fresh profile under ``tmp``)."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    profile = tmp / "chromium-profile"
    profile.mkdir()
    args = [
        exe,
        "--headless=new",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "about:blank",
    ]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    with open(tmp / "chromium.err", "wb") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
    try:
        port = _devtools_port(profile, proc)
        targets = await asyncio.to_thread(_targets, port)
        page = next(t for t in targets if t.get("type") == "page")
        async with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            yield Page(ws)
    finally:
        stop_process(proc)
