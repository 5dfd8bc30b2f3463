"""Feed-forward for mounts driven by go-to commands (rotctld ``P``, LX200 slews).

A go-to servo plans each command as a move that *comes to rest* at the target. Fed the
satellite's current position every T seconds, such a servo can only move at speed v while
the target lies at least its braking distance v²/(2a) ahead; in steady state it therefore
trails the satellite by about that distance — 1.1° at 2°/s with a = 2°/s², far outside a
0.1° field of view. Commanding each axis ``v·|v|/(2a)`` ahead cancels this lag to first
order (the axis decelerates for one period, then the next command moves the goal on: the
residual is about a·T²/2, 0.01° at T = 0.1 s), and ``lead_s`` adds a plain time lead for
the command latency. Both leads vanish where the axis stops, so the end points (and the
pre-position) are unchanged.

A servo with native program tracking (time-tagged targets) needs neither: set
``[tracking] servo = "program"``.
"""

from __future__ import annotations

import numpy as np

from drivers.datatypes import MountLimits, Trajectory


def braking_lead(traj: Trajectory, limits: MountLimits, *, lead_s: float = 0.0) -> Trajectory:
    """The commanded trajectory for a go-to servo with the axis accelerations of ``limits``.

    Angles in degrees, times in seconds. The result stays inside the axis ranges.
    """
    t = np.asarray(traj.t_s, dtype=np.float64)
    out = []
    for x, axis in ((traj.az_deg, limits.az), (traj.el_deg, limits.el)):
        x = np.asarray(x, dtype=np.float64)
        if len(t) < 2:
            out.append(x.copy())
            continue
        v = np.gradient(x, t)
        ahead = x + v * np.abs(v) / (2.0 * axis.max_accel_deg_s2) + v * lead_s
        out.append(np.clip(ahead, axis.min_deg, axis.max_deg))
    return Trajectory(t, out[0], out[1])
