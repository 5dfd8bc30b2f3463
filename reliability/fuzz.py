"""Fuzzing with hypothesis: only the typed errors, never another exception or a hang.

Targets (each counts the cases hypothesis tried):

``commands``
    Command payloads (raw bytes, JSON of any shape, envelopes with hostile fields: huge and
    4,300+ digit numbers, NaN, deep nesting, NUL and wildcards in ``reply_to``, long ids)
    published on a real Mosquitto to a real :class:`StationBus` carrying the daemon's command
    table. Checked: no unhandled exception in the bus's event loop, no ack landing on a
    station topic (``status``, ``event/alarm``), and after each batch a valid command still
    gets ``COMPLETE`` within a bound (the bus is alive and connected).
``config``
    The shipped station config with one value replaced (NaN, ±inf, huge, wrong type, random
    text) or a line dropped, and random text: ``parse_station_config`` raises only
    :class:`ConfigError`.
``elements``
    TLE lines mutated character by character, random text, OMM JSON and XML with mutated
    fields: ``parse_tle``/``parse_omm_json``/``parse_omm_xml`` raise only :class:`ConfigError`
    (``ElementsError`` is one).
``bundle``
    A recorded bundle whose chunk files are truncated, bit-flipped or renamed into another
    order: ``iter_blocks`` raises only :class:`RecordingError` (``ChunkError``) and a corrupted
    chunk is never read back as data; ``verify_bundle`` reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.clock import SystemClock, WarpClock
from drivers.config import load_toml
from drivers.datatypes import EventBlock
from drivers.errors import ConfigError
from reliability.broker import ROOT
from station.bus.connection import BrokerConfig
from station.bus.envelope import Ack, Command
from station.bus.requester import Requester
from station.bus.station_bus import CommandContext, StationBus
from station.config import parse_station_config
from station.daemon.api import COMMANDS
from station.recording.bundle import BundleWriter
from station.recording.errors import RecordingError
from station.recording.reader import chunk_files, iter_blocks
from station.recording.verify import verify_bundle
from station.tracking.elements import parse_omm_json, parse_omm_xml, parse_tle

T = TypeVar("T")
STATION = "fuzzst"
CALL_BOUND_S = 10.0  #: wall s for any single publish or sentinel command
STATION_CONFIG = ROOT / "configs/stations/delingha.toml"
TLE_FILE = ROOT / "configs/satellites/micius-2021.tle"


@dataclass
class FuzzResult:
    """One target: cases tried and every case that escaped the typed errors (or hung)."""

    target: str
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    typed_errors: int = 0  #: cases that raised the documented error (the expected refusal)

    def fail(self, what: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(what[:300])


def _settings(cases: int) -> settings:
    return settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


# ----------------------------------------------------------------- config, elements


def _toml_value() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            [
                "nan",
                "inf",
                "-inf",
                "+nan",
                "1e400",
                "-1e400",
                "0",
                "-0.0",
                "true",
                '""',
                "[]",
                "{}",
                "9" * 5000,
                "-" + "9" * 30,
                '"x"',
                "1979-05-27",
            ]
        ),
        st.floats(allow_nan=True, allow_infinity=True).map(
            lambda v: (
                "nan"
                if math.isnan(v)
                else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
            )
        ),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.text(max_size=30).map(json.dumps),
    )


def fuzz_config(cases: int) -> FuzzResult:
    result = FuzzResult("config")
    lines = STATION_CONFIG.read_text().splitlines()
    values = [i for i, ln in enumerate(lines) if "=" in ln and not ln.lstrip().startswith("#")]

    scratch = Path(tempfile.mkdtemp(prefix="qgs-fuzz-config-")) / "station.toml"

    def check(text: str) -> None:
        result.cases += 1
        scratch.write_text(text, errors="surrogatepass")
        try:  # the daemon's own path: load_toml (a TOML syntax error is a ConfigError too)
            parse_station_config(load_toml(scratch), base_dir=STATION_CONFIG.parent)
        except ConfigError:
            result.typed_errors += 1
        except Exception as exc:
            result.fail(f"{type(exc).__name__}: {exc}")

    @_settings(cases)
    @given(
        st.one_of(
            st.tuples(st.sampled_from(values), _toml_value()).map(
                lambda p: "\n".join(
                    ln if i != p[0] else ln.split("=", 1)[0] + "= " + p[1]
                    for i, ln in enumerate(lines)
                )
            ),
            st.sampled_from(values).map(
                lambda k: "\n".join(ln for i, ln in enumerate(lines) if i != k)
            ),
            st.text(max_size=300),
        )
    )
    def run(text: str) -> None:
        check(text)

    try:
        run()
    finally:
        shutil.rmtree(scratch.parent, ignore_errors=True)
    return result


def _tle_lines() -> tuple[str, str, str]:
    raw = [ln for ln in TLE_FILE.read_text().splitlines() if ln.strip()]
    return raw[0], raw[1], raw[2]


def fuzz_elements(cases: int) -> FuzzResult:
    result = FuzzResult("elements")
    name, l1, l2 = _tle_lines()
    omm = {
        "OBJECT_NAME": "X",
        "NORAD_CAT_ID": 41731,
        "EPOCH": "2021-04-27T10:09:19.800576",
        "MEAN_MOTION": 15.25507799,
        "ECCENTRICITY": 0.0012844,
        "INCLINATION": 97.3499,
        "RA_OF_ASC_NODE": 30.8507,
        "ARG_OF_PERICENTER": 347.0485,
        "MEAN_ANOMALY": 124.2616,
        "BSTAR": 3.026e-05,
        "MEAN_MOTION_DOT": 6.96e-06,
        "MEAN_MOTION_DDOT": 0.0,
    }

    def check(fn: Callable[[str], object], text: str) -> None:
        result.cases += 1
        try:
            fn(text)
        except ConfigError:
            result.typed_errors += 1
        except Exception as exc:
            result.fail(f"{fn.__name__}: {type(exc).__name__}: {exc} <- {text[:200]!r}")

    def mutate(line: str, pos: int, ch: str) -> str:
        pos %= len(line) + 1
        return line[:pos] + ch + line[pos + 1 :]

    json_value = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(),
        st.integers(),
        st.text(max_size=20),
        st.just("9" * 5000),
    )

    @_settings(cases)
    @given(
        st.one_of(
            st.tuples(st.integers(0, 80), st.characters(), st.integers(0, 80), st.characters()).map(
                lambda m: ("tle", f"{name}\n{mutate(l1, m[0], m[1])}\n{mutate(l2, m[2], m[3])}\n")
            ),
            st.text(max_size=400).map(lambda t: ("tle", t)),
            st.tuples(st.sampled_from(sorted(omm)), json_value).map(
                lambda kv: ("json", json.dumps([{**omm, kv[0]: kv[1]}]))
            ),
            st.tuples(st.sampled_from(sorted(omm)), st.text(max_size=30)).map(
                lambda kv: (
                    "xml",
                    "<ndm><omm><body><segment><metadata><OBJECT_NAME>X</OBJECT_NAME>"
                    "</metadata><data><meanElements>"
                    + "".join(f"<{k}>{kv[1] if k == kv[0] else v}</{k}>" for k, v in omm.items())
                    + "</meanElements></data></segment></body></omm></ndm>",
                )
            ),
            st.text(max_size=300).map(lambda t: ("json", t)),
            st.text(max_size=300).map(lambda t: ("xml", t)),
        )
    )
    def run(case: tuple[str, str]) -> None:
        kind, text = case
        fn = {"tle": parse_tle, "json": parse_omm_json, "xml": parse_omm_xml}[kind]
        check(fn, text)

    run()
    return result


# ----------------------------------------------------------------- bundle reader


async def _write_bundle(path: Path) -> None:
    start = datetime(2021, 4, 29, 17, 20, tzinfo=UTC)
    clock = WarpClock(epoch=start.timestamp(), rate=1.0)
    writer = await BundleWriter.create(
        path, clock=clock, station="fuzz", run_start_utc=start, max_chunk_events=500
    )
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.integers(1, 2000, 3000, dtype=np.int64))
    ch = rng.choice(np.array([1, 2, 3, 4], dtype=np.uint8), 3000)
    for i in range(6):
        await writer.events.write(
            EventBlock(i, t[i * 500 : (i + 1) * 500].copy(), ch[i * 500 : (i + 1) * 500].copy())
        )
    await writer.close()


def fuzz_bundle(cases: int) -> FuzzResult:
    result = FuzzResult("bundle")
    with tempfile.TemporaryDirectory(prefix="qgs-fuzz-bundle-") as tmp:
        pristine = Path(tmp) / "pristine"
        asyncio.run(_write_bundle(pristine))
        n_chunks = len(chunk_files(pristine))
        work = Path(tmp) / "work"

        @_settings(cases)
        @given(
            st.one_of(
                st.tuples(st.just("truncate"), st.integers(0, n_chunks - 1), st.integers(0, 20000)),
                st.tuples(st.just("flip"), st.integers(0, n_chunks - 1), st.integers(0, 10**6)),
                st.tuples(
                    st.just("reorder"), st.integers(0, n_chunks - 1), st.integers(0, n_chunks - 1)
                ),
            )
        )
        def run(case: tuple[str, int, int]) -> None:
            result.cases += 1
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(pristine, work)
            files = chunk_files(work)
            kind, a, b = case
            path = files[a][1]
            data = bytearray(path.read_bytes())
            changed = True
            if kind == "truncate":
                cut = b % max(1, len(data))
                path.write_bytes(bytes(data[:cut]))
            elif kind == "flip":
                bit = b % (8 * len(data))
                data[bit // 8] ^= 1 << (bit % 8)
                path.write_bytes(bytes(data))
            else:
                other = files[b][1]
                changed = a != b
                if changed:
                    tmp_name = path.with_suffix(".swap")
                    path.rename(tmp_name)
                    other.rename(path)
                    tmp_name.rename(other)
            try:
                read = sum(len(blk.t_ps) for blk in iter_blocks(work))
            except RecordingError:
                result.typed_errors += 1
                read = None
            except Exception as exc:
                result.fail(f"iter_blocks {case}: {type(exc).__name__}: {exc}")
                return
            try:
                report = verify_bundle(work)
            except RecordingError as exc:
                result.fail(f"verify_bundle raised on a bundle {case}: {exc}")
                return
            except Exception as exc:
                result.fail(f"verify_bundle {case}: {type(exc).__name__}: {exc}")
                return
            if changed and (read is not None or report.ok):
                result.fail(f"corruption not detected {case}: read {read}, verify {report.ok}")

        run()
    return result


# ----------------------------------------------------------------- command payloads


class _LoopThread:
    """An asyncio loop in a thread, so hypothesis (synchronous) can drive async I/O."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.errors: list[str] = []
        self.loop.set_exception_handler(self._on_error)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def _on_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.errors.append(f"{context.get('message')}: {context.get('exception')!r}"[:300])

    def call(self, coro: Coroutine[Any, Any, T], bound_s: float = CALL_BOUND_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=bound_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def _envelopes() -> st.SearchStrategy[bytes]:
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**80), 2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
    )
    anyjson = st.recursive(
        leaf,
        lambda c: st.one_of(
            st.lists(c, max_size=4), st.dictionaries(st.text(max_size=10), c, max_size=4)
        ),
        max_leaves=20,
    )
    reply_to = st.one_of(
        st.text(max_size=60),
        st.sampled_from(
            [
                f"qgs/v1/{STATION}/status",
                f"qgs/v1/{STATION}/event/alarm",
                "qgs/reply/x/other/y",
                "qgs/reply/#",
                "qgs/reply/+/a",
                "qgs/reply/\x00/a",
                f"qgs/reply/fuzz-op/{STATION}/x" + "y" * 70000,
                "",
            ]
        ),
        st.text(max_size=20).map(lambda s: f"qgs/reply/fuzz-op/{STATION}/{s}"),
    )

    def envelope(parts: tuple[Any, Any, Any, Any, Any]) -> bytes:
        cid, ts, rto, args, exp = parts
        body: dict[str, Any] = {"id": cid, "ts": ts, "reply_to": rto, "args": args}
        if exp is not None:
            body["expires_at"] = exp
        return json.dumps(body).encode()

    raw_numbers = st.sampled_from(
        [
            b'{"id": "n1", "ts": ' + b"9" * 5000 + b', "reply_to": "qgs/reply/fuzz-op/fuzzst/x"}',
            b'{"id": "n2", "ts": 1e999, "reply_to": "qgs/reply/fuzz-op/fuzzst/x"}',
            b'{"id": "n3", "ts": NaN, "reply_to": "qgs/reply/fuzz-op/fuzzst/x"}',
            b'{"id": "n4", "ts": 1, "reply_to": "qgs/reply/fuzz-op/fuzzst/x", "args": '
            + b"[" * 5000
            + b"]" * 5000
            + b"}",
            b'{"id": "' + b"i" * 200000 + b'", "ts": 1, "reply_to": "qgs/reply/fuzz-op/fuzzst/x"}',
        ]
    )
    return st.one_of(
        st.binary(max_size=300),
        anyjson.map(lambda v: json.dumps(v).encode()),
        st.tuples(
            st.one_of(st.text(max_size=200), st.integers(), st.none()),
            st.one_of(st.floats(), st.integers(-(2**70), 2**70), st.text(max_size=5)),
            reply_to,
            anyjson,
            st.one_of(st.none(), st.floats(), st.text(max_size=5)),
        ).map(envelope),
        raw_numbers,
    )


@contextlib.contextmanager
def _bus(port: int) -> Iterator[tuple[_LoopThread, StationBus, aiomqtt.Client, Requester]]:
    lt = _LoopThread()
    broker = BrokerConfig(port=port, timeout_s=5.0)

    async def handler(cmd: Command, ctx: CommandContext) -> Mapping[str, Any]:
        return {"ran": cmd.name}

    async def make() -> tuple[StationBus, aiomqtt.Client, Requester]:
        # aiomqtt clients bind to the running loop: build them on the loop thread
        bus = StationBus(STATION, broker, SystemClock(), state=lambda: "STANDBY")
        for spec in COMMANDS:
            bus.register(spec, handler)
        return bus, broker.client("fuzz-pub"), Requester(broker, SystemClock(), client_id="fuzz-op")

    bus, pub, req = lt.call(make())
    try:
        lt.call(bus.start())
        lt.call(bus.wait_connected(10.0), 15.0)
        lt.call(pub.__aenter__())
        lt.call(req.__aenter__())
        yield lt, bus, pub, req
    finally:
        with contextlib.suppress(Exception):
            lt.call(req.__aexit__(None, None, None))
        with contextlib.suppress(Exception):
            lt.call(pub.__aexit__(None, None, None))
        with contextlib.suppress(Exception):
            lt.call(bus.stop(), 20.0)
        lt.close()


async def _watch_station(port: int, bad: list[str], ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="fuzz-watch") as client:
        await client.subscribe(f"qgs/v1/{STATION}/status", qos=1)
        await client.subscribe(f"qgs/v1/{STATION}/event/#", qos=1)
        await client.subscribe(f"qgs/v1/{STATION}/state/#", qos=1)
        ready.set()
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if b'"ack"' in payload:
                bad.append(f"an ack landed on {message.topic}")


async def _connect(broker: BrokerConfig, client_id: str) -> aiomqtt.Client:
    client = broker.client(client_id)
    await client.__aenter__()
    return client


def fuzz_commands(port: int, cases: int) -> FuzzResult:
    result = FuzzResult("commands")
    names = [s.name for s in COMMANDS]
    with _bus(port) as (lt, bus, pub, req):
        bad: list[str] = []
        ready = asyncio.Event()
        watcher = asyncio.run_coroutine_threadsafe(_watch_station(port, bad, ready), lt.loop)
        lt.call(ready.wait())
        topic_names = st.one_of(
            st.sampled_from(names),
            st.text(
                # no control, surrogate or unassigned characters: Mosquitto drops a publisher
                # using them in a topic (its refusal, not the station's; tried separately below)
                alphabet=st.characters(
                    blacklist_characters="+#/", blacklist_categories=("Cc", "Cs", "Co", "Cn")
                ),
                min_size=1,
                max_size=40,
            ),
        )

        clients = [pub]

        def sentinel(tag: str) -> None:
            try:
                replies = lt.call(
                    req.send(STATION, "get_schedule", timeout_s=CALL_BOUND_S - 2), CALL_BOUND_S
                )
                if replies[-1].ack is not Ack.COMPLETE:
                    result.fail(f"{tag}: a valid command got {replies[-1].ack}")
            except Exception as exc:
                result.fail(f"{tag}: the bus did not answer a valid command: {exc!r}")

        @_settings(cases)
        @given(topic_names, _envelopes(), st.booleans())
        def run(name: str, payload: bytes, retain: bool) -> None:
            result.cases += 1
            try:
                lt.call(
                    clients[0].publish(
                        f"qgs/v1/{STATION}/cmd/{name}", payload, qos=1, retain=retain
                    )
                )
            except aiomqtt.MqttError:
                # the broker dropped the publisher (e.g. a control character in the topic):
                # its refusal, not the station's; publish the rest on a new connection
                result.typed_errors += 1
                with contextlib.suppress(Exception):
                    lt.call(clients[0].__aexit__(None, None, None))
                clients[0] = lt.call(
                    _connect(BrokerConfig(port=port, timeout_s=2.0), f"fuzz-pub-{result.cases}")
                )
            if result.cases % 50 == 0:
                sentinel(f"after {result.cases} cases")

        run()
        time.sleep(1.0)
        sentinel("at the end")
        if not bus.connected:
            result.fail("the bus is not connected at the end")
        # clear retained commands the fuzz left, so a later client is not fed them
        for name in names:
            with contextlib.suppress(Exception):
                lt.call(clients[0].publish(f"qgs/v1/{STATION}/cmd/{name}", b"", qos=1, retain=True))
        watcher.cancel()
        if clients[0] is not pub:
            with contextlib.suppress(Exception):
                lt.call(clients[0].__aexit__(None, None, None))
        result.failures.extend(bad[:10])
        # a dropped publisher's own futures end "Unexpected disconnection": ours, not the bus's
        ours = "Unexpected disconnection"
        result.failures.extend(f"event loop: {e}" for e in lt.errors if ours not in e)
    return result


def run_all(port: int, cases: int) -> list[FuzzResult]:
    """Every target with ``cases`` examples each (commands on the broker at ``port``)."""
    out = [fuzz_config(cases), fuzz_elements(cases), fuzz_bundle(cases), fuzz_commands(port, cases)]
    for r in out:
        print(
            f"fuzz {r.target}: {r.cases} cases, {r.typed_errors} typed errors, "
            f"{len(r.failures)} failures {r.failures[:2]}",
            flush=True,
        )
    return out
