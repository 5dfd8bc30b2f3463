"""A driver killed mid-acquisition leaves DLT streams behind; the next driver ends them.

Issue 10 (kill -9 trials): a daemon restarted after SIGKILL recorded nothing, because the
dead daemon's DataLinkTarget streams were never stopped and the emulated device, which feeds
every stream from one generator with back-pressure, waited forever on the one nobody reads.
protocols.md §3a has ``stop --id`` and no way to list streams, so the driver remembers its ids
(drivers/timetagger/idqrecord.py). Here a driver in a child process starts streaming and is
SIGKILLed; a new driver (same state directory) must end the stale streams and stream itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from drivers.clock import SystemClock, WarpClock
from drivers.registry import open_device
from drivers.timetagger.idq import IDQTimeTagger
from drivers.timetagger.idqrecord import AcquisitionRecord
from sim_hardware.devices.timetagger import PoissonSource, TimeTaggerModel
from sim_hardware.servers.idq import IdqServer

T0 = 1_700_000_000.0
RATES = {1: 2e4, 2: 2e4}
REPO = str(Path(__file__).resolve().parents[4])

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from drivers.clock import SystemClock
    from drivers.registry import open_device

    async def main() -> None:
        tagger = open_device(sys.argv[1], SystemClock())
        await tagger.connect()
        await tagger.start()
        async for block in tagger.stream():
            if len(block.t_ps):
                break
        print("streaming", flush=True)
        await asyncio.sleep(120)  # until SIGKILL

    asyncio.run(main())
    """
)


async def _first_events(tagger: IDQTimeTagger, bound_s: float) -> int:
    async def first() -> int:
        async for block in tagger.stream():
            if len(block.t_ps):
                return len(block.t_ps)
        return 0

    return await asyncio.wait_for(first(), bound_s)


@pytest.mark.timeout(90)
async def test_a_restarted_driver_ends_the_streams_of_a_killed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QGS_STATE_DIR", str(tmp_path / "state"))
    clock = WarpClock(T0, rate=2.0)
    model = TimeTaggerModel(clock, PoissonSource(RATES, origin=T0, seed=3), name="crash.tagger")
    server = IdqServer(model, name="crash.tagger")
    await server.start()
    url = f"idq+zmq://127.0.0.1:{server.scpi_port}?dlt={server.dlt_port}&channels=2"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        url,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    tagger: IDQTimeTagger | None = None
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 30.0)
        assert line.strip() == b"streaming", line
        stale = set(server.streams)
        assert len(stale) == 2  # one DLT stream per input (§3a)
        record = AcquisitionRecord.for_device(
            "127.0.0.1", server.scpi_port, "127.0.0.1", server.dlt_port
        )
        assert sorted(record.load()) == sorted(stale)  # written down before the crash

        child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 10.0)

        tagger = open_device(url, SystemClock())
        assert isinstance(tagger, IDQTimeTagger)
        await tagger.connect()
        await tagger.start()
        assert not stale & set(server.streams), "the killed driver's streams still run"
        assert await _first_events(tagger, 20.0) > 0
        assert sorted(record.load()) == sorted(tagger.stream_ids.values())
        await tagger.stop()
        assert record.load() == []  # a clean stop forgets the ids
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGKILL)
            await asyncio.wait_for(child.wait(), 10.0)
        if tagger is not None:
            await tagger.close()
        await server.close()


def test_an_unreadable_record_is_ignored(tmp_path: Path) -> None:
    record = AcquisitionRecord.for_device("h", 1, "h", 2, root=tmp_path)
    assert record.load() == []
    record.path.write_text("{not json")
    assert record.load() == []
    record.path.write_text('{"stream_ids": [1, 2]}')
    assert record.load() == []
    record.save(["7", "8"])
    assert record.load() == ["7", "8"]
    record.clear()
    assert not record.path.exists()
