"""The operator daemon's config sections, next to the station sections of station/config.py.

A station file (``configs/stations/<site>.toml``) may carry these sections; every one is
optional and has defaults that run a station unattended on a loopback broker::

    [mqtt]       broker ("embedded" | "mqtt://host:port" | "mqtts://…" | "unix:///path"),
                 username, password_file, ca_file, client_id, allowed_clients,
                 telemetry_hz
    [recording]  data_dir (relative to the config file), max_chunk_s, lead_s, trail_s
    [schedule]   auto, min_max_elevation_deg, night_only, horizon_days, preposition_lead_s
    [analyzer]   channels = {h, v, d, a}, mode ("key" | "bell"), bell_offset_deg,
                 deadband_deg, update_hz
    [timetagger] channels (enabled inputs), threshold_v, pps_channel
    [watchdog]   mount, hwp, timetagger ("safe" | "degrade"), degraded_after,
                 monitor_hz
    [live]       enabled, sample_fraction, seed, slot_s (the live classical channel:
                 station/daemon/live_publish.py; both stations of a key-mode pass need the
                 same sample_fraction, seed and slot_s)

Why these defaults: the follow loop runs at ``[tracking] rate_hz`` (>= 10 Hz); the pointing
monitor at 5 Hz is enough to see a following error grow over a 0.1 s beam budget without
loading a serial link; telemetry at 2 Hz keeps a monitor live at a few kB/s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from drivers.config import Table
from drivers.datatypes import AnalyzerMode, ChannelMap

POLICIES = ("safe", "degrade")


@dataclass(frozen=True)
class MqttSettings:
    """How the daemon reaches its broker (``broker = "embedded"`` starts a local one)."""

    broker: str = "embedded"
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    client_id: str | None = None
    allowed_clients: tuple[str, ...] = ("*",)
    telemetry_hz: float = 2.0


@dataclass(frozen=True)
class RecordingSettings:
    """Where pass bundles go; ``lead_s``/``trail_s`` widen the recording around AOS/LOS."""

    data_dir: Path = Path("data")
    max_chunk_s: float = 1.0
    lead_s: float = 0.0
    trail_s: float = 0.0


@dataclass(frozen=True)
class ScheduleSettings:
    """Which predicted passes ENABLED takes by itself (``auto = false``: booked ones only)."""

    auto: bool = True
    min_max_elevation_deg: float = 15.0
    night_only: bool = False
    horizon_days: float = 1.0
    preposition_lead_s: float = 60.0  #: arrive at the pre-position point this early (s)


@dataclass(frozen=True)
class AnalyzerSettings:
    """Detector channel map and the HWP compensation loop (deadband in deg, rate in Hz)."""

    channels: ChannelMap = field(default_factory=lambda: ChannelMap(1, 2, 3, 4))
    mode: AnalyzerMode = AnalyzerMode.KEY
    bell_offset_deg: float = 11.25
    deadband_deg: float = 0.05
    update_hz: float = 2.0


@dataclass(frozen=True)
class TaggerSettings:
    """Inputs to enable (1-based), discriminator level (V) and the PPS input, if any."""

    channels: tuple[int, ...] = (1, 2, 3, 4, 8)
    threshold_v: float = -0.4
    pps_channel: int | None = 8


@dataclass(frozen=True)
class WatchdogSettings:
    """What a lost device does to the station: ``safe`` (stow, FAULT) or ``degrade`` (alarm)."""

    mount: str = "safe"
    hwp: str = "degrade"
    timetagger: str = "degrade"
    degraded_after: int = 3
    monitor_hz: float = 5.0


@dataclass(frozen=True)
class LiveSettings:
    """The live classical channel: 1 s frames on ``live/events`` during a pass (on by
    default); key mode reveals the outcomes of ``sample_fraction`` of the emission slots."""

    enabled: bool = True
    sample_fraction: float = 0.1
    seed: int = 0x51475321
    slot_s: float = 0.01


@dataclass(frozen=True)
class DaemonSettings:
    """All daemon sections of one station file."""

    mqtt: MqttSettings = MqttSettings()
    recording: RecordingSettings = RecordingSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    analyzer: AnalyzerSettings = AnalyzerSettings()
    timetagger: TaggerSettings = TaggerSettings()
    watchdog: WatchdogSettings = WatchdogSettings()
    live: LiveSettings = LiveSettings()


SECTIONS = ("mqtt", "recording", "schedule", "analyzer", "timetagger", "watchdog", "live")


def _path(t: Table, name: str, base_dir: Path | None) -> Path | None:
    if name not in t:
        return None
    path = Path(t.string(name))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def parse_daemon_settings(root: Table, *, base_dir: Path | None = None) -> DaemonSettings:
    """Read the daemon sections of ``root`` (each optional); errors name file and key."""
    m = root.table("mqtt", required=False)
    allowed = m.raw("allowed_clients", ["*"])
    if not isinstance(allowed, list) or not all(isinstance(a, str) and a for a in allowed):
        raise m.error("allowed_clients", f"expected an array of client-id patterns, got {allowed}")
    mqtt = MqttSettings(
        broker=m.string("broker", "embedded"),
        username=m.string("username") if "username" in m else None,
        password_file=_path(m, "password_file", base_dir),
        ca_file=_path(m, "ca_file", base_dir),
        client_id=m.string("client_id") if "client_id" in m else None,
        allowed_clients=tuple(allowed),
        telemetry_hz=m.number("telemetry_hz", 2.0, min=0.1, max=50.0),
    )
    m.finish()

    r = root.table("recording", required=False)
    recording = RecordingSettings(
        data_dir=_path(r, "data_dir", base_dir) or Path("data"),
        max_chunk_s=r.number("max_chunk_s", 1.0, min=0.05, max=10.0),
        lead_s=r.number("lead_s", 0.0, min=0.0, max=600.0),
        trail_s=r.number("trail_s", 0.0, min=0.0, max=600.0),
    )
    r.finish()

    s = root.table("schedule", required=False)
    schedule = ScheduleSettings(
        auto=s.boolean("auto", True),
        min_max_elevation_deg=s.number("min_max_elevation_deg", 15.0, min=0.0, max=90.0),
        night_only=s.boolean("night_only", False),
        horizon_days=s.number("horizon_days", 1.0, min=0.01, max=14.0),
        preposition_lead_s=s.number("preposition_lead_s", 60.0, min=0.0, max=3600.0),
    )
    s.finish()

    a = root.table("analyzer", required=False)
    ch = a.table("channels", required=False)
    values = [ch.integer(k, d, min=1, max=255) for k, d in zip("hvda", (1, 2, 3, 4), strict=True)]
    ch.finish()
    try:
        channel_map = ChannelMap(*values)
    except ValueError as exc:
        raise a.error("channels", str(exc)) from None
    analyzer = AnalyzerSettings(
        channels=channel_map,
        mode=AnalyzerMode(a.choice("mode", [m.value for m in AnalyzerMode], "key")),
        bell_offset_deg=a.number("bell_offset_deg", 11.25, min=-90.0, max=90.0),
        deadband_deg=a.number("deadband_deg", 0.05, min=0.0, max=5.0),
        update_hz=a.number("update_hz", 2.0, min=0.1, max=20.0),
    )
    a.finish()

    tt = root.table("timetagger", required=False)
    chans = tt.raw("channels", [1, 2, 3, 4, 8])
    if (
        not isinstance(chans, list)
        or not chans
        or not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 64 for c in chans)
    ):
        raise tt.error("channels", f"expected a non-empty array of inputs 1..64, got {chans}")
    pps = tt.integer("pps_channel", 0, min=0, max=64) if "pps_channel" in tt else 8
    tagger = TaggerSettings(
        channels=tuple(sorted(set(chans))),
        threshold_v=tt.number("threshold_v", -0.4, min=-2.0, max=2.0),
        pps_channel=pps or None,
    )
    tt.finish()
    missing = [c for c in (*values, tagger.pps_channel) if c and c not in tagger.channels]
    if missing:
        raise tt.error("channels", f"inputs {missing} of [analyzer]/pps_channel are not enabled")

    w = root.table("watchdog", required=False)
    watchdog = WatchdogSettings(
        mount=w.choice("mount", POLICIES, "safe"),
        hwp=w.choice("hwp", POLICIES, "degrade"),
        timetagger=w.choice("timetagger", POLICIES, "degrade"),
        degraded_after=w.integer("degraded_after", 3, min=1, max=100),
        monitor_hz=w.number("monitor_hz", 5.0, min=0.2, max=50.0),
    )
    w.finish()

    lv = root.table("live", required=False)
    slot_s = lv.number("slot_s", 0.01, min=1e-4, max=1.0)
    if 10**12 % round(slot_s * 1e12):
        raise lv.error("slot_s", f"{slot_s} s must divide one second (e.g. 0.01, 0.02, 0.1)")
    live = LiveSettings(
        enabled=lv.boolean("enabled", True),
        sample_fraction=lv.number("sample_fraction", 0.1, min=0.0, max=1.0),
        seed=lv.integer("seed", 0x51475321, min=0, max=2**63 - 1),
        slot_s=slot_s,
    )
    lv.finish()
    return DaemonSettings(mqtt, recording, schedule, analyzer, tagger, watchdog, live)
