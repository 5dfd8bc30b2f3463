"""The emulator's physics world (truth): orbit, link, entangled pairs, detectors, clocks.

Computed independently of ``station`` (skyfield at full precision, own frame and link
models). Public API: :class:`World`, :class:`WorldConfig`, :class:`StationConfig` (the
world-side station), :func:`load_world_config`.
"""

from sim_hardware.world.config import StationConfig, WorldConfig, load_world_config
from sim_hardware.world.world import World

__all__ = ["StationConfig", "World", "WorldConfig", "load_world_config"]
