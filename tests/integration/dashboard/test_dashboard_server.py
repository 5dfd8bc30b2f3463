"""`qgs dashboard` with no broker: an embedded one, nothing connected, and only GET served."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.dashboard.test_dashboard_browser import dashboard


def request(url: str, method: str, path: str, host: str | None = None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        headers = {"Host": host} if host else {}
        conn.request(
            method, path, body=b'{"args": {}}' if method != "GET" else None, headers=headers
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.mosquitto
def test_embedded_broker_nothing_connected_and_read_only(tmp_path: Path) -> None:
    with dashboard(tmp_path) as url:
        printed = (tmp_path / "dashboard.out").read_text()
        assert "embedded broker mqtt://127.0.0.1:" in printed, printed
        for _ in range(100):  # the subscription comes up shortly after the HTTP side
            status, body = request(url, "GET", "/model.json")
            model = json.loads(body)
            if model["broker"]["connected"]:
                break
            time.sleep(0.1)
        assert status == 200
        assert model["broker"]["embedded"] is True
        assert model["broker"]["connected"] is True, model
        assert model["nodes"] == []  # nothing connected yet
        # the page and its assets come from the package
        for path, marker in (
            ("/", b"<!doctype html>"),
            ("/static/app.js", b"EventSource"),
            ("/static/style.css", b"svg.sky"),
            ("/static/favicon.svg", b"<svg"),
        ):
            status, body = request(url, "GET", path)
            assert (status, marker in body) == (200, True), path
        # read only: every other method is refused on every path, unknown paths are 404,
        # and a request for another host (DNS rebinding) gets nothing
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT"):
            for path in ("/", "/events", "/model.json", "/cmd/safe"):
                assert request(url, method, path)[0] == 405, (method, path)
        assert request(url, "GET", "/static/../server.py")[0] == 404
        assert request(url, "GET", "/qgs/v1/delingha/cmd/safe")[0] == 404
        assert request(url, "GET", "/model.json", host="attacker.example:80")[0] == 403
