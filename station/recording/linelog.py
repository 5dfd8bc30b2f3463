"""Append-only CSV logs of a pass (pointing, waveplate, rates), flushed periodically.

Lines are buffered by the file object and pushed to the kernel at most every ``flush_s``
clock seconds, so a crash loses at most that much log; :meth:`LineLog.close` fsyncs. Values
are formatted with fixed decimals (``t_s`` to the microsecond) so the files diff cleanly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from drivers.clock import Clock
from station.recording.errors import RecordingError


class LineLog:
    """One CSV file with a header line; rows appended with :meth:`append`."""

    def __init__(self, path: Path, columns: Sequence[str], *, clock: Clock, flush_s: float) -> None:
        self.path = path
        self.columns = tuple(columns)
        self._clock = clock
        self._flush_s = flush_s
        self.rows = 0
        try:
            self._fh = open(path, "x", encoding="ascii", newline="\n")  # noqa: SIM115
            self._fh.write(",".join(self.columns) + "\n")
        except OSError as exc:
            raise RecordingError(f"cannot create log: {exc.strerror or exc}", path=path) from exc
        self._last_flush = clock.now()

    def append(self, values: Sequence[float | int | str]) -> None:
        """Append one row; ``values`` must match the columns (floats written with 6 decimals)."""
        if len(values) != len(self.columns):
            raise ValueError(
                f"{self.path.name}: got {len(values)} values, expected {len(self.columns)} "
                f"({', '.join(self.columns)})"
            )
        line = ",".join(f"{v:.6f}" if isinstance(v, float) else str(v) for v in values)
        try:
            self._fh.write(line + "\n")
            self.rows += 1
            now = self._clock.now()
            if now - self._last_flush >= self._flush_s:
                self._fh.flush()
                self._last_flush = now
        except (OSError, ValueError) as exc:
            raise RecordingError(f"cannot append to log: {exc}", path=self.path) from exc

    def close(self) -> None:
        """Flush and fsync (idempotent)."""
        if self._fh.closed:
            return
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        except OSError as exc:
            raise RecordingError(
                f"cannot close log: {exc.strerror or exc}", path=self.path
            ) from exc
