"""Reliability harness (issue 10): fault matrix, kill -9 trials, fuzzing, security counts.

``python -m reliability [--quick] [--only matrix,crash,fuzz,security,bridges]
[--out docs/reliability.md]`` (``make reliability``) runs real processes (Mosquitto, the rig,
the station daemon), stops every one by PID, and regenerates docs/reliability.md with each
figure beside the command that produced it. A fast subset runs in ``make test``
(tests/integration/reliability/test_reliability_fast.py).
"""
