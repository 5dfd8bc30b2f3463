"""The station's polarization analyzer: a compensation half-wave plate plus the channel map.

Physics (DESIGN.md, physics conventions): a half-wave plate at angle phi *reflects* linear
polarization about its fast axis, alpha -> 2*phi - alpha (not a rotation). The station works
out a compensation angle x from the geometry (station/tracking/polframe.py: x = theta for a
tube-mounted analyzer, 2*rho - theta behind a mirror train) and the plate goes to x/2, plus the
calibration offset that aligns the plate's fast axis with the analyzer's H, plus the Bell-mode
offset (11.25 deg turns the analyzer's source-frame angles by 22.5 deg, in a direction set by
the optics' parity).

Periodicity: the plate is a disk whose fast axis is a line, so phi and phi + 180 deg are the
same physical setting; the analyzer reduces the command modulo 180 and drives the mount to
whichever of the two equivalent angles is nearer its current position (less motion, less
time with a misaligned frame). (For linear-basis measurements phi + 90 deg is equivalent as
well, up to a global phase; we keep the exact mechanical 180 deg symmetry so that any
imperfection of the plate stays identical.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from drivers.clock import Clock
from drivers.config import Table
from drivers.datatypes import AnalyzerMode, ChannelMap
from drivers.errors import ConfigError
from drivers.interfaces import Rotator
from drivers.registry import open_device, parse_device_url

log = logging.getLogger(__name__)

BELL_HWP_OFFSET_DEG = 11.25  #: plate turn for a 22.5 deg analyzer-frame turn (DESIGN.md)
HWP_PERIOD_DEG = 180.0  #: mechanical symmetry of a half-wave plate


def hwp_command(
    frame_rotation_deg: float, *, offset_deg: float, mode: AnalyzerMode, bell_offset_deg: float
) -> float:
    """Plate angle (deg, [0, 180)): half the compensation angle, plus the offsets."""
    extra = bell_offset_deg if mode is AnalyzerMode.BELL else 0.0
    angle = (frame_rotation_deg / 2.0 + offset_deg + extra) % HWP_PERIOD_DEG
    return 0.0 if angle >= HWP_PERIOD_DEG else angle


def nearest_equivalent(command_deg: float, current_deg: float) -> float:
    """Of ``command`` and ``command + 180`` (deg, in [0, 360)), the one nearer ``current``.

    Distance is measured along [0, 360) without wrapping: an absolute move on a stage such as
    the ELL14 (counts 0..pulses) travels linearly, so 350 -> 10 deg is a 340 deg move.
    """
    other = command_deg + HWP_PERIOD_DEG
    current = current_deg % 360.0
    return command_deg if abs(command_deg - current) <= abs(other - current) else other


class Analyzer:
    """Implements :class:`drivers.interfaces.PolarizationAnalyzer` around one HWP rotator.

    Args:
        hwp: the rotator holding the compensation half-wave plate.
        channel_map: which time-tagger channel is H, V, D and A.
        offset_deg: calibration offset of the plate (deg), added to every command.
        mode: KEY (BB84 bases) or BELL.
        bell_offset_deg: extra plate angle in BELL mode (11.25 on the station whose frame
            turns by 22.5 deg; 0 on the other; -11.25 to mirror for |Psi+>).
    """

    def __init__(
        self,
        hwp: Rotator,
        channel_map: ChannelMap,
        *,
        offset_deg: float = 0.0,
        mode: AnalyzerMode = AnalyzerMode.KEY,
        bell_offset_deg: float = BELL_HWP_OFFSET_DEG,
    ) -> None:
        if not (math.isfinite(offset_deg) and math.isfinite(bell_offset_deg)):
            raise ConfigError("analyzer offsets must be finite numbers of degrees")
        self.hwp = hwp
        self._channel_map = channel_map
        self.offset_deg = offset_deg
        self.bell_offset_deg = bell_offset_deg
        self._mode = mode
        self._last_frame_rotation: float | None = None
        self._last_position: float | None = None  #: rotator angle last commanded (deg)

    @property
    def channel_map(self) -> ChannelMap:
        return self._channel_map

    @property
    def mode(self) -> AnalyzerMode:
        return self._mode

    async def connect(self) -> None:
        await self.hwp.connect()

    async def close(self) -> None:
        await self.hwp.close()

    async def set_mode(self, mode: AnalyzerMode) -> None:
        """Select KEY or BELL; re-applies the last compensation so the plate follows at once."""
        self._mode = mode
        log.info("analyzer on %s: mode %s", self.hwp.url, mode.value)
        if self._last_frame_rotation is not None:
            await self.compensate(self._last_frame_rotation)

    async def compensate(self, frame_rotation_deg: float) -> float:
        """Move the HWP to undo ``frame_rotation_deg``; returns the commanded rotator angle.

        The command is theta/2 + offset (+ Bell offset) modulo 180; of the two equivalent
        rotator angles the one nearer the plate's current position is commanded.
        """
        command = hwp_command(
            frame_rotation_deg,
            offset_deg=self.offset_deg,
            mode=self._mode,
            bell_offset_deg=self.bell_offset_deg,
        )
        current = self._last_position
        if current is None:
            current = await self.hwp.angle()
        target = nearest_equivalent(command, current)
        await self.hwp.move_to(target)
        self._last_frame_rotation = frame_rotation_deg
        self._last_position = target
        return target

    async def home(self) -> None:
        """Home the plate (its angles are counted from the home reference afterwards)."""
        await self.hwp.home()
        self._last_position = 0.0

    async def hwp_angle(self) -> float:
        """Measured angle of the compensation plate (deg, [0, 360))."""
        return await self.hwp.angle()


def analyzer_from_config(
    config: Mapping[str, Any] | Table,
    *,
    rotators: Mapping[str, Rotator] | None = None,
    clock: Clock | None = None,
    source: str = "analyzer",
) -> Analyzer:
    """Build an :class:`Analyzer` from a config table.

    Keys: ``hwp`` (a name in ``rotators`` or a rotator device URL, opened with ``clock``),
    ``channels = {h = 1, v = 2, d = 3, a = 4}``, ``offset_deg`` (default 0),
    ``mode`` (``"key"`` or ``"bell"``, default key), ``bell_offset_deg`` (default 11.25).
    Errors name the key and the allowed values; unknown keys are errors.
    """
    table = config if isinstance(config, Table) else Table(config, source=source)
    hwp_name = table.string("hwp")
    hwp: Rotator
    if rotators is not None and hwp_name in rotators:
        hwp = rotators[hwp_name]
    elif "://" in hwp_name:
        parsed = parse_device_url(hwp_name)
        if parsed.kind != "rotator":
            raise table.error("hwp", f"{hwp_name!r} is a {parsed.kind}, not a rotator")
        if clock is None:
            raise table.error("hwp", "opening a rotator by URL needs a clock")
        hwp = open_device(hwp_name, clock)
    else:
        known = sorted(rotators) if rotators else []
        raise table.error(
            "hwp", f"expected a rotator name {known} or a rotator device URL, got {hwp_name!r}"
        )
    channels = table.table("channels")
    values = [channels.integer(k, min=0, max=255) for k in ("h", "v", "d", "a")]
    channels.finish()
    try:
        channel_map = ChannelMap(*values)
    except ValueError as exc:
        raise table.error("channels", str(exc)) from None
    mode_name = table.choice("mode", [m.value for m in AnalyzerMode], AnalyzerMode.KEY.value)
    offset = table.number("offset_deg", 0.0, min=-360.0, max=360.0)
    bell = table.number("bell_offset_deg", BELL_HWP_OFFSET_DEG, min=-90.0, max=90.0)
    table.finish()
    return Analyzer(
        hwp, channel_map, offset_deg=offset, mode=AnalyzerMode(mode_name), bell_offset_deg=bell
    )
