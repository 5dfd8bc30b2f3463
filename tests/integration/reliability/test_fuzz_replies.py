"""Fast subset of the driver-reply fuzzing (reliability/fuzz_drivers.py; full run in
``make reliability``): corrupted replies from our emulators give typed errors only."""

from __future__ import annotations

import pytest

from reliability.fuzz_drivers import TARGETS, Plan, Target, fuzz_driver, mutate


def test_each_mutation_changes_the_reply_as_described() -> None:
    reply = b"RPRT 0\n"
    assert mutate(reply, ("pass", 0, b"")) == reply
    assert mutate(reply, ("flip", 0, b"")) == b"SPRT 0\n"
    assert mutate(reply, ("truncate", 4, b"")) == b"RPRT"
    assert mutate(reply, ("replace", 0, b"\xff")) == b"\xff"
    assert mutate(reply, ("append", 0, b"#")) == reply + b"#"
    assert mutate(reply, ("drop", 0, b"")) == b""
    assert mutate(b"az 12.5\n", ("number", 0, b"")) == b"az nan.nan\n"
    plan = Plan(skip=1, ops=[("drop", 0, b"")])
    assert [plan.apply(b"x"), plan.apply(b"y")] == [b"x", b""]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_corrupted_replies_raise_typed_errors_only(target: Target) -> None:
    result = fuzz_driver(target, 25)
    assert result.cases == 25
    assert result.failures == [], result.failures
    assert result.typed_errors > 0  # the mutations reached the driver's parsing
