"""Fixtures for the recording tests: deterministic event streams."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from drivers.datatypes import EventBlock

MakeBlocks = Callable[..., list[EventBlock]]


def make_blocks(
    n_blocks: int, per_block: int, *, spacing_ps: int = 1000, seed: int = 1, first_seq: int = 0
) -> list[EventBlock]:
    """Consecutive blocks of a sorted stream: jittered times, channels 0..3 (and 7)."""
    rng = np.random.default_rng(seed)
    total = n_blocks * per_block
    gaps = rng.integers(1, 2 * spacing_ps, total, dtype=np.int64)
    t = np.cumsum(gaps).astype(np.int64)
    ch = rng.choice(np.array([0, 1, 2, 3, 7], dtype=np.uint8), total)
    return [
        EventBlock(first_seq + i, t[i * per_block : (i + 1) * per_block].copy(),
                   ch[i * per_block : (i + 1) * per_block].copy())
        for i in range(n_blocks)
    ]  # fmt: skip


@pytest.fixture
def blocks_factory() -> MakeBlocks:
    return make_blocks
