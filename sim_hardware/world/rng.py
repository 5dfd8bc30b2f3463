"""Keyed random streams: every random number of the world is a pure function of its key.

A stream is identified by (seed, purpose, *indices), e.g. (seed, PAIRS, slice k) for the
pairs emitted in emission slice k. Both stations derive the *same* generator for common
draws, so a pair is detected or lost consistently whichever station asks first and with
whatever slice boundaries (numpy SeedSequence spawn keys; PCG64).
"""

from __future__ import annotations

import enum

import numpy as np


class Stream(enum.IntEnum):
    """Purposes of random streams (part of the key; never renumber)."""

    COUNTS = 1  #: Poisson counts of pairs reaching A only / B only / both, per slice
    PAIRS_BOTH = 2  #: emission times and per-station bits of pairs reaching both stations
    PAIRS_ONLY = 3  #: emission times and bits of pairs reaching one station only
    LOCAL = 4  #: station-local draws: jitter, afterpulses
    BACKGROUND = 5  #: background and dark counts per detection block
    SCINTILLATION = 6  #: per-slice scintillation factors
    CLOCK = 7  #: clock random-walk increments
    PPS = 8  #: PPS jitter


def generator(seed: int, stream: Stream, *indices: int) -> np.random.Generator:
    """The generator of key (seed, stream, *indices); indices must be >= 0."""
    ss = np.random.SeedSequence(seed, spawn_key=(int(stream), *indices))
    return np.random.Generator(np.random.PCG64(ss))
