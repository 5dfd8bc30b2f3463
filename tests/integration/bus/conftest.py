"""Fixtures shared by the bus tests: every station-bus test runs on MQTT 5 and on 3.1.1."""

from __future__ import annotations

import pytest

from station.bus.connection import BrokerConfig
from tests.conftest import Broker


@pytest.fixture(params=["v5", "v311"])
def broker_config(request: pytest.FixtureRequest, mosquitto: Broker) -> BrokerConfig:
    return BrokerConfig(host=mosquitto.host, port=mosquitto.port, protocol=request.param)
