"""The command-id cache of StationBus is bounded in entries and in bytes (issue 10)."""

from __future__ import annotations

from drivers.clock import SystemClock
from station.bus.connection import BrokerConfig
from station.bus.envelope import Command
from station.bus.station_bus import RECENT_BYTES, RECENT_IDS, StationBus


def _bus() -> StationBus:
    return StationBus("delingha", BrokerConfig(port=1), SystemClock(), state=lambda: "STANDBY")


def _size(bus: StationBus) -> int:
    return sum(len(i) + len(f) + len(t or b"") for i, (f, t) in bus._recent.items())


def test_cache_is_bounded_in_bytes_with_large_terminal_acks() -> None:
    bus = _bus()
    big = b"x" * 100_000  # e.g. a get_schedule COMPLETE
    for n in range(200):  # 20 MB of acks offered
        cmd = Command("get_schedule", f"id-{n}", 0.0, "qgs/reply/c/delingha/x", None)
        bus._remember(cmd.id, cmd.fingerprint(), big)
    assert _size(bus) <= RECENT_BYTES
    assert "id-199" in bus._recent  # the newest is kept
    assert "id-0" not in bus._recent


def test_cache_is_bounded_in_entries() -> None:
    bus = _bus()
    for n in range(RECENT_IDS + 50):
        bus._remember(f"id-{n}", "f" * 64, b"{}")
    assert len(bus._recent) == RECENT_IDS
    assert bus._recent_bytes == sum(len(i) + 64 + 2 + 64 for i in bus._recent)
