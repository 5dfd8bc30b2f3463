"""The emulated plant for N stations: world + mount, waveplate and time-tagger emulators.

A rig config (``configs/rig/*.toml``) has:

- ``[rig]``: ``seed``, ``rate`` (warp rate when no ``--clock`` is given), ``slice_s``.
- ``[world]`` (+ the world's own sections): handed to ``sim_hardware.world`` when that package
  is present; the world then generates each station's detections from the **actual** mount
  pointing (:meth:`MountModel.position`) and HWP angle (:meth:`RotatorModel.angle`).
  Without a world, each tagger falls back to ``poisson_rates`` (dark counts only).
- ``[stations.<name>.mount]``, ``.hwp`` (ELL14 on a pty), optional ``.smc100`` and
  ``.timetagger`` (IDQ on zmq): per-device settings, ports 0 = any free port.
- ``[[faults]]``: ``device = "<station>.<mount|hwp|smc100|timetagger>"``, ``kind`` (a
  :class:`FaultKind` value), ``at_s`` (clock seconds after the clock epoch), optional
  ``duration_s`` and parameters ``delay_s``, ``channel``, ``jump_ps``, ``code``.

:meth:`Rig.urls` gives the device URLs per station, the JSON the station uses to find the
plant; ``"_clock"`` carries the shared :class:`~drivers.clock.WarpSpec`.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from drivers.clock import WarpClock
from drivers.config import Table
from drivers.datatypes import AltAz, AxisLimits, MountLimits
from drivers.errors import ConfigError
from sim_hardware.devices.mount import MountModel
from sim_hardware.devices.rotator import RotatorModel
from sim_hardware.devices.timetagger import EventSource, PoissonSource, TimeTaggerModel
from sim_hardware.faults import FaultInjector, FaultKind
from sim_hardware.servers.elliptec import ElliptecBus, ElliptecDevice
from sim_hardware.servers.idq import IdqServer
from sim_hardware.servers.lx200 import Lx200Server, serve_lx200
from sim_hardware.servers.pty import PtyServer
from sim_hardware.servers.rotctld import RotctldServer, serve_rotctld
from sim_hardware.servers.smc100 import SMC100Controller, SMC100Line

log = logging.getLogger(__name__)

DEVICES = ("mount", "hwp", "smc100", "timetagger")
FAULT_PARAMS = ("delay_s", "channel", "jump_ps", "code")


class WorldSource:
    """An :class:`EventSource` reading the world with the station's actual device state."""

    def __init__(
        self, world: Any, station: str, mount: MountModel, hwp: RotatorModel | None
    ) -> None:
        self.world, self.station, self.mount, self.hwp = world, station, mount, hwp

    def events(self, t0: float, t1: float) -> Any:
        hwp = self.hwp.angle() if self.hwp is not None else 0.0
        return self.world.detections(
            self.station, t0, t1, pointing=self.mount.position(), hwp_deg=hwp
        )


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

    def _load_world(self) -> Any:
        if "world" not in self.config:
            return None
        try:
            module = importlib.import_module("sim_hardware.world")
            load, world_class = module.load_world_config, module.World
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"the config has a [world] but sim_hardware.world cannot be loaded ({exc})",
                source=self.config.source,
                key="world",
            ) from None
        return world_class(load(self.config), seed=self.seed)

    async def start(self) -> None:
        """Start every station's emulators (on failure, stop what was started)."""
        stations = self.config.table("stations")
        names = list(stations.keys())
        if not names:
            raise stations.error("stations", "no stations configured")
        try:
            for i, name in enumerate(names):
                plant = await self._start_station(name, stations.table(name), i)
                self.stations.append(plant)
            stations.finish()
            self._schedule_faults()
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
        if not isinstance(protocols, list) or not set(protocols) <= {"rotctld", "lx200"}:
            raise m.error(
                "protocols", f"expected a subset of ['rotctld', 'lx200'], got {protocols}"
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
        if "rotctld" in protocols:
            rot: RotctldServer = await serve_rotctld(mount, port=rotctld_port)
            plant.closers.append(rot)
            plant.urls["mount"] = rot.url
        if "lx200" in protocols:
            lx: Lx200Server = await serve_lx200(mount)
            plant.closers.append(lx)
            plant.urls["mount" if "mount" not in plant.urls else "mount_lx200"] = lx.url
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
        rates = t.numbers("poisson_rates", [100.0] * n)
        if len(rates) != n or any(r < 0 for r in rates):
            raise t.error("poisson_rates", f"expected {n} rates >= 0 (one per channel)")
        scpi_port = t.integer("scpi_port", 0, min=0, max=65535)
        dlt_port = t.integer("dlt_port", 0, min=0, max=65535)
        t.finish()
        source: EventSource
        if self.world is not None:
            source = WorldSource(self.world, plant.name, plant.mount, plant.hwp)
        else:
            rate_map = {i + 1: r for i, r in enumerate(rates)}
            source = PoissonSource(rate_map, origin=self.clock.epoch, seed=seed)
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

    async def close(self) -> None:
        """Stop every emulator (reverse start order; idempotent)."""
        for plant in reversed(self.stations):
            for closer in reversed(plant.closers):
                try:
                    await closer.close()
                except Exception:
                    log.exception("%s: error while stopping %r", plant.name, closer)
            plant.closers.clear()
