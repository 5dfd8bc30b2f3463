"""The DLT acquisitions a driver started, written down so a restarted driver can end them.

Why: a DataLinkTarget stream lives in the DLT process, not in the client. When the process
that started it dies (kill -9, power cut of the control PC) nobody sends ``stop --id``, and
the stream goes on being fed into a PAIR socket that nobody reads. On our emulator that
holds the whole device back (its streams share one generator with back-pressure,
docs/devices/idq-emulator.md); on a real DLT it at least keeps the input's raw output busy.
protocols.md §3a documents ``stop --id <id>`` only, with no way to list the streams (``list``
is not in the reference), so the ids must be remembered by the client: this file is that
memory, one per device (SCPI host:port and DLT host:port), like a lock file.

The record is written after every ``start-stream`` and removed after a clean stop. At the next
:meth:`IDQTimeTagger.start` the driver first sends ``stop --id`` for every id left in it (a
refusal means the DLT no longer knows the id: fine) and ``REC:STOP``.

Location: ``$QGS_STATE_DIR`` if set, else ``$XDG_STATE_HOME/qgs`` (default
``~/.local/state/qgs``), sub-directory ``idq``. An unwritable location only costs the
clean-up after a crash: it is logged, never raised, and acquisition goes on.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def state_dir() -> Path:
    """Where the records live (module doc)."""
    explicit = os.environ.get("QGS_STATE_DIR")
    if explicit:
        return Path(explicit) / "idq"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "qgs" / "idq"


@dataclass(frozen=True)
class AcquisitionRecord:
    """The file that remembers one device's running DLT stream ids."""

    path: Path

    @classmethod
    def for_device(
        cls, host: str, scpi_port: int, dlt_host: str, dlt_port: int, *, root: Path | None = None
    ) -> AcquisitionRecord:
        name = f"{host}_{scpi_port}_{dlt_host}_{dlt_port}"
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", name)
        return cls((root or state_dir()) / f"{safe}.json")

    def load(self) -> list[str]:
        """Stream ids left by an earlier driver; [] when none (or the record is unreadable)."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("idq: acquisition record %s unreadable (%s); ignored", self.path, exc)
            return []
        ids = data.get("stream_ids") if isinstance(data, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            log.warning("idq: acquisition record %s has no list of stream ids; ignored", self.path)
            return []
        return list(ids)

    def save(self, stream_ids: list[str]) -> None:
        """Write ``stream_ids`` atomically (a crash mid-write leaves the previous record)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"stream_ids": stream_ids, "pid": os.getpid()}))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning(
                "idq: cannot write acquisition record %s (%s); a crash would leave its DLT "
                "streams running",
                self.path,
                exc,
            )

    def clear(self) -> None:
        """Forget the ids (after they were stopped)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("idq: cannot remove acquisition record %s (%s)", self.path, exc)
