"""Swabian adapter: without the vendor SDK it fails clearly, before touching anything."""

from __future__ import annotations

import importlib.util

import pytest

from drivers.clock import SystemClock
from drivers.errors import DeviceError, DeviceURLError, NotConnected
from drivers.interfaces import TimeTagger
from drivers.registry import open_device, parse_device_url
from drivers.timetagger.swabian import SwabianTimeTagger

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("TimeTagger") is not None,
    reason="the Swabian SDK is installed here; these tests cover its absence",
)


async def test_connect_without_sdk_says_how_to_install_it() -> None:
    tagger = open_device("swabian://", SystemClock())
    assert isinstance(tagger, SwabianTimeTagger)
    assert isinstance(tagger, TimeTagger)
    with pytest.raises(DeviceError, match="module 'TimeTagger'\\) is not installed") as info:
        await tagger.connect()
    assert "Swabian's website" in str(info.value)
    with pytest.raises(NotConnected):
        await tagger.count_rates()
    await tagger.close()


def test_url_takes_no_parameters() -> None:
    with pytest.raises(DeviceURLError, match="no parameters"):
        SwabianTimeTagger.from_url(parse_device_url("swabian://123?x=1"), SystemClock())
