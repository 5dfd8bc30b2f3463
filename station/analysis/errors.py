"""Typed analysis errors: one sentence saying what is wrong and what is expected, and an exit code.

Each failure a user can meet (bundles of different passes, no overlap, a failed verify, a
truncated chunk, no channel map, no PPS where one is required, a flat correlation, an
output that exists) has its own :class:`AnalysisError` subclass with a distinct exit code,
so ``qgs analyze`` in a script can tell them apart without parsing text.
"""

from __future__ import annotations


class AnalysisError(Exception):
    """Base class. ``exit_code`` is what ``qgs analyze`` returns for this failure."""

    exit_code = 10

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BundleUnusable(AnalysisError):
    """A bundle cannot be read or did not verify (missing manifest, bad chunk, hash mismatch)."""

    exit_code = 11


class BundlesMismatch(AnalysisError):
    """Two bundles do not belong together (different passes, same station, no time overlap)."""

    exit_code = 12


class MissingMetadata(AnalysisError):
    """The manifest lacks what the analysis needs (channel map, analyzer settings, TLE, site)."""

    exit_code = 13


class NoTimeReference(AnalysisError):
    """No PPS edges and no usable anchor: event times cannot be put on UTC."""

    exit_code = 14


class NoCorrelation(AnalysisError):
    """The offset search found no significant peak (flat correlation)."""

    exit_code = 15


class OutputExists(AnalysisError):
    """An output file exists and ``--force`` was not given."""

    exit_code = 16


class KeyDistillationFailed(AnalysisError):
    """Error correction or verification failed: no key is produced from this block."""

    exit_code = 17
