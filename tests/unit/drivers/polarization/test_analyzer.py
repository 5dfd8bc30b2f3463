"""Analyzer: HWP command arithmetic, nearest equivalent angle, config factory errors."""

from __future__ import annotations

import pytest

from drivers.clock import SystemClock
from drivers.datatypes import AnalyzerMode, ChannelMap
from drivers.errors import ConfigError
from drivers.interfaces import PolarizationAnalyzer, Rotator
from drivers.polarization.analyzer import (
    Analyzer,
    analyzer_from_config,
    hwp_command,
    nearest_equivalent,
)
from drivers.polarization.elliptec import ElliptecRotator


class PlateRotator:
    """An in-memory rotator recording its moves (stands in for the plate's stage)."""

    def __init__(self, start: float = 0.0) -> None:
        self.position = start
        self.moves: list[float] = []
        self.connected = False

    @property
    def url(self) -> str:
        return "memory://plate"

    async def connect(self) -> None:
        self.connected = True

    async def close(self) -> None:
        self.connected = False

    async def angle(self) -> float:
        return self.position % 360.0

    async def move_to(self, angle_deg: float, *, timeout: float | None = None) -> None:
        self.moves.append(angle_deg)
        self.position = angle_deg % 360.0

    async def home(self) -> None:
        self.position = 0.0

    async def stop(self) -> None:
        return None


CHANNELS = ChannelMap(h=1, v=2, d=3, a=4)


def test_plate_goes_to_half_the_frame_rotation_plus_offsets() -> None:
    key, bell = AnalyzerMode.KEY, AnalyzerMode.BELL
    assert hwp_command(40.0, offset_deg=0.0, mode=key, bell_offset_deg=11.25) == 20.0
    assert hwp_command(40.0, offset_deg=2.5, mode=key, bell_offset_deg=11.25) == 22.5
    assert hwp_command(40.0, offset_deg=2.5, mode=bell, bell_offset_deg=11.25) == 33.75
    # modulo 180: a plate at phi and phi + 180 is the same optic
    assert hwp_command(400.0, offset_deg=0.0, mode=key, bell_offset_deg=11.25) == 20.0
    assert hwp_command(-40.0, offset_deg=0.0, mode=key, bell_offset_deg=11.25) == 160.0


def test_nearest_equivalent_angle() -> None:
    assert nearest_equivalent(10.0, 0.0) == 10.0
    assert nearest_equivalent(10.0, 180.0) == 190.0
    assert nearest_equivalent(170.0, 355.0) == 350.0  # via the wrap at 360
    assert nearest_equivalent(170.0, 10.0) == 170.0


async def test_compensate_moves_to_the_nearer_equivalent() -> None:
    plate = PlateRotator(start=200.0)
    analyzer = Analyzer(plate, CHANNELS, offset_deg=1.0)
    assert isinstance(analyzer, PolarizationAnalyzer)
    assert isinstance(plate, Rotator)
    await analyzer.connect()
    assert await analyzer.compensate(40.0) == 201.0  # 21 or 201: 201 is nearer to 200
    assert await analyzer.compensate(44.0) == 203.0
    assert await analyzer.hwp_angle() == 203.0
    assert plate.moves == [201.0, 203.0]
    await analyzer.close()
    assert not plate.connected


async def test_set_mode_reapplies_the_last_compensation() -> None:
    plate = PlateRotator()
    analyzer = Analyzer(plate, CHANNELS)
    await analyzer.set_mode(AnalyzerMode.BELL)  # nothing to re-apply yet
    assert plate.moves == []
    assert await analyzer.compensate(20.0) == 21.25
    await analyzer.set_mode(AnalyzerMode.KEY)
    assert analyzer.mode is AnalyzerMode.KEY
    assert plate.moves == [21.25, 10.0]


def test_factory_builds_from_a_mapping() -> None:
    plate = PlateRotator()
    analyzer = analyzer_from_config(
        {
            "hwp": "hwp1",
            "channels": {"h": 5, "v": 6, "d": 7, "a": 8},
            "mode": "bell",
            "offset_deg": -3.0,
            "bell_offset_deg": -11.25,
        },
        rotators={"hwp1": plate},
    )
    assert analyzer.hwp is plate
    assert analyzer.channel_map == ChannelMap(5, 6, 7, 8)
    assert analyzer.mode is AnalyzerMode.BELL
    assert analyzer.offset_deg == -3.0
    assert analyzer.bell_offset_deg == -11.25


def test_factory_opens_a_rotator_url() -> None:
    analyzer = analyzer_from_config(
        {
            "hwp": "elliptec+serial:///dev/ttyUSB1?address=2",
            "channels": {"h": 1, "v": 2, "d": 3, "a": 4},
        },
        clock=SystemClock(),
    )
    assert isinstance(analyzer.hwp, ElliptecRotator)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"channels": {"h": 1, "v": 2, "d": 3, "a": 4}}, "analyzer:hwp: required key"),
        ({"hwp": "nope", "channels": {"h": 1, "v": 2, "d": 3, "a": 4}}, "rotator name"),
        ({"hwp": "idq+zmq://127.0.0.1:5555", "channels": {}}, "not a rotator"),
        ({"hwp": "p", "channels": {"h": 1, "v": 1, "d": 3, "a": 4}}, "four distinct"),
        ({"hwp": "p", "channels": {"h": 1, "v": 2, "d": 3}}, "channels.a"),
        ({"hwp": "p", "channels": {"h": 1, "v": 2, "d": 3, "a": 4}, "mode": "x"}, "'key', 'bell'"),
        ({"hwp": "p", "channels": {"h": 1, "v": 2, "d": 3, "a": 4}, "ofset_deg": 1}, "unknown key"),
    ],
)
def test_factory_errors_name_the_key(config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        analyzer_from_config(config, rotators={"p": PlateRotator()}, clock=SystemClock())
