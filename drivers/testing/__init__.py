"""Test harness for drivers: byte-exact protocol scripts and interface conformance suites.

- :func:`expected_protocol` / :class:`ScriptedTransport` (:mod:`drivers.testing.protocol`):
  a driver talks to a script of exact request bytes -> reply bytes; an unused pair or
  leftover bytes fail the test.
- :mod:`drivers.testing.conformance`: one suite per interface (mount, rotator, analyzer,
  time tagger) that every backend — emulator over its real transport, or a real device
  given ``--device-url`` — must pass.
"""

from drivers.testing.conformance import (
    MountChecks,
    analyzer_conformance,
    mount_conformance,
    rotator_conformance,
    timetagger_conformance,
)
from drivers.testing.protocol import ScriptedTransport, expected_protocol

__all__ = [
    "MountChecks",
    "ScriptedTransport",
    "analyzer_conformance",
    "expected_protocol",
    "mount_conformance",
    "rotator_conformance",
    "timetagger_conformance",
]
