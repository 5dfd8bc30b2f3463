"""Behaviour model of a time tagger: channel settings, acquisition state, counters, event slices.

No protocol inside: the IDQ front-end (:mod:`sim_hardware.servers.idq`) turns SCPI into calls
here and ships the slices this model cuts. Events come from an :class:`EventSource` (the
physics world in the rig, a :class:`PoissonSource` in tests) as int64 picoseconds on the
tagger's own timescale plus a channel number (1-based, as the ID1000's inputs are numbered).

What the model does to the source's events, per clock-time slice ``[t0, t1)``:

1. keeps events of enabled channels whose discriminator would fire: detector pulses are
   negative NIM-like pulses of ``pulse_amplitude_v`` (-0.8 V); a channel counts when its
   threshold lies between that amplitude and 0 V (a threshold >= 0 or below the pulse height
   never triggers, as on a real discriminator);
2. drops the channel of an active ``latch`` fault (detector latch-up: the channel goes silent);
3. adds each channel's delay (ps) and every ``clock_jump`` fault that started before ``t0``
   (``params["jump_ps"]``), and re-sorts when delays changed the order (stable, so equal
   times keep the source order).

Faults are evaluated per slice (granularity :data:`DEFAULT_SLICE_S` of clock time).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from drivers.clock import Clock
from drivers.datatypes import ChannelConfig
from sim_hardware.faults import FaultInjector, FaultKind

log = logging.getLogger(__name__)

DEFAULT_SLICE_S = 0.02  #: clock seconds of events per generated slice
PS_PER_S = 10**12

Times = npt.NDArray[np.int64]
Channels = npt.NDArray[np.uint8]


class EventSource(Protocol):
    """Where detections come from: the world, or a synthetic source in tests."""

    def events(self, t0: float, t1: float) -> tuple[Times, Channels]:
        """Detections in clock interval [t0, t1): (t_ps int64 sorted, channel uint8, 1-based)."""
        ...


class PoissonSource:
    """Independent Poisson streams per channel (counts/s), as one merged process.

    A merged Poisson process of total rate R with each event's channel drawn with probability
    r_i / R is the same as independent streams of rates r_i; generating it with cumulative
    exponential gaps gives sorted times without a sort (O(n)).

    Args:
        rates: channel (1-based) -> mean rate (events per clock second).
        origin: clock time (POSIX s) of t_ps = 0.
        seed: RNG seed (deterministic for one sequence of calls).
    """

    def __init__(self, rates: dict[int, float], *, origin: float, seed: int = 0) -> None:
        if any(r < 0 for r in rates.values()):
            raise ValueError(f"rates must be >= 0, got {rates}")
        self.rates = dict(rates)
        self.origin = origin
        self._rng = np.random.default_rng(seed)
        self._chans = np.array(sorted(self.rates), dtype=np.uint8)
        total = sum(self.rates.values())
        self._total = total
        self._p = np.array([self.rates[int(c)] / total for c in self._chans]) if total else None

    def events(self, t0: float, t1: float) -> tuple[Times, Channels]:
        span = t1 - t0
        if span <= 0 or self._total <= 0 or self._p is None:
            return np.empty(0, np.int64), np.empty(0, np.uint8)
        n = int(self._rng.poisson(self._total * span))
        # Uniform order statistics via normalised cumulative exponential gaps (sorted, O(n)).
        gaps = self._rng.standard_exponential(n + 1)
        frac = np.cumsum(gaps)[:-1] / gaps.sum()
        base_ps = round((t0 - self.origin) * PS_PER_S)
        t_ps = (frac * (span * PS_PER_S)).astype(np.int64) + base_ps
        if len(self._chans) == 1:
            ch = np.full(n, self._chans[0], dtype=np.uint8)
        else:
            idx = np.searchsorted(np.cumsum(self._p), self._rng.random(n), side="right")
            ch = self._chans[np.minimum(idx, len(self._chans) - 1)]
        return t_ps, ch


@dataclass(frozen=True, slots=True)
class Slice:
    """Events of one clock interval [t0, t1) after the tagger's channel processing."""

    t0: float
    t1: float
    t_ps: Times
    channel: Channels


class TimeTaggerModel:
    """Channel configuration, acquisition state and event processing of one time tagger.

    Args:
        clock: time source.
        source: the detections.
        n_channels: number of inputs, numbered 1..n_channels.
        faults: consulted for ``latch`` and ``clock_jump``.
        pulse_amplitude_v: detector pulse height (V, negative for NIM).
        resolution_ps: time bin (ps); what ``DEVI:RES:BWID?`` reports.
        name: for log messages.
    """

    def __init__(
        self,
        clock: Clock,
        source: EventSource,
        *,
        n_channels: int = 4,
        faults: FaultInjector | None = None,
        pulse_amplitude_v: float = -0.8,
        resolution_ps: int = 1,
        name: str = "timetagger",
    ) -> None:
        if not 1 <= n_channels <= 64:
            raise ValueError(f"n_channels must be in 1..64, got {n_channels}")
        self.clock = clock
        self.source = source
        self.n_channels = n_channels
        self.faults = faults
        self.pulse_amplitude_v = pulse_amplitude_v
        self.resolution_ps = resolution_ps
        self.name = name
        self.channels: dict[int, ChannelConfig] = {
            c: ChannelConfig() for c in range(1, n_channels + 1)
        }
        self.raw_send: dict[int, bool] = dict.fromkeys(self.channels, False)
        self.recording = False

    # ------------------------------------------------------------------ settings

    def check_channel(self, channel: int) -> None:
        if channel not in self.channels:
            raise ValueError(f"channel {channel} does not exist; inputs are 1..{self.n_channels}")

    def configure(self, channel: int, **changes: object) -> ChannelConfig:
        """Change ``enabled``, ``threshold_v`` and/or ``delay_ps`` of one channel."""
        self.check_channel(channel)
        cfg = replace(self.channels[channel], **changes)  # type: ignore[arg-type]
        self.channels[channel] = cfg
        log.debug("%s: channel %d -> %s", self.name, channel, cfg)
        return cfg

    def fires(self, channel: int) -> bool:
        """Whether the channel is enabled and its discriminator would trigger on a pulse."""
        cfg = self.channels[channel]
        return cfg.enabled and self.pulse_amplitude_v <= cfg.threshold_v < 0.0

    # ------------------------------------------------------------------ events

    def _latched(self, t: float) -> set[int]:
        if self.faults is None:
            return set()
        return {
            int(f.params.get("channel", 0))
            for f in self.faults.scheduled()
            if f.kind is FaultKind.LATCH and f.active_at(t)
        }

    def _clock_jump_ps(self, t: float) -> int:
        if self.faults is None:
            return 0
        return sum(
            int(f.params.get("jump_ps", 0))
            for f in self.faults.scheduled()
            if f.kind is FaultKind.CLOCK_JUMP and f.start <= t
        )

    def detect(self, t0: float, t1: float, channels: Iterable[int] | None = None) -> Slice:
        """Process the source's events of [t0, t1) for ``channels`` (default: all)."""
        wanted = set(self.channels) if channels is None else set(channels)
        live = sorted(c for c in wanted if c in self.channels and self.fires(c))
        live = [c for c in live if c not in self._latched(t0)]
        t_ps, ch = self.source.events(t0, t1)
        keep = np.zeros(256, dtype=bool)
        keep[live] = True
        mask = keep[ch]
        if not bool(mask.all()):
            t_ps, ch = t_ps[mask], ch[mask]
        delays = np.zeros(256, dtype=np.int64)
        for c in live:
            delays[c] = self.channels[c].delay_ps
        shift = self._clock_jump_ps(t0)
        if bool(delays.any()):
            t_ps = t_ps + delays[ch] + shift
            order = np.argsort(t_ps, kind="stable")
            t_ps, ch = t_ps[order], ch[order]
        elif shift:
            t_ps = t_ps + shift
        return Slice(t0, t1, t_ps.astype(np.int64, copy=False), ch.astype(np.uint8, copy=False))

    def counter(self, channel: int, integration_s: float, *, sample_s: float = 0.01) -> int:
        """Counter value of ``channel`` over the last ``integration_s`` clock seconds.

        Counts a window of at most ``sample_s`` ending now and scales it to the integration
        time, so a query costs at most ``sample_s`` of event generation even at high rates.
        10 ms by default: the station probes the counters every 5 clock s, and generating
        100 ms of the world's events per query stalled the rig (and its mounts) at 20x warp.
        """
        self.check_channel(channel)
        now = self.clock.now()
        window = min(integration_s, sample_s)
        if window <= 0:
            return 0
        sl = self.detect(now - window, now, [channel])
        return round(len(sl.t_ps) * integration_s / window)


class SliceClock:
    """Cuts consecutive clock slices [t, t + slice_s) once the clock has passed their end.

    Back-pressure lives here: the consumer asks for the next slice only after it has shipped
    the previous one, so a stalled consumer makes generation fall behind the clock; when it
    resumes, the backlog is generated slice by slice, in order, without losing events.
    """

    def __init__(self, model: TimeTaggerModel, *, slice_s: float = DEFAULT_SLICE_S) -> None:
        if slice_s <= 0:
            raise ValueError(f"slice_s must be > 0, got {slice_s}")
        self.model = model
        self.slice_s = slice_s
        self.t = model.clock.now()

    async def next(self, channels: Iterable[int] | None = None) -> Slice:
        """The next slice (waits on the clock until its end has passed)."""
        t0, t1 = self.t, self.t + self.slice_s
        await self.model.clock.sleep_until(t1)
        self.t = t1
        if not self.model.recording:
            return Slice(t0, t1, np.empty(0, np.int64), np.empty(0, np.uint8))
        chans = [c for c in (channels or self.model.channels) if self.model.raw_send.get(c)]
        if not chans:
            return Slice(t0, t1, np.empty(0, np.int64), np.empty(0, np.uint8))
        return self.model.detect(t0, t1, chans)
