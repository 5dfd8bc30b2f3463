"""The move skeleton every mount and rotator driver runs its motions through.

The policy is ophyd-async's movable logic (anchors.md §1, ``core/_movable.py``: hooks
``check_move``, ``calculate_timeout``, ``move``, ``stop``) and DESIGN.md's rules:

1. **check before any byte**: the limit check runs first; a target outside the limits
   raises (LimitViolation) with nothing sent;
2. **timeout from the motion**: the bound is computed by the caller from distance and speed
   plus an overhead (:func:`motion_timeout_s`), possibly after reading the start position;
   the whole move is bounded by it (a wall backstop, converted with the clock);
3. **stop in finally**: when the move did not complete (cancelled, timed out, failed) while
   the device may be moving, the axes are stopped before the exception propagates; a
   failing stop is logged, never raised over the original error.

Drivers mark the moment the device may be moving with :meth:`Motion.started` (just before the
move command goes out) and :meth:`Motion.at_rest` when a failure proves nothing moves (the
command was refused, the controller reports a non-moving state), so a refused command is
not followed by a stop it does not need.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from drivers.clock import Clock
from drivers.errors import DeviceError, DeviceTimeout

log = logging.getLogger(__name__)

T = TypeVar("T")


def motion_timeout_s(
    distance_deg: float, speed_deg_s: float, *, margin: float = 1.0, overhead_s: float = 0.0
) -> float:
    """Clock seconds allowed for a move: ``overhead + margin * |distance| / speed``."""
    if not speed_deg_s > 0:
        raise ValueError(f"speed must be > 0 deg/s, got {speed_deg_s}")
    return overhead_s + margin * abs(distance_deg) / speed_deg_s


@dataclass
class Motion:
    """What the skeleton knows about one move in progress.

    Attributes:
        bound_s: the move's bound in clock seconds (set before ``move`` runs).
        moving: the device may be moving (a stop is needed if the move does not complete).
        completed: the move reached its target.
    """

    bound_s: float = 0.0
    moving: bool = False
    completed: bool = False

    def started(self) -> None:
        """The move command is about to go out: from now on a failure needs a stop."""
        self.moving = True

    def at_rest(self) -> None:
        """The device is known not to move (command refused, motion ended in a fault)."""
        self.moving = False


async def guarded_move(
    what: str,
    move: Callable[[Motion], Awaitable[T]],
    *,
    timeout_s: float | Callable[[], Awaitable[float]],
    stop: Callable[[], Awaitable[None]] | None,
    clock: Clock,
    device: str,
    check: Callable[[], object] | None = None,
    grace_wall_s: float | None = 0.0,
    hint: str = "check the configured speed against the device, or an obstruction",
) -> T:
    """Run one move: check, bound, move, and stop in ``finally`` unless it completed.

    Args:
        what: the move in messages (``"slew"``, ``"park"``, ``"move 'PA90'"``).
        move: starts the motion and waits until it completes; receives the :class:`Motion`
            (``bound_s`` is set) and calls ``motion.started()`` just before the command.
        timeout_s: the bound in clock seconds, or an async function computing it after the
            check (e.g. from a position read).
        stop: stops the device; None when ``move`` stops it itself (a protocol whose only
            reply arrives at the end of the move must stop inside its exchange).
        clock: converts the bound to wall seconds for the backstop.
        device: the device URL (messages).
        check: the limit check; raises before anything is sent.
        grace_wall_s: wall seconds added to the backstop (I/O latency on top of the motion;
            make it larger than the move's own finer bound so that one reports first).
            None: no backstop, ``move`` enforces ``motion.bound_s`` itself (e.g. a single
            exchange whose reply read is bounded by it, and which may wait for the lock).
        hint: what to do when the backstop fires.

    Raises:
        LimitViolation: from ``check`` (nothing sent).
        DeviceTimeout: the move did not complete within the bound.
        Whatever ``move`` raises; the device was stopped first if it may have been moving.
    """
    if check is not None:
        check()
    motion = Motion()
    motion.bound_s = timeout_s if isinstance(timeout_s, float | int) else await timeout_s()
    backstop = None if grace_wall_s is None else clock.to_wall(motion.bound_s) + grace_wall_s
    try:
        async with asyncio.timeout(backstop):
            result = await move(motion)
        motion.completed = True
        return result
    except TimeoutError:
        raise DeviceTimeout(
            f"{what} did not complete within {motion.bound_s:.1f} s (clock)",
            device=device,
            hint=hint,
        ) from None
    finally:
        if not motion.completed and motion.moving and stop is not None:
            await stop_quietly(stop, f"{what} did not complete", device=device)


async def stop_quietly(stop: Callable[[], Awaitable[None]], why: str, *, device: str) -> None:
    """Stop after a failed or cancelled move; log (not raise) a failing stop."""
    log.info("%s: %s; stopping", device, why)
    try:
        await stop()
    except (DeviceError, OSError) as exc:
        log.warning("%s: stop after an interrupted move failed: %s", device, exc)
