"""The emulated plant for N stations: world + mount, waveplate and time-tagger emulators.

A rig config (``configs/rig/*.toml``) has:

- ``[rig]``: ``seed``, ``rate`` (warp rate when no ``--clock`` is given), ``slice_s``.
- the world (optional): ``[world]``, ``[satellite]``, ``[source]`` and one ``[[stations]]``
  table per station (:mod:`sim_hardware.world.config`). The world then generates each
  station's detections from the **actual** mount pointing (:meth:`MountModel.position_at`
  the middle of each event slice) and HWP angle (:meth:`RotatorModel.angle`). Without a
  world, each tagger emits ``poisson_rates`` (dark counts only).
- ``[devices.<station>.mount]``, ``.hwp`` (ELL14 on a pty), optional ``.smc100`` and
  ``.timetagger`` (IDQ on zmq): per-device settings, ports 0 = any free port. With a world,
  the device stations must be the world's stations, and a tagger needs at least as many
  inputs as the highest channel the world uses (h/v/d/a and pps, e.g. 8). The tagger serves
  the documented IDQ protocol only unless ``extensions = true`` (qgs additions, opt-in).
- ``[[faults]]``: ``device = "<station>.<mount|hwp|smc100|timetagger>"``, ``kind`` (a
  :class:`FaultKind` value), ``at_s`` (clock seconds after the clock epoch), optional
  ``duration_s`` and parameters ``delay_s``, ``channel``, ``jump_ps``, ``code``.

:meth:`Rig.urls` gives the device URLs per station, the JSON the station uses to find the
plant; ``"_clock"`` carries the shared :class:`~drivers.clock.WarpSpec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from drivers.clock import WarpClock
from drivers.config import Table
from drivers.datatypes import AltAz, AxisLimits, MountLimits
from drivers.errors import ConfigError
from sim_hardware.devices.mount import MountModel
from sim_hardware.devices.rotator import RotatorModel
from sim_hardware.devices.timetagger import (
    Channels,
    EventSource,
    PoissonSource,
    Times,
    TimeTaggerModel,
)
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.alpaca import AlpacaServer, serve_alpaca
from sim_hardware.servers.elliptec import ElliptecBus, ElliptecDevice
from sim_hardware.servers.idq import IdqServer
from sim_hardware.servers.lx200 import Lx200Server, serve_lx200
from sim_hardware.servers.pty import PtyServer
from sim_hardware.servers.rotctld import RotctldServer, serve_rotctld
from sim_hardware.servers.smc100 import SMC100Controller, SMC100Line
from sim_hardware.world import World, load_world_config

log = logging.getLogger(__name__)

DEVICES = ("mount", "hwp", "smc100", "timetagger")
#: wire front-ends of the emulated mount: rotctld (TCP), LX200 (pty), ASCOM Alpaca (HTTP)
MOUNT_PROTOCOLS = ("rotctld", "lx200", "alpaca")
PREFETCH_S = 180.0  #: world geometry kept computed this far ahead of the clock (clock s)
PREFETCH_PERIOD_S = 20.0  #: how often the prefetcher looks ahead (clock s)
FAULT_PARAMS = ("delay_s", "channel", "jump_ps", "code")
#: The rig clock must stay this close to the world's tagger epoch (int64 ps: ±106 days).
MAX_EPOCH_DISTANCE_DAYS = 100.0


class Pointing(Protocol):
    """Where a mount pointed at a (recent past) clock time: :meth:`MountModel.position_at`."""

    def position_at(self, t: float) -> AltAz: ...


class Waveplate(Protocol):
    """A waveplate's true angle now: :meth:`RotatorModel.angle`."""

    def angle(self) -> float: ...


class WorldSource:
    """An :class:`EventSource` reading the world with the station's actual device state.

    The pointing is the mount's true position (axis position plus servo jitter) in the
    middle of the slice, wherever the mount has gone since (slices are cut after their end,
    and later still under back-pressure). The HWP angle is its reading at generation time
    (the plate turns at most ~0.5 deg/s while compensating, sin² of that lag is negligible).
    """

    def __init__(self, world: World, station: str, mount: Pointing, hwp: Waveplate | None) -> None:
        self.world, self.station, self.mount, self.hwp = world, station, mount, hwp

    def events(self, t0: float, t1: float) -> tuple[Times, Channels]:
        hwp = self.hwp.angle() if self.hwp is not None else 0.0
        pointing = self.mount.position_at(0.5 * (t0 + t1))
        return self.world.detections(self.station, t0, t1, pointing=pointing, hwp_deg=hwp)


@dataclass
class StationPlant:
    """The emulators of one station and their URLs."""

    name: str
    faults: dict[str, FaultInjector]
    mount: MountModel
    hwp: RotatorModel | None = None
    tagger: TimeTaggerModel | None = None
    urls: dict[str, str] = field(default_factory=dict)
    closers: list[Any] = field(default_factory=list)


class Rig:
    """Builds, starts and stops every emulator of a rig config.

    Args:
        config: the rig TOML (root table).
        clock: the shared warped clock.
        seed: overrides ``rig.seed`` when given.
    """

    def __init__(self, config: Table, clock: WarpClock, *, seed: int | None = None) -> None:
        self.config = config
        self.clock = clock
        rig = config.table("rig", required=False)
        self.seed = rig.integer("seed", 0) if seed is None else seed
        rig.number("rate", 1.0, min=1e-6)  # read by __main__ when no --clock is given
        self.slice_s = rig.number("slice_s", 0.02, min=1e-4, max=1.0)
        rig.finish()
        self.world = self._load_world()
        self.stations: list[StationPlant] = []
        self._prefetch: asyncio.Task[None] | None = None

    def _load_world(self) -> World | None:
        if "world" not in self.config:
            return None
        return World(load_world_config(self.config), seed=self.seed)

    def _check_world(self, names: list[str]) -> None:
        """With a world: same stations, and the clock near the tagger epoch."""
        world = self.world
        if world is None:
            return
        if sorted(names) != sorted(world.station_names):
            raise self.config.error(
                "devices",
                f"device stations {sorted(names)} must be the world's [[stations]] "
                f"{sorted(world.station_names)}",
            )
        epoch = world.config.tagger_epoch
        days = abs(self.clock.now() - epoch) / 86400.0
        if days > MAX_EPOCH_DISTANCE_DAYS:
            now = datetime.fromtimestamp(self.clock.now(), UTC).isoformat(timespec="seconds")
            raise ConfigError(
                f"the rig clock is at {now}, {days:.0f} days from the tagger epoch; event "
                f"times (int64 ps) cover ±106 days: start the clock near the world "
                f"(--start, --clock or [world] start_utc) or move tagger_epoch_utc",
                source=self.config.source,
                key="world.tagger_epoch_utc",
            )

    async def start(self) -> None:
        """Start every station's emulators (on failure, stop what was started)."""
        devices = self.config.table("devices")
        names = list(devices.keys())
        if not names:
            raise self.config.error("devices", "no stations configured ([devices.<station>.*])")
        self._check_world(names)
        try:
            for i, name in enumerate(names):
                await self._start_station(name, devices.table(name), i)
            devices.finish()
            self._schedule_faults()
            if self.world is not None:
                await asyncio.to_thread(
                    self.world.prefetch_geometry, self.clock.now(), self.clock.now() + PREFETCH_S
                )
                self._prefetch = asyncio.get_running_loop().create_task(
                    self._prefetch_geometry(self.world), name="geometry-prefetch"
                )
        except BaseException:
            await self.close()
            raise

    async def _start_station(self, name: str, cfg: Table, index: int) -> StationPlant:
        seed = self.seed * 1000 + index
        faults = {d: FaultInjector(self.clock, f"{name}.{d}") for d in DEVICES}
        m = cfg.table("mount")
        el_min = m.number("el_min_deg", 0.0, min=-10, max=90)
        limits = MountLimits(
            AxisLimits(
                m.number("az_min_deg", -270.0),
                m.number("az_max_deg", 270.0),
                m.number("az_speed_deg_s", 6.0, min=1e-3),
                m.number("az_accel_deg_s2", 3.0, min=1e-3),
            ),
            AxisLimits(
                el_min,
                m.number("el_max_deg", 90.0, max=180.0),
                m.number("el_speed_deg_s", 6.0, min=1e-3),
                m.number("el_accel_deg_s2", 3.0, min=1e-3),
            ),
        )
        protocols = m.raw("protocols", ["rotctld"])
        if not isinstance(protocols, list) or not set(protocols) <= set(MOUNT_PROTOCOLS):
            raise m.error(
                "protocols", f"expected a subset of {list(MOUNT_PROTOCOLS)}, got {protocols}"
            )
        try:
            mount = MountModel(
                self.clock,
                limits,
                park=AltAz(m.number("park_az_deg", 0.0), m.number("park_el_deg", 90.0)),
                tracking_jitter_deg=m.number("tracking_jitter_deg", 0.0, min=0.0),
                faults=faults["mount"],
                seed=seed,
                name=f"{name}.mount",
            )
        except ValueError as exc:
            raise m.error("park_el_deg", str(exc)) from None
        rotctld_port = m.integer("rotctld_port", 0, min=0, max=65535)
        m.finish()
        plant = StationPlant(name, faults, mount)
        self.stations.append(plant)  # registered first: close() stops a half-started station
        if "rotctld" in protocols:
            rot: RotctldServer = await serve_rotctld(mount, port=rotctld_port)
            plant.closers.append(rot)
            plant.urls["mount"] = rot.url
        if "lx200" in protocols:
            lx: Lx200Server = await serve_lx200(mount)
            plant.closers.append(lx)
            plant.urls["mount" if "mount" not in plant.urls else "mount_lx200"] = lx.url
        if "alpaca" in protocols:
            alp: AlpacaServer = await serve_alpaca(mount)
            plant.closers.append(alp)
            plant.urls["mount" if "mount" not in plant.urls else "mount_alpaca"] = alp.url
        if "hwp" in cfg:
            await self._start_hwp(plant, cfg.table("hwp"), seed)
        if "smc100" in cfg:
            await self._start_smc100(plant, cfg.table("smc100"), seed)
        if "timetagger" in cfg:
            await self._start_tagger(plant, cfg.table("timetagger"), seed)
        cfg.finish()
        return plant

    def _rotator(self, t: Table, faults: FaultInjector, seed: int, name: str) -> RotatorModel:
        return RotatorModel(
            self.clock,
            counts_per_turn=t.integer("counts_per_turn", 143_360, min=1),
            max_speed_deg_s=t.number("max_speed_deg_s", 430.0, min=1e-3),
            accel_deg_s2=t.number("accel_deg_s2", 4000.0, min=1e-3),
            backlash_deg=t.number("backlash_deg", 0.0, min=0.0, max=10.0),
            home_offset_deg=t.number("home_offset_deg", 0.0),
            faults=faults,
            seed=seed,
            name=name,
        )

    async def _start_hwp(self, plant: StationPlant, t: Table, seed: int) -> None:
        address = t.integer("address", 0, min=0, max=15)
        faults = plant.faults["hwp"]
        model = self._rotator(t, faults, seed, f"{plant.name}.hwp")
        t.finish()
        bus = ElliptecBus(self.clock, {address: ElliptecDevice(model)}, faults=faults)
        pty = PtyServer(bus, faults=faults, name=f"{plant.name}.hwp", clock=self.clock)
        await pty.start()
        plant.closers.append(pty)
        plant.hwp = model
        plant.urls["hwp"] = f"elliptec+serial://{pty.path}?address={address:X}"

    async def _start_smc100(self, plant: StationPlant, t: Table, seed: int) -> None:
        address = t.integer("address", 1, min=1, max=31)
        faults = plant.faults["smc100"]
        model = self._rotator(t, faults, seed + 500, f"{plant.name}.smc100")
        ctl = SMC100Controller(
            model, min_deg=t.number("min_deg", -170.0), max_deg=t.number("max_deg", 170.0)
        )
        t.finish()
        line = SMC100Line(self.clock, {address: ctl}, faults=faults)
        pty = PtyServer(line, faults=faults, name=f"{plant.name}.smc100", clock=self.clock)
        await pty.start()
        plant.closers.append(pty)
        plant.urls["smc100"] = f"smc100+visa://ASRL{pty.path}::INSTR?address={address}"

    async def _start_tagger(self, plant: StationPlant, t: Table, seed: int) -> None:
        n = t.integer("channels", 4, min=1, max=64)
        scpi_port = t.integer("scpi_port", 0, min=0, max=65535)
        dlt_port = t.integer("dlt_port", 0, min=0, max=65535)
        # qgs wire extensions of the IDQ emulator (sim_hardware/servers/idq.py): off = only
        # what protocols.md §3a documents, as a real ID1000 + DataLinkTarget
        extensions = t.boolean("extensions", False)
        source: EventSource
        if self.world is not None:
            if "poisson_rates" in t:
                raise t.error("poisson_rates", "only used without a [world] (dark counts)")
            st = next(s for s in self.world.config.stations if s.name == plant.name)
            ch = st.channels
            used = {"h": ch.h, "v": ch.v, "d": ch.d, "a": ch.a}
            if st.pps_channel is not None:
                used["pps"] = st.pps_channel
            if max(used.values()) > n or min(used.values()) < 1:
                raise t.error(
                    "channels",
                    f"the world's {plant.name} uses inputs {used} (tagger inputs are 1-based); "
                    f"expected channels >= {max(used.values())}, got {n}",
                )
            source = WorldSource(self.world, plant.name, plant.mount, plant.hwp)
        else:
            rates = t.numbers("poisson_rates", [100.0] * n)
            if len(rates) != n or any(r < 0 for r in rates):
                raise t.error("poisson_rates", f"expected {n} rates >= 0 (one per channel)")
            rate_map = {i + 1: r for i, r in enumerate(rates)}
            source = PoissonSource(rate_map, origin=self.clock.epoch, seed=seed)
        t.finish()
        faults = plant.faults["timetagger"]
        model = TimeTaggerModel(
            self.clock, source, n_channels=n, faults=faults, name=f"{plant.name}.timetagger"
        )
        server = IdqServer(
            model,
            faults=faults,
            scpi_port=scpi_port,
            dlt_port=dlt_port,
            slice_s=self.slice_s,
            name=f"{plant.name}.timetagger",
            extensions=extensions,
        )
        await server.start()
        plant.closers.append(server)
        plant.tagger = model
        plant.urls["timetagger"] = server.url

    def _schedule_faults(self) -> None:
        plants = {p.name: p for p in self.stations}
        kinds = [k.value for k in FaultKind]
        for f in self.config.tables("faults"):
            station, _, device = f.string("device").partition(".")
            if station not in plants or device not in DEVICES:
                raise f.error(
                    "device",
                    f"expected <station>.<device> with station in {sorted(plants)} "
                    f"and device in {list(DEVICES)}",
                )
            kind = FaultKind(f.choice("kind", kinds))
            at = self.clock.epoch + f.number("at_s", min=0.0)
            duration = f.number("duration_s", 0.0, min=0.0) or None
            params = {p: f.number(p, 0.0) for p in FAULT_PARAMS if p in f}
            f.finish()
            plants[station].faults[device].inject(kind, at=at, duration=duration, **params)

    def urls(self) -> dict[str, Any]:
        """``{"<station>": {"mount": url, ...}, "_clock": "<WarpSpec>"}``."""
        out: dict[str, Any] = {p.name: dict(p.urls) for p in self.stations}
        out["_clock"] = self.clock.spec.to_string()
        return out

    async def _prefetch_geometry(self, world: World) -> None:
        """Keep the world's geometry computed ``PREFETCH_S`` ahead of the clock, off the loop.

        On demand, a 60 s geometry block (skyfield, 5–15 ms) is computed inside whichever
        emulator call first needs it, and the whole plant stalls meanwhile: at a 10x warp
        the mounts then sit still for ~0.1 s of clock once a minute (pointing spikes at every
        minute boundary of a rehearsal).
        """
        while True:
            now = self.clock.now()
            await asyncio.to_thread(world.prefetch_geometry, now, now + PREFETCH_S)
            await self.clock.sleep(PREFETCH_PERIOD_S)

    async def close(self) -> None:
        """Stop every emulator (reverse start order; idempotent)."""
        if self._prefetch is not None:
            self._prefetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prefetch
            self._prefetch = None
        for plant in reversed(self.stations):
            for closer in reversed(plant.closers):
                try:
                    await closer.close()
                except Exception:
                    log.exception("%s: error while stopping %r", plant.name, closer)
            plant.closers.clear()
