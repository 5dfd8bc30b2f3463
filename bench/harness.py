"""Benchmark harness: candidate vs baseline measured in the same run, reported as a ratio.

Performance targets are ratios, never wall-clock numbers (the machines are shared and
noisy). A bench module ``bench/bench_<topic>.py`` defines ``run() -> list[Result]``;
``python -m bench`` (``make bench``) runs every module, prints a table and appends the
results to ``bench/results.json`` with the machine, the date and the git revision.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Result:
    """One figure: a candidate's value, a baseline's value and their ratio.

    ``higher_is_better`` says how to read the values (throughput: True; latency: False).
    ``target_ratio`` is the figure the issue asks for (ratio candidate/baseline for
    throughputs, baseline/candidate for latencies), or None when only reported.
    """

    name: str
    candidate: str
    candidate_value: float
    baseline: str
    baseline_value: float
    unit: str
    higher_is_better: bool = True
    target_ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Speed-up of the candidate over the baseline (>1 means the candidate is better)."""
        if self.higher_is_better:
            return self.candidate_value / self.baseline_value
        return self.baseline_value / self.candidate_value

    @property
    def meets_target(self) -> bool | None:
        return None if self.target_ratio is None else self.ratio >= self.target_ratio

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        out["meets_target"] = self.meets_target
        return out


def throughput(fn: Callable[[], object], items: int, *, repeat: int = 3) -> float:
    """Best-of-``repeat`` throughput of ``fn`` in items per second (``fn`` handles ``items``)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return items / best


def latency_stats(samples_s: list[float]) -> dict[str, float]:
    """Median and p99 of latency samples, in milliseconds."""
    ordered = sorted(samples_s)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median_ms": statistics.median(ordered) * 1e3, "p99_ms": p99 * 1e3, "n": len(ordered)}


async def round_trips(
    op: Callable[[], Awaitable[object]], *, n: int = 500, warmup: int = 30
) -> list[float]:
    """Wall seconds of ``n`` sequential awaits of ``op`` after ``warmup`` untimed ones."""
    samples: list[float] = []
    for i in range(n + warmup):
        t0 = time.perf_counter()
        await op()
        if i >= warmup:
            samples.append(time.perf_counter() - t0)
    return samples
