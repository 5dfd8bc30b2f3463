"""Sun watch: an idle mount is told about the Sun before the Sun reaches it.

Policy (this docstring is the specification; tests/unit/station/daemon/test_sun_watch.py and
tests/integration/station/test_day_pass_refusal.py check it):

The safety gate (station/tracking/safety.py) keeps every *commanded* motion out of the Sun's
exclusion zone. It cannot keep the Sun from moving onto a telescope that stands still: a
zenith park at a low-latitude site (Lijiang, 26.7° N: the late-April noon Sun 78° high, 12°
from the zenith; Delingha, 37.4° N: 67° high, 23° from it, inside the default 30° radius),
or wherever an operator's ``goto`` left it. socs' sun-avoidance (anchors.md) keeps a watch
on the Sun whatever the platform is doing; the daemon does too:

- While no pass runs, every :data:`PERIOD_S` clock seconds (and at once when a pass ends)
  the daemon reads where the mount points and asks the gate's Sun rule (rule 3: the sky
  direction at least ``sun_radius_deg`` plus the Sun model's error from the Sun) about that
  direction from now to :data:`LOOKAHEAD_S` ahead, sampled every :data:`STEP_S` (the Sun
  moves 0.25° a minute).
- Inside the zone now: a ``sun_exposure`` alarm, level ``error``, with the Sun's distance
  and the radius: close the cover or the dome.
- Not inside, but will be within :data:`LOOKAHEAD_S`: a ``sun_exposure`` alarm, level
  ``warning``, with the time left.
- One alarm per change of that state (clear → approaching → inside, and back): a standing
  condition is not repeated every period. Back to clear (outside the zone and not entering
  it within the look-ahead) is a level ``info`` alarm.
- The daemon does not move the mount. The gate refuses every path that starts inside the
  zone (rule 7), an escape path (socs: one along which the Sun distance only grows) is not
  planned, and a dome or cover, which the station config does not model, is the real
  protection. A mount that cannot be read is skipped: its link's own alarms cover it.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

import numpy as np

from drivers.datatypes import AltAz, Trajectory
from station.tracking.safety import SafetyGate, sky_direction
from station.tracking.sunmoon import separation_deg

PERIOD_S = 30.0  #: clock s between looks at an idle mount
LOOKAHEAD_S = 900.0  #: clock s ahead a Sun about to reach the mount is announced
STEP_S = 30.0  #: clock s between the Sun positions of the look-ahead (0.125° of Sun motion)
KIND = "sun_exposure"

#: (kind, message, level) -> publish an ``event/alarm``
Publish = Callable[[str, str, str], Awaitable[None]]


class Exposure(enum.Enum):
    """Where an idle mount's direction stands against the Sun's exclusion zone."""

    CLEAR = "clear"
    APPROACHING = "approaching"  #: outside now, inside within the look-ahead
    INSIDE = "inside"


class SunWatch:
    """The state of one station's idle mount against the Sun; alarms on each change."""

    def __init__(self, gate: SafetyGate, publish: Publish) -> None:
        self.gate = gate
        self._publish = publish
        self.state = Exposure.CLEAR

    def sun_distance_deg(self, here: AltAz, t_s: float) -> float:
        """Great-circle angle (deg) from where the mount points to the Sun at ``t_s``."""
        az, el = sky_direction(np.array([here.az_deg]), np.array([here.el_deg]))
        s_az, s_el = self.gate.sky.sun(np.array([t_s]))
        return float(separation_deg(az, el, s_az, s_el)[0])

    def assess(self, here: AltAz, now_s: float) -> tuple[Exposure, float | None]:
        """The exposure of axis position ``here`` and the clock s until it is inside."""
        t = now_s + np.arange(0.0, LOOKAHEAD_S + STEP_S / 2, STEP_S)
        standing = Trajectory(t, np.full(len(t), here.az_deg), np.full(len(t), here.el_deg))
        until = self.gate.sun_time(standing, now_s)
        if until is None:
            return Exposure.CLEAR, None
        return (Exposure.INSIDE if until == 0.0 else Exposure.APPROACHING), until

    async def check(self, here: AltAz, now_s: float) -> Exposure:
        """Assess ``here`` at ``now_s``; publish an alarm when the exposure changed."""
        state, until = self.assess(here, now_s)
        if state is self.state:
            return state
        self.state = state
        radius = self.gate.policy.sun_radius_deg
        where = (
            f"the idle mount (az {here.az_deg:.1f}, el {here.el_deg:.1f}) is "
            f"{self.sun_distance_deg(here, now_s):.1f} deg from the Sun (exclusion {radius:g} deg)"
        )
        if state is Exposure.INSIDE:
            message, level = f"{where}: close the cover or dome; it is not moved", "error"
        elif state is Exposure.APPROACHING:
            assert until is not None
            message = f"{where}; the Sun reaches the exclusion in {until / 60.0:.0f} min"
            level = "warning"
        else:
            message, level = f"clear: {where}", "info"
        await self._publish(KIND, message, level)
        return state
