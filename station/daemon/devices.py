"""The station's devices, each opened by URL and kept alive by a Supervisor.

The mount is required (no mount, no station); the compensation waveplate and the time
tagger are optional: without a waveplate a pass is tracked uncompensated, without a tagger
nothing is recorded (both are announced as alarms, not hidden). Every call to a device goes
through its :class:`~drivers.supervision.Supervisor`, so a dropped link is reconnected with
backoff and its state is visible (``state/devices`` on MQTT) instead of hanging the daemon.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.clock import Clock
from drivers.datatypes import AltAz
from drivers.errors import ConfigError, DeviceError, LimitViolation, NotConnected
from drivers.interfaces import Mount, Rotator, TimeTagger
from drivers.polarization.analyzer import Analyzer
from drivers.registry import open_device, parse_device_url
from drivers.supervision import LinkState, Supervisor, SupervisorStatus
from station.config import StationConfig
from station.tracking.safety import SafetyGate

log = logging.getLogger(__name__)

#: device role -> the driver kind its URL must name
ROLES = {"mount": "mount", "hwp": "rotator", "timetagger": "timetagger"}

#: deg: a mount this close to its park position is parked; a park then moves nothing
PARKED_DEG = 0.1

LinkListener = Callable[[str, SupervisorStatus], None]
#: (role, error) when an operation fails, (role, None) when one succeeds after failures
ErrorListener = Callable[[str, DeviceError | None], None]


def gated_legs(gate: SafetyGate, here: AltAz, target: AltAz, t_s: float) -> list[AltAz]:
    """Waypoints of a gate-approved slew: straight, or a dog-leg one axis at a time.

    The same rule as a pass's slews (``PassRun.slew_legs``): azimuth first at the current
    elevation (going down), or elevation first (going up to park); if neither dog-leg
    passes the gate the straight slew's :class:`LimitViolation` is raised (with its reason).
    """
    try:
        gate.check_slew(here, target, t_s)
        return [target]
    except LimitViolation as straight:
        for corner in (AltAz(target.az_deg, here.el_deg), AltAz(here.az_deg, target.el_deg)):
            try:
                gate.check_target(corner, t_s)
                gate.check_slew(here, corner, t_s)
                gate.check_slew(corner, target, t_s)
            except LimitViolation:
                continue
            return [corner, target]
        raise straight from None


@dataclass
class StationDevices:
    """Supervised drivers of one station (``hwp``/``tagger``/``analyzer`` may be None)."""

    mount: Supervisor[Mount]
    hwp: Supervisor[Rotator] | None
    analyzer: Analyzer | None
    tagger: Supervisor[TimeTagger] | None

    @classmethod
    def open(
        cls,
        cfg: StationConfig,
        clock: Clock,
        listener: LinkListener | None = None,
        errors: ErrorListener | None = None,
    ) -> StationDevices:
        """Create (not connect) every configured device; URL errors name the config key.

        ``listener`` hears link-state changes; ``errors`` hears each failed operation as it
        fails (before the supervisor's reconnect episode) and the first success after.
        """
        d = cfg.devices
        urls = {"mount": d.mount, "hwp": d.hwp, "timetagger": d.timetagger}
        if urls["mount"] is None:
            raise ConfigError(
                "the daemon needs a mount URL", source=cfg.source, key="devices.mount"
            )
        drivers: dict[str, Any] = {}
        for role, url in urls.items():
            if url is None:
                continue
            parsed = parse_device_url(url)
            if parsed.kind != ROLES[role]:
                raise ConfigError(
                    f"{url!r} is a {parsed.kind} URL; expected a {ROLES[role]}",
                    source=cfg.source,
                    key=f"devices.{role}",
                )
            drivers[role] = open_device(url, clock)

        watchdog = cfg.daemon.watchdog

        def supervise(role: str) -> Supervisor[Any] | None:
            if role not in drivers:
                return None
            sup: Supervisor[Any] = Supervisor(
                drivers[role],
                clock,
                degraded_after=watchdog.degraded_after,
                backoff_initial_s=0.5,
                backoff_max_s=10.0,
                max_attempts=5,
            )
            if listener is not None:
                notify = listener

                def forward(status: SupervisorStatus, role: str = role) -> None:
                    notify(role, status)

                sup.add_listener(forward)
            if errors is not None:
                tell = errors

                def forward_error(error: DeviceError | None, role: str = role) -> None:
                    tell(role, error)

                sup.add_error_listener(forward_error)
            return sup

        mount = supervise("mount")
        assert mount is not None
        hwp = supervise("hwp")
        analyzer = None
        if hwp is not None:
            a = cfg.daemon.analyzer
            analyzer = Analyzer(
                drivers["hwp"],
                a.channels,
                offset_deg=cfg.polarization.hwp_offset_deg,
                mode=a.mode,
                bell_offset_deg=a.bell_offset_deg,
            )
        return cls(mount, hwp, analyzer, supervise("timetagger"))

    def supervisors(self) -> dict[str, Supervisor[Any]]:
        out: dict[str, Supervisor[Any]] = {"mount": self.mount}
        if self.hwp is not None:
            out["hwp"] = self.hwp
        if self.tagger is not None:
            out["timetagger"] = self.tagger
        return out

    async def connect(self) -> dict[str, str]:
        """Connect every device concurrently; returns role -> error for those that failed.

        The mount failing is reported like the others; the controller decides (FAULT).
        """
        roles = list(self.supervisors().items())
        results = await asyncio.gather(*(sup.start() for _, sup in roles), return_exceptions=True)
        errors: dict[str, str] = {}
        for (role, _), result in zip(roles, results, strict=True):
            if isinstance(result, DeviceError | OSError):
                errors[role] = str(result)
            elif isinstance(result, BaseException):
                raise result
        return errors

    async def position(self) -> AltAz:
        """The mount's actual position (a read: retried once after a reconnect)."""
        return await self.mount.call(lambda m: m.position(), retries=1)

    async def move_to(self, gate: SafetyGate, target: AltAz, t_s: float) -> None:
        """Slew to ``target`` along a gate-approved path (straight or dog-leg)."""
        gate.check_target(target, t_s)
        for leg in gated_legs(gate, await self.position(), target, t_s):
            await self.mount.call(lambda m, leg=leg: m.slew_to(leg))  # type: ignore[misc]

    async def park(
        self, gate: SafetyGate, park: AltAz, t_s: float, *, judge_target: bool = True
    ) -> bool:
        """Park the mount at ``park`` (its configured park position) through the gate.

        Returns False when the mount was already parked (within :data:`PARKED_DEG`): it is
        not moved and no path is judged (there is none); only the mount's own park command
        is sent, which moves nothing and holds it there (tracking off). Otherwise the path is
        checked like any slew: a refused straight path is flown as a gated dog-leg, the last
        leg by the mount's own park command, and a path the gate refuses raises
        :class:`LimitViolation` before anything moves.

        ``judge_target`` (the operator's ``park`` and ``safe``): the park position itself is
        checked first (horizon, elevation limit, Sun, Moon), parked or not, so an operator
        learns that the park is inside the Sun's exclusion. A pass's stow passes False: a
        pass refused before its first slew must leave a parked mount where it is rather than
        fail its stow; the Sun watch (sun_watch.py) reports a park the Sun is on.
        """
        if judge_target:
            gate.check_target(park, t_s)
        here = await self.position()
        if here.separation_deg(park) <= PARKED_DEG:
            await self.mount.call(lambda m: m.park(), retries=1)
            return False
        legs = gated_legs(gate, here, park, t_s)
        for leg in legs[:-1]:
            await self.mount.call(lambda m, leg=leg: m.slew_to(leg))  # type: ignore[misc]
        await self.mount.call(lambda m: m.park(), retries=1)
        return True

    def usable(self, role: str) -> bool:
        """Whether ``role`` is configured and its link is not DEGRADED/FAILED/DISCONNECTED."""
        sup = self.supervisors().get(role)
        return sup is not None and sup.state in (LinkState.CONNECTED, LinkState.RECONNECTING)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per device: URL, link state, last error, counters (``state/devices``)."""
        return {
            role: {
                "url": sup.device.url,
                "link": sup.state.value,
                "last_error": sup.status.last_error,
                "consecutive_errors": sup.status.consecutive_errors,
                "reconnects": sup.status.reconnects,
            }
            for role, sup in self.supervisors().items()
        }

    async def close(self) -> None:
        for role, sup in self.supervisors().items():
            try:
                await asyncio.wait_for(sup.close(), timeout=10.0)
            except (TimeoutError, DeviceError, NotConnected) as exc:
                log.warning("closing %s: %s", role, exc)
