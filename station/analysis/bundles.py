"""One station's pass bundle, read for the analysis: verified events, PPS edges and metadata.

The bundle is verified first (every chunk CRC, every manifest hash: ``qgs bundle verify``);
then its chunks are streamed one at a time and split into the analyzer's four outputs
(H, V, D, A from the manifest's channel map) and the PPS input, so memory holds the
selected events only (9 bytes each; a Micius pass is a few million events).

What the analysis needs from the manifest, and where it comes from:

- ``channel_map`` (which tagger input is H, V, D, A): required;
- ``analyzer``: the source-frame angles each output measured, the mode (key or Bell) and
  the source state (written by the daemon since the polarization-frame fix); older bundles
  are refused (their compensation followed the wrong frame sign: docs/tracking.md);
- ``timescale``: the PPS channel and the (tagger reading, UTC) anchor; older bundles fall
  back to ``run_start_posix`` and the first event, with a wide uncertainty;
- ``config.site`` (latitude, longitude, altitude, weather) and ``tle``: for the orbit prior.

An ``aborted`` bundle is read up to where it stops and marked partial.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
import numpy.typing as npt

from station.analysis.errors import BundleUnusable, MissingMetadata
from station.analysis.statistics import State
from station.recording.errors import RecordingError
from station.recording.manifest import read_manifest
from station.recording.reader import iter_blocks
from station.recording.verify import verify_bundle

log = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
OUTPUTS = ("H", "V", "D", "A")  #: analyzer output codes 0..3 in this order
PS = 10**12


@dataclass(frozen=True)
class SiteInfo:
    """Where the station is (deg, m) and its weather (hPa, °C) for the troposphere."""

    name: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    pressure_hpa: float
    temperature_c: float


@dataclass(frozen=True)
class AnalyzerInfo:
    """What the analyzer's outputs measured (source-frame angles, deg) and the run's mode."""

    mode: str  #: "key" or "bell"
    source_state: State
    angle_h_deg: float  #: source-frame angle of the H output (arm 0, "+")
    angle_d_deg: float  #: source-frame angle of the D output (arm 1, "+")
    parity: int
    compensated: bool

    @property
    def arm_angles(self) -> tuple[float, float]:
        return (self.angle_h_deg, self.angle_d_deg)


@dataclass(frozen=True)
class StationData:
    """A station's pass, ready for the analysis.

    ``t_ps``/``code``: the analyzer outputs' events (tagger ps, time-ordered; code 0..3 =
    H, V, D, A); ``pps_ps``: the PPS edges (tagger ps).
    """

    path: Path
    station: str
    status: str
    partial: bool
    pass_id: str | None
    campaign: str | None
    site: SiteInfo
    tle: tuple[str, str] | None
    analyzer: AnalyzerInfo
    anchor_tagger_ps: int
    anchor_posix_s: float
    anchor_uncertainty_s: float
    anchor_source: str
    pps_channel: int | None
    t_ps: I64
    code: U8
    pps_ps: I64
    channels: tuple[int, int, int, int]  #: tagger inputs of H, V, D, A
    aos_posix: float | None
    los_posix: float | None
    quality: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def events(self) -> int:
        return int(self.t_ps.size)

    def counts(self) -> dict[str, int]:
        """Events per analyzer output."""
        n = np.bincount(self.code, minlength=4)
        return {o: int(n[i]) for i, o in enumerate(OUTPUTS)}


def _posix(text: Any) -> float | None:
    from station.tracking.elements import parse_time

    if not isinstance(text, str):
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


def _site(manifest: dict[str, Any], where: Path) -> SiteInfo:
    site = (manifest.get("config") or {}).get("site")
    keys = ("latitude_deg", "longitude_deg", "altitude_m")
    if not isinstance(site, dict) or not all(isinstance(site.get(k), int | float) for k in keys):
        raise MissingMetadata(
            f"{where}: the manifest has no config.site (latitude_deg, longitude_deg, "
            "altitude_m): the orbit prior needs the station's position"
        )
    pressure = site.get("pressure_hpa")
    temperature = site.get("temperature_c")
    return SiteInfo(
        str(site.get("name") or manifest.get("station")),
        float(site["latitude_deg"]),
        float(site["longitude_deg"]),
        float(site["altitude_m"]),
        float(pressure) if isinstance(pressure, int | float) else 1013.25,
        float(temperature) if isinstance(temperature, int | float) else 15.0,
    )


def _analyzer(manifest: dict[str, Any], where: Path) -> AnalyzerInfo:
    a = manifest.get("analyzer")
    if not isinstance(a, dict) or not isinstance(a.get("source_frame_angles_deg"), dict):
        raise MissingMetadata(
            f"{where}: the manifest has no `analyzer` section (source-frame angles of the "
            "outputs): it was recorded before the polarization-frame fix, whose compensation "
            "followed the wrong frame sign; record the pass again"
        )
    angles = a["source_frame_angles_deg"]
    state = a.get("source_state")
    if state != "psi+" and state != "phi+":
        raise MissingMetadata(
            f"{where}: the manifest's analyzer.source_state is {state!r}; expected one of "
            f"{list(get_args(State))}"
        )
    try:
        return AnalyzerInfo(
            mode=str(a["mode"]),
            source_state=state,
            angle_h_deg=float(angles["H"]),
            angle_d_deg=float(angles["D"]),
            parity=int(a.get("parity", 0)),
            compensated=bool(a.get("compensated", True)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MissingMetadata(
            f"{where}: the manifest's analyzer section is incomplete ({exc}); expected mode, "
            "source_state and source_frame_angles_deg {H, D}"
        ) from None


def _channels(manifest: dict[str, Any], where: Path) -> tuple[int, int, int, int]:
    cm = manifest.get("channel_map")
    if not isinstance(cm, dict) or not all(isinstance(cm.get(o), int) for o in OUTPUTS):
        raise MissingMetadata(
            f"{where}: the manifest has no channel map (which tagger input is H, V, D, A); "
            "expected channel_map = {H, V, D, A}"
        )
    return (int(cm["H"]), int(cm["V"]), int(cm["D"]), int(cm["A"]))


def load_station(path: Path | str, *, verify: bool = True) -> StationData:
    """Verify and read one bundle (raises a typed :class:`AnalysisError` on bad input)."""
    root = Path(path)
    try:
        manifest = read_manifest(root)
    except RecordingError as exc:
        raise BundleUnusable(f"{root}: not a readable pass bundle ({exc})") from None
    status = str(manifest.get("status"))
    if verify:
        try:
            report = verify_bundle(root)
        except RecordingError as exc:
            raise BundleUnusable(f"{root}: {exc}") from None
        if not report.ok:
            raise BundleUnusable(
                f"{root}: bundle verify failed: {report.problems[0]}"
                + (f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else "")
            )
    channels = _channels(manifest, root)
    analyzer = _analyzer(manifest, root)
    site = _site(manifest, root)
    ts = manifest.get("timescale") if isinstance(manifest.get("timescale"), dict) else {}
    pps_channel = ts.get("pps_channel") if ts else None
    if pps_channel is None:
        cfg_tt = ((manifest.get("config") or {}).get("daemon") or {}).get("timetagger") or {}
        pps_channel = cfg_tt.get("pps_channel")
    lookup = np.full(256, 255, np.uint8)
    for i, c in enumerate(channels):
        lookup[c] = i
    times: list[I64] = []
    codes: list[U8] = []
    pps: list[I64] = []
    try:
        for block in iter_blocks(root):
            code = lookup[block.channel]
            sel = code != 255
            times.append(block.t_ps[sel])
            codes.append(code[sel])
            if pps_channel is not None:
                pps.append(block.t_ps[block.channel == pps_channel])
    except RecordingError as exc:
        raise BundleUnusable(f"{root}: {exc}") from None
    t = np.concatenate(times) if times else np.empty(0, np.int64)
    code_all = np.concatenate(codes) if codes else np.empty(0, np.uint8)
    pps_all = np.concatenate(pps) if pps else np.empty(0, np.int64)
    if t.size > 1 and np.any(np.diff(t) < 0):  # chunks are ordered each; a regression between
        order = np.argsort(t, kind="stable")  # chunks (a restarted stream) is put in order
        t, code_all = t[order], code_all[order]
        pps_all = np.sort(pps_all)
    anchor = ts.get("anchor") if ts else None
    if isinstance(anchor, dict) and isinstance(anchor.get("tagger_ps"), int):
        a_t = int(anchor["tagger_ps"])
        a_s = float(anchor["posix_s"])
        a_u = float(anchor.get("uncertainty_s", 1.0))
        a_src = str(anchor.get("source", "?"))
    else:
        # older bundles: the first event at the run start (the stream latency is unknown)
        a_t = int(t[0]) if t.size else 0
        a_s = float(manifest.get("run_start_posix") or 0.0)
        a_u, a_src = 2.0, "run_start"
    tle = manifest.get("tle")
    info = manifest.get("info") or {}
    camp = info.get("campaign")
    return StationData(
        path=root,
        station=str(manifest.get("station")),
        status=status,
        partial=status != "complete",
        pass_id=info.get("pass_id"),
        campaign=camp.get("id") if isinstance(camp, dict) else camp,
        site=site,
        tle=(str(tle[0]), str(tle[1])) if isinstance(tle, list) and len(tle) == 2 else None,
        analyzer=analyzer,
        anchor_tagger_ps=a_t,
        anchor_posix_s=a_s,
        anchor_uncertainty_s=a_u,
        anchor_source=a_src,
        pps_channel=int(pps_channel) if isinstance(pps_channel, int) else None,
        t_ps=t,
        code=code_all,
        pps_ps=pps_all,
        channels=channels,
        aos_posix=_posix(info.get("aos_utc")),
        los_posix=_posix(info.get("los_utc")),
        quality=quality if isinstance(quality := manifest.get("quality"), dict) else {},
        manifest=manifest,
    )
