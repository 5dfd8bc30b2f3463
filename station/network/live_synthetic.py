"""Known-answer two-station passes for the live channel's tests and bench.

:func:`make_pass` draws photon pairs with :func:`station.analysis.synthetic.make_pair_streams`
(timing: jitter, clock offset, random walk), gives each pair the outcomes of a Werner state
of visibility V for the stations' analyzer angles (E = V·E_ideal(a, b); physics.md §4), adds
the orbit-predicted differential time of flight to B (as the real link does; the analysis
removes it again), and puts both on their taggers' own timescales with a PPS edge on every
UTC second. :func:`frames_of` then cuts each station's stream into live frames exactly as
the daemon does (:class:`station.daemon.live_publish.FrameBuilder`).
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from drivers.datatypes import ChannelMap
from station.analysis.bundles import AnalyzerInfo, SiteInfo, StationData
from station.analysis.key.reveal import LightTime, RevealParams
from station.analysis.orbitprior import orbit_prior
from station.analysis.statistics import ideal_correlation
from station.analysis.synthetic import make_pair_streams
from station.daemon.live_publish import FrameBuilder
from station.network.channel import FrameAnchor, LiveFrame
from station.tracking.site import Site

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
PS = 10**12
ROOT = Path(__file__).resolve().parents[2]
T0_POSIX = 1_619_717_040  #: 2021-04-29 17:24:00 UTC: Micius over Delingha and Lijiang
CHANNELS = ChannelMap(1, 2, 3, 4)
PPS_CHANNEL = 8
#: (A, B) source-frame angles of the H and D outputs (phi+): key and Bell configurations
ANGLES = {
    "key": ((0.0, 45.0), (0.0, 45.0)),
    "bell": ((0.0, 45.0), (22.5, -22.5)),
}


def site(name: str) -> Site:
    """A station of ``configs/stations`` as a :class:`Site` (with its weather)."""
    s = tomllib.loads((ROOT / f"configs/stations/{name}.toml").read_text())["site"]
    return Site(
        name,
        s["latitude_deg"],
        s["longitude_deg"],
        s["altitude_m"],
        pressure_hpa=s["pressure_hpa"],
        temperature_c=s["temperature_c"],
    )


def tle() -> tuple[str, str]:
    lines = (ROOT / "configs/satellites/micius-2021.tle").read_text().splitlines()
    return lines[1].strip(), lines[2].strip()


@dataclass(frozen=True)
class StationStream:
    """One station's tagger stream: times (tagger ps), tagger channels, and its PPS edges."""

    site: Site
    t_ps: I64  #: analyzer detections, tagger ps, sorted
    code: U8  #: 0..3 = H, V, D, A
    pps_ps: I64  #: the edge at index k marks UTC second ``T0_POSIX + k - 1``
    tagger0_ps: int  #: tagger reading at UTC ``T0_POSIX``

    def channels(self) -> U8:
        lut = np.array([CHANNELS.h, CHANNELS.v, CHANNELS.d, CHANNELS.a], np.uint8)
        out: U8 = lut[self.code]
        return out

    def merged(self) -> tuple[I64, U8]:
        """Detections and PPS edges as one time-ordered tagger stream."""
        t = np.concatenate((self.t_ps, self.pps_ps))
        c = np.concatenate((self.channels(), np.full(self.pps_ps.size, PPS_CHANNEL, np.uint8)))
        order = np.argsort(t, kind="stable")
        return t[order], c[order]


@dataclass(frozen=True)
class SyntheticPass:
    mode: Literal["bell", "key"]
    a: StationStream
    b: StationStream
    visibility: float
    n_pairs: int
    duration_s: float
    pair_a: I64  #: indices into ``a.t_ps`` of each pair's photon at A
    pair_b: I64  #: indices into ``b.t_ps`` of its partner at B


def make_pass(
    seed: int,
    *,
    mode: Literal["bell", "key"],
    duration_s: float = 30.0,
    pair_rate_hz: float = 200.0,
    singles_hz: float = 20_000.0,
    visibility: float = 0.9,
    offset_ps: float = 400.0,
    random_walk_ps_per_sqrt_s: float = 10.0,
) -> SyntheticPass:
    """Draw a pass starting at UTC :data:`T0_POSIX` (Delingha = A, Lijiang = B)."""
    syn = make_pair_streams(
        seed,
        duration_s=duration_s,
        pair_rate_hz=pair_rate_hz,
        singles_a_hz=singles_hz,
        singles_b_hz=0.8 * singles_hz,
        offset_ps=offset_ps,
        freq=0.0,
        random_walk_ps_per_sqrt_s=random_walk_ps_per_sqrt_s,
        t0_ps=0,
        channels=True,
    )
    assert syn.ch_a is not None
    assert syn.ch_b is not None
    rng = np.random.default_rng(seed + 1)
    ang_a, ang_b = ANGLES[mode]
    arm_a = rng.integers(0, 2, syn.n_pairs)
    arm_b = rng.integers(0, 2, syn.n_pairs)
    e = np.array([[ideal_correlation(ang_a[i], ang_b[j], "phi+") for j in (0, 1)] for i in (0, 1)])
    same = rng.random(syn.n_pairs) < 0.5 * (1.0 + visibility * e[arm_a, arm_b])
    out_a = rng.integers(0, 2, syn.n_pairs)
    out_b = np.where(same, out_a, 1 - out_a)
    code_a, code_b = syn.ch_a.copy(), syn.ch_b.copy()
    code_a[syn.pair_a] = 2 * arm_a + out_a
    code_b[syn.pair_b] = 2 * arm_b + out_b
    sa, sb = site("delingha"), site("lijiang")
    prior = orbit_prior(
        tle(), sa, sb, start_posix=T0_POSIX - 3.0, stop_posix=T0_POSIX + duration_s + 3.0
    )
    posix_b = T0_POSIX + syn.t_b.astype(np.float64) / PS
    t_b = syn.t_b + np.rint(prior.differential_ps(posix_b)).astype(np.int64)
    order = np.argsort(t_b, kind="stable")
    t_b, code_b = t_b[order], code_b[order]
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    seconds = np.arange(-1, int(duration_s) + 2, dtype=np.int64)

    def station(s: Site, t: I64, code: U8, tagger0: int) -> StationStream:
        return StationStream(s, t + tagger0, code.astype(np.uint8), tagger0 + PS * seconds, tagger0)

    return SyntheticPass(
        mode,
        station(sa, syn.t_a, code_a, 7 * PS + 300_000_000),
        station(sb, t_b, code_b, 11 * PS + 650_000_000),
        visibility,
        syn.n_pairs,
        duration_s,
        syn.pair_a,
        inv[syn.pair_b],
    )


def builder(
    st: StationStream, mode: Literal["bell", "key"], params: RevealParams | None = None
) -> FrameBuilder:
    ang = ANGLES[mode][0 if st.site.name == "delingha" else 1]
    return FrameBuilder(
        station=st.site.name,
        run_id="pass-0429",
        mode=mode,
        channels=CHANNELS,
        pps_channel=PPS_CHANNEL,
        source_state="phi+",
        angles_deg=ang,
        params=params or RevealParams(),
        light=LightTime(tle(), st.site),
    )


def frames_of(
    st: StationStream,
    mode: Literal["bell", "key"],
    *,
    block_s: float = 0.1,
    params: RevealParams | None = None,
    fb: FrameBuilder | None = None,
) -> list[LiveFrame]:
    """The station's live frames, fed in tagger blocks of ``block_s`` like the daemon."""
    fb = fb or builder(st, mode, params)
    t, c = st.merged()
    step = round(block_s * PS)
    cuts = np.searchsorted(t, np.arange(int(t[0]), int(t[-1]) + step, step))
    anchor = FrameAnchor(st.tagger0_ps, float(T0_POSIX), 0.0, "pps")
    out: list[LiveFrame] = []
    for lo, hi in itertools.pairwise(cuts):
        out.extend(fb.feed(t[lo:hi], c[lo:hi], anchor))
    out.extend(fb.finish(anchor))
    return out


def station_data(
    st: StationStream, mode: Literal["bell", "key"], manifest: dict[str, Any] | None = None
) -> StationData:
    """The stream as the offline analysis reads a bundle (``manifest``: extra sections)."""
    s = st.site
    ang = ANGLES[mode][0 if s.name == "delingha" else 1]
    return StationData(
        path=Path(f"/data/{s.name}/pass-0429"),
        station=s.name,
        status="complete",
        partial=False,
        pass_id="pass-0429",
        campaign="test",
        site=SiteInfo(
            s.name, s.latitude_deg, s.longitude_deg, s.altitude_m, s.pressure_hpa, s.temperature_c
        ),
        tle=tle(),
        analyzer=AnalyzerInfo(mode, "phi+", ang[0], ang[1], 0, True),
        anchor_tagger_ps=st.tagger0_ps,
        anchor_posix_s=float(T0_POSIX),
        anchor_uncertainty_s=0.0,
        anchor_source="pps",
        pps_channel=PPS_CHANNEL,
        t_ps=st.t_ps,
        code=st.code,
        pps_ps=st.pps_ps,
        channels=(CHANNELS.h, CHANNELS.v, CHANNELS.d, CHANNELS.a),
        aos_posix=None,
        los_posix=None,
        quality={},
        manifest=manifest or {},
    )
