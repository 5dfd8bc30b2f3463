"""Autouse checks (a pytest plugin, loaded by tests/conftest.py): a test that leaves a child
process or an asyncio task behind fails, naming what it left.

Why: every process a test starts must be stopped by its PID and every task awaited or
cancelled (the guide's "bounded everything"). A leftover process holds ports and CPU for the
rest of the session and makes later tests flaky under load; a leftover task is work the test
did not wait for, whose failure nobody sees. Both checks run after every other fixture's
teardown (autouse fixtures are set up first, so torn down last).

- Processes: live (not zombie) children of the pytest process that were not there before the
  test, given :data:`PROCESS_GRACE_S` to exit; the leftovers are SIGKILLed, then the test fails.
- Tasks (async tests only): tasks of the test's event loop other than the checker's own,
  given one loop iteration to finish their cancellation; the leftovers are cancelled, then
  the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from station.processes import live_children

PROCESS_GRACE_S = 3.0  #: wall s for children that are exiting on their own
TASK_CANCEL_S = 5.0  #: wall s for leftover tasks to finish their cancellation


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    me = os.getpid()
    before = set(live_children(me))
    yield
    deadline = time.monotonic() + PROCESS_GRACE_S
    while True:
        left = {p: c for p, c in live_children(me).items() if p not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if left:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail(f"the test left {len(left)} process(es) running: {left}", pytrace=False)


@pytest.fixture(autouse=True)
async def _no_leftover_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if not inspect.iscoroutinefunction(getattr(request.node, "obj", None)):
        return
    me = asyncio.current_task()
    await asyncio.sleep(0)  # let tasks cancelled during teardown finish
    left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    if left:
        for t in left:
            t.cancel()
        # bounded: a task that swallows its cancellation must not hang the session
        await asyncio.wait(left, timeout=TASK_CANCEL_S)
        names = sorted({t.get_coro().__qualname__ for t in left})  # type: ignore[union-attr]
        pytest.fail(f"the test left {len(left)} asyncio task(s) running: {names}", pytrace=False)
