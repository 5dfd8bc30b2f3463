"""Hamlib rotctld protocol front-end (TCP) for the emulated mount.

Byte formats follow Hamlib 4.5.4's ``rotctld`` (checked against ``rotctld -m 1`` with a raw
socket; protocols.md §1c):

- commands are whitespace-separated tokens; a short command is one character and further
  characters of the same token are the next command (``pp`` is two ``p``); long names start
  with a backslash (``\\set_pos``); arguments are the following tokens, even on later lines;
- set commands answer ``RPRT n``; get commands answer their values one per line and nothing
  else on success, or only ``RPRT n`` on failure; positions are printed ``%.2f``;
- a ``+`` prefix selects the extended response protocol (echo line ``set_pos: 10 20``, then
  ``Key: value`` lines, then ``RPRT n``); ``;``, ``|`` or ``,`` do the same with that
  character as the record separator instead of a newline;
- an unknown command gets **no reply** (the real daemon only logs it on stderr) — clients
  must bound their wait; ``q``/``Q`` closes the connection;
- error codes are negated ``rig_errcode_e``: an unparsable number or a target outside the
  limits is ``RPRT -1`` (RIG_EINVAL), as the real daemon answers.

Emulator choices where the real daemon depends on its backend: a motion command while the
motor is stalled answers ``RPRT -9`` (RIG_ERJCTED); the ``error_reply`` fault answers every
command with ``RPRT -5`` (RIG_ETIMEOUT, what rotctld reports when the rotator controller does
not answer); NaN/inf positions are refused with ``RPRT -1`` (the real dummy accepts them);
``set_conf`` of a limit is refused with ``RPRT -9`` (firmware limits are fixed).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections import deque
from dataclasses import dataclass

from drivers.datatypes import AltAz
from drivers.errors import DeviceFault, LimitViolation
from sim_hardware.devices.mount import MountModel
from sim_hardware.faults import FaultKind
from sim_hardware.servers.replies import ReplyWriter
from sim_hardware.servers.tcp import TcpServer

log = logging.getLogger(__name__)

RIG_OK = 0
RIG_EINVAL = -1
RIG_ETIMEOUT = -5
RIG_ERJCTED = -9

#: Hamlib rotctld protocol version printed first by ``\dump_state``.
PROTOCOL_VERSION = 1
#: Longest request line accepted (bytes); longer lines are discarded with a log warning.
MAX_LINE = 4096

#: ``M`` directions: Hamlib ROT_MOVE_* codes and names -> (d_az, d_el).
MOVE_DIRECTIONS: dict[str, tuple[int, int]] = {
    "2": (0, 1),
    "UP": (0, 1),
    "4": (0, -1),
    "DOWN": (0, -1),
    "8": (-1, 0),
    "LEFT": (-1, 0),
    "CCW": (-1, 0),
    "16": (1, 0),
    "RIGHT": (1, 0),
    "CW": (1, 0),
}

#: ``C`` tokens the real daemon knows (all refused here: the limits are firmware limits).
CONF_TOKENS = ("min_az", "max_az", "min_el", "max_el", "south_zero")

_INT_PREFIX = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class _Spec:
    long: str
    nargs: int
    keys: tuple[str, ...] | None  #: output keys of a get command; None for set commands


_SPECS: dict[str, _Spec] = {
    "P": _Spec("set_pos", 2, None),
    "p": _Spec("get_pos", 0, ("Azimuth", "Elevation")),
    "M": _Spec("move", 2, None),
    "S": _Spec("stop", 0, None),
    "K": _Spec("park", 0, None),
    "R": _Spec("reset", 1, None),
    "C": _Spec("set_conf", 2, None),
    "_": _Spec("get_info", 0, ("Info",)),
    "s": _Spec("get_status", 0, ("Status flags",)),
    "1": _Spec("dump_caps", 0, None),
}
_LONG = {spec.long: short for short, spec in _SPECS.items()}
_EXTENDED_PREFIX = {"+": "\n", ";": ";", "|": "|", ",": ","}


class _Tokens:
    """Whitespace-separated tokens from a stream; arguments may continue on later lines."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._pending: deque[str] = deque()

    def push_front(self, token: str) -> None:
        self._pending.appendleft(token)

    async def next(self) -> str | None:
        """The next token, or None at end of stream."""
        while not self._pending:
            try:
                line = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    return None
                line = exc.partial
            except asyncio.LimitOverrunError as exc:
                await self._reader.readexactly(exc.consumed)
                log.warning("rotctld: request line over %d bytes discarded", MAX_LINE)
                continue
            self._pending.extend(line.decode("latin-1").split())
        return self._pending.popleft()


def _parse_float(text: str) -> float | None:
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class RotctldProtocol:
    """Serves one rotctld connection against a shared :class:`MountModel`."""

    def __init__(self, model: MountModel, *, model_id: int = 1, decimals: int = 2) -> None:
        self.model = model
        self.model_id = model_id
        self.decimals = decimals

    async def handle(self, reader: asyncio.StreamReader, writer: ReplyWriter) -> None:
        tokens = _Tokens(reader)
        while True:
            token = await tokens.next()
            if token is None:
                return
            sep: str | None = None
            if token[0] in _EXTENDED_PREFIX:
                sep = _EXTENDED_PREFIX[token[0]]
                token = token[1:] or (await tokens.next() or "")
                if not token:
                    return
            if token.startswith("\\"):
                name = token[1:]
                short = _LONG.get(name, name if name == "dump_state" else "")
            else:
                short, rest = token[0], token[1:]
                if rest:
                    tokens.push_front(rest)
            if short in ("q", "Q"):
                return
            if short == "dump_state":
                writer.write(self._dump_state(sep))
                continue
            spec = _SPECS.get(short)
            if spec is None:
                # Hamlib 4.5.4 prints "Command '%c' not found!" on its stderr and answers nothing.
                log.warning("rotctld: unknown command %r (no reply, as Hamlib)", token)
                continue
            args: list[str] = []
            for _ in range(spec.nargs):
                arg = await tokens.next()
                if arg is None:
                    return
                args.append(arg)
            writer.write(self._execute(short, spec, args, sep))

    # ------------------------------------------------------------------ commands

    def _execute(self, short: str, spec: _Spec, args: list[str], sep: str | None) -> bytes:
        faults = self.model.faults
        code: int
        values: list[str] = []
        if faults is not None and faults.active(FaultKind.ERROR_REPLY) is not None:
            code = RIG_ETIMEOUT
        elif short == "1":
            return self._dump_caps().encode()
        else:
            code, values = self._run(short, args)
        if sep is None:
            if spec.keys is not None and code == RIG_OK:
                return "".join(f"{v}\n" for v in values).encode()
            return f"RPRT {code}\n".encode()
        echo = f"{spec.long}:" + (" " + " ".join(args) if args else "")
        records = [echo]
        if spec.keys is not None and code == RIG_OK:
            records += [f"{k}: {v}" for k, v in zip(spec.keys, values, strict=True)]
        records.append(f"RPRT {code}")
        return (sep.join(records) + "\n").encode()

    def _run(self, short: str, args: list[str]) -> tuple[int, list[str]]:
        model = self.model
        try:
            if short == "p":
                pos = model.encoder_position()
                return RIG_OK, [self._fmt(pos.az_deg), self._fmt(pos.el_deg)]
            if short == "P":
                az, el = _parse_float(args[0]), _parse_float(args[1])
                if az is None or el is None:
                    return RIG_EINVAL, []
                model.command(AltAz(az, el))
            elif short == "M":
                return self._move(args), []
            elif short == "S":
                model.stop()
            elif short == "K":
                model.park()
            elif short == "R":
                if _INT_PREFIX.match(args[0]) is None:
                    return RIG_EINVAL, []
                model.reset()
            elif short == "C":
                return (RIG_ERJCTED if args[0] in CONF_TOKENS else RIG_EINVAL), []
            elif short == "_":
                return RIG_OK, [f"qgs emulated mount {model.name}"]
            elif short == "s":
                return RIG_OK, [self._status_flags()]
        except LimitViolation as exc:
            log.info("rotctld: refused %s %s: %s", short, args, exc)
            return RIG_EINVAL, []
        except DeviceFault as exc:
            log.info("rotctld: rejected %s %s: %s", short, args, exc)
            return RIG_ERJCTED, []
        return RIG_OK, []

    def _move(self, args: list[str]) -> int:
        direction = MOVE_DIRECTIONS.get(args[0].upper())
        speed = _INT_PREFIX.match(args[1])
        if direction is None or speed is None:
            return RIG_EINVAL
        pct = min(max(int(speed.group()), 1), 100)
        self.model.jog(direction[0], direction[1], pct / 100.0)
        return RIG_OK

    def _fmt(self, value: float) -> str:
        return f"{value:.{self.decimals}f}"

    def _status_flags(self) -> str:
        v_az, v_el = self.model.velocity()
        pos = self.model.encoder_position()
        lim = self.model.limits
        flags: list[str] = []
        if v_az or v_el:
            flags.append("MOVING")
        if v_az:
            flags += ["MOVING_AZ", "MOVING_RIGHT" if v_az > 0 else "MOVING_LEFT"]
        if v_el:
            flags += ["MOVING_EL", "MOVING_UP" if v_el > 0 else "MOVING_DOWN"]
        if pos.el_deg >= lim.el.max_deg:
            flags.append("LIMIT_UP")
        if pos.el_deg <= lim.el.min_deg:
            flags.append("LIMIT_DOWN")
        if pos.az_deg <= lim.az.min_deg:
            flags.append("LIMIT_LEFT")
        if pos.az_deg >= lim.az.max_deg:
            flags.append("LIMIT_RIGHT")
        return "".join(f"{f} " for f in flags)

    def _dump_state(self, sep: str | None) -> bytes:
        lim = self.model.limits
        if sep is None:
            lines = [
                str(PROTOCOL_VERSION),
                str(self.model_id),
                f"min_az={lim.az.min_deg:f}",
                f"max_az={lim.az.max_deg:f}",
                f"min_el={lim.el.min_deg:f}",
                f"max_el={lim.el.max_deg:f}",
                "south_zero=0",
                "rot_type=AzEl",
                "done",
            ]
            return ("\n".join(lines) + "\n").encode()
        records = [
            "dump_state:",
            f"rotctld Protocol Ver: {PROTOCOL_VERSION}",
            f"Rotor Model: {self.model_id}",
            f"Minimum Azimuth: {lim.az.min_deg:f}",
            f"Maximum Azimuth: {lim.az.max_deg:f}",
            f"Minimum Elevation: {lim.el.min_deg:f}",
            f"Maximum Elevation: {lim.el.max_deg:f}",
            "South Zero: 0",
            "rot_type=AzEl",
            "done",
            "RPRT 0",
        ]
        return (sep.join(records) + "\n").encode()

    def _dump_caps(self) -> str:
        lim = self.model.limits
        lines = [
            f"Caps dump for model:\t{self.model_id}",
            "Model name:\t\tqgs emulated mount",
            "Mfg name:\t\tqgs",
            "Rot type:\t\tAz-El",
            f"Min Azimuth:\t\t{lim.az.min_deg:.2f}",
            f"Max Azimuth:\t\t{lim.az.max_deg:.2f}",
            f"Min Elevation:\t\t{lim.el.min_deg:.2f}",
            f"Max Elevation:\t\t{lim.el.max_deg:.2f}",
            "Can set Position:\tY",
            "Can get Position:\tY",
            "Can Stop:\t\tY",
            "Can Park:\t\tY",
            "Can Reset:\t\tY",
            "Can Move:\t\tY",
            "Can get Info:\t\tY",
            "Can get Status:\t\tY",
            "",
            "Overall backend warnings: 0",
            "RPRT 0",
        ]
        return "\n".join(lines) + "\n"


class RotctldServer:
    """A running rotctld emulator: :attr:`port`, :attr:`url`, :meth:`close`."""

    def __init__(self, tcp: TcpServer) -> None:
        self._tcp = tcp

    @property
    def port(self) -> int:
        return self._tcp.port

    @property
    def url(self) -> str:
        """Device URL for the station config, e.g. ``rotctld://127.0.0.1:4533``."""
        return f"rotctld://{self._tcp.host}:{self._tcp.port}"

    async def close(self) -> None:
        await self._tcp.close()

    async def __aenter__(self) -> RotctldServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def serve_rotctld(
    model: MountModel,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    model_id: int = 1,
    decimals: int = 2,
) -> RotctldServer:
    """Start a rotctld emulator for ``model`` on ``host:port`` (0: any free port).

    Transport faults come from ``model.faults`` and are timed on ``model.clock``.
    """
    protocol = RotctldProtocol(model, model_id=model_id, decimals=decimals)
    tcp = TcpServer(
        protocol.handle,
        faults=model.faults,
        name=f"rotctld:{model.name}",
        clock=model.clock,
        host=host,
        port=port,
        line_limit=MAX_LINE,
    )
    await tcp.start()
    return RotctldServer(tcp)
