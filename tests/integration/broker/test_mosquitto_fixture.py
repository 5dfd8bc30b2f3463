"""The broker fixtures start a real Mosquitto that carries messages, and stop it by PID."""

from __future__ import annotations

import asyncio
import os
import socket

import aiomqtt

from tests.conftest import Broker

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


async def _round_trip(client_a: aiomqtt.Client, client_b: aiomqtt.Client) -> bytes:
    async with client_a as sub, client_b as pub:
        await sub.subscribe("qgs/v1/test/#", qos=1)
        await pub.publish("qgs/v1/test/ping", b'{"n": 1}', qos=1)
        async with asyncio.timeout(5):
            async for message in sub.messages:
                assert isinstance(message.payload, bytes)
                return message.payload
    raise AssertionError("no message received")


async def test_tcp_broker_carries_messages(mosquitto: Broker) -> None:
    def make() -> aiomqtt.Client:
        return aiomqtt.Client(mosquitto.host, mosquitto.port, socket_options=NODELAY, timeout=5)

    assert await _round_trip(make(), make()) == b'{"n": 1}'
    os.kill(mosquitto.pid, 0)  # still running while the test holds it


async def test_unix_socket_broker_carries_messages(mosquitto_unix: Broker) -> None:
    assert mosquitto_unix.unix_socket is not None
    path = str(mosquitto_unix.unix_socket)

    def make() -> aiomqtt.Client:
        return aiomqtt.Client(path, transport="unix", timeout=5)

    assert await _round_trip(make(), make()) == b'{"n": 1}'
