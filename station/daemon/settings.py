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
                 monitor_hz, mount_lost_s
    [live]       enabled, sample_fraction, seed, slot_s (the live classical channel:
                 station/daemon/live_publish.py; both stations of a key-mode pass need the
                 same sample_fraction, seed and slot_s)

Why these defaults: the follow loop runs at ``[tracking] rate_hz`` (>= 10 Hz); the pointing
monitor at 5 Hz is enough to see a following error grow over a 0.1 s beam budget without
loading a serial link; telemetry at 2 Hz keeps a monitor live at a few kB/s.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from drivers.config import Table
from drivers.config_schema import read_section, setting
from drivers.datatypes import AnalyzerMode, ChannelMap


class WatchdogPolicy(enum.StrEnum):
    """What a lost device does to the station (docs/operations.md "Watchdogs")."""

    SAFE = "safe"  #: abort the pass, stow, FAULT until reset
    DEGRADE = "degrade"  #: an alarm; the pass goes on


POLICIES = tuple(p.value for p in WatchdogPolicy)


@dataclass(frozen=True)
class MqttSettings:
    """How the daemon reaches its broker (``broker = "embedded"`` starts a local one)."""

    broker: str = setting("embedded", doc='"embedded", mqtt://host:port, mqtts://…, unix:///path')
    username: str | None = setting(None, doc="broker user (one per station on a secured broker)")
    password_file: Path | None = None
    ca_file: Path | None = None
    client_id: str | None = setting(None, doc="MQTT client id (a secured broker uses the user)")
    allowed_clients: tuple[str, ...] = ("*",)
    telemetry_hz: float = setting(2.0, min=0.1, max=50.0, unit="Hz", doc="telemetry rate")


@dataclass(frozen=True)
class RecordingSettings:
    """Where pass bundles go; ``lead_s``/``trail_s`` widen the recording around AOS/LOS."""

    data_dir: Path = Path("data")
    max_chunk_s: float = setting(
        1.0, min=0.05, max=10.0, unit="s", doc="chunk length: at most this is lost in a crash"
    )
    lead_s: float = setting(0.0, min=0.0, max=600.0, unit="s", doc="record before AOS")
    trail_s: float = setting(0.0, min=0.0, max=600.0, unit="s", doc="record after LOS")


@dataclass(frozen=True)
class ScheduleSettings:
    """Which predicted passes ENABLED takes by itself (``auto = false``: booked ones only)."""

    auto: bool = setting(True, doc="ENABLED also takes predicted passes, not only booked ones")
    min_max_elevation_deg: float = setting(
        15.0, min=0.0, max=90.0, unit="deg", doc="auto passes culminate at least this high"
    )
    night_only: bool = setting(False, doc="auto passes only with the Sun below the horizon")
    horizon_days: float = setting(
        1.0, min=0.01, max=14.0, unit="days", doc="passes predicted this far ahead"
    )
    preposition_lead_s: float = setting(
        60.0, min=0.0, max=3600.0, unit="s", doc="arrive at the pre-position point this early"
    )


@dataclass(frozen=True)
class AnalyzerSettings:
    """Detector channel map and the HWP compensation loop (deadband in deg, rate in Hz)."""

    channels: ChannelMap = field(default_factory=lambda: ChannelMap(1, 2, 3, 4))
    mode: AnalyzerMode = setting(AnalyzerMode.KEY, doc="key (BB84 bases) or bell (CHSH)")
    bell_offset_deg: float = setting(
        11.25, min=-90.0, max=90.0, unit="deg", doc="this station's plate offset in bell mode"
    )
    deadband_deg: float = setting(
        0.05, min=0.0, max=5.0, unit="deg", doc="the plate moves when off by more"
    )
    update_hz: float = setting(2.0, min=0.1, max=20.0, unit="Hz", doc="compensation updates")


@dataclass(frozen=True)
class TaggerSettings:
    """Inputs to enable (1-based), discriminator level (V) and the PPS input, if any."""

    channels: tuple[int, ...] = (1, 2, 3, 4, 8)
    threshold_v: float = setting(
        -0.4, min=-2.0, max=2.0, unit="V", doc="discriminator level of every input"
    )
    pps_channel: int | None = 8


@dataclass(frozen=True)
class WatchdogSettings:
    """What a lost device does to the station: ``safe`` (stow, FAULT) or ``degrade`` (alarm)."""

    mount: WatchdogPolicy = setting(WatchdogPolicy.SAFE, doc="a lost mount")
    hwp: WatchdogPolicy = setting(WatchdogPolicy.DEGRADE, doc="a lost waveplate")
    timetagger: WatchdogPolicy = setting(WatchdogPolicy.DEGRADE, doc="a lost time tagger")
    degraded_after: int = setting(3, min=1, max=100, doc="consecutive link errors before DEGRADED")
    monitor_hz: float = setting(5.0, min=0.2, max=50.0, unit="Hz", doc="pointing monitor rate")
    #: clock s the following error may stay beyond ``[tracking] tolerance_deg`` (the beam)
    #: during TRACK before the mount counts as "cannot be commanded" (pass aborted, parked)
    mount_lost_s: float = setting(
        15.0,
        min=1.0,
        max=600.0,
        unit="s",
        doc="pointing error beyond the beam this long: the mount counts as lost",
    )


@dataclass(frozen=True)
class LiveSettings:
    """The live classical channel: 1 s frames on ``live/events`` during a pass (on by
    default); key mode reveals the outcomes of ``sample_fraction`` of the emission slots."""

    enabled: bool = setting(True, doc="publish live/events frames during a pass")
    sample_fraction: float = setting(
        0.1, min=0.0, max=1.0, doc="key mode: emission slots whose outcomes are revealed"
    )
    seed: int = setting(0x51475321, min=0, max=2**63 - 1, doc="slot sampling seed (both stations)")
    slot_s: float = setting(
        0.01, min=1e-4, max=1.0, unit="s", doc="emission slot (must divide one second)"
    )


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
    mqtt = read_section(
        m,
        MqttSettings,
        password_file=_path(m, "password_file", base_dir),
        ca_file=_path(m, "ca_file", base_dir),
        allowed_clients=tuple(allowed),
    )
    m.finish()

    r = root.table("recording", required=False)
    recording = read_section(
        r, RecordingSettings, data_dir=_path(r, "data_dir", base_dir) or Path("data")
    )
    r.finish()

    s = root.table("schedule", required=False)
    schedule = read_section(s, ScheduleSettings)
    s.finish()

    a = root.table("analyzer", required=False)
    ch = a.table("channels", required=False)
    values = [ch.integer(k, d, min=1, max=255) for k, d in zip("hvda", (1, 2, 3, 4), strict=True)]
    ch.finish()
    try:
        channel_map = ChannelMap(*values)
    except ValueError as exc:
        raise a.error("channels", str(exc)) from None
    analyzer = read_section(a, AnalyzerSettings, channels=channel_map)
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
    tagger = read_section(
        tt, TaggerSettings, channels=tuple(sorted(set(chans))), pps_channel=pps or None
    )
    tt.finish()
    missing = [c for c in (*values, tagger.pps_channel) if c and c not in tagger.channels]
    if missing:
        raise tt.error("channels", f"inputs {missing} of [analyzer]/pps_channel are not enabled")

    w = root.table("watchdog", required=False)
    watchdog = read_section(w, WatchdogSettings)
    w.finish()

    lv = root.table("live", required=False)
    live = read_section(lv, LiveSettings)
    if 10**12 % round(live.slot_s * 1e12):
        raise lv.error("slot_s", f"{live.slot_s} s must divide one second (e.g. 0.01, 0.02, 0.1)")
    lv.finish()
    return DaemonSettings(mqtt, recording, schedule, analyzer, tagger, watchdog, live)


#: the daemon sections whose options are declared (the generated reference, docs/operations.md)
DECLARED_SECTIONS: list[tuple[str, type]] = [
    ("mqtt", MqttSettings),
    ("recording", RecordingSettings),
    ("schedule", ScheduleSettings),
    ("analyzer", AnalyzerSettings),
    ("timetagger", TaggerSettings),
    ("watchdog", WatchdogSettings),
    ("live", LiveSettings),
]
