"""The campaign directory: the plan that survives a coordinator restart, and each result.

Layout (``[campaign] directory``)::

    plan.json                    # every window and what became of it (atomic rewrite)
    <window id>/analysis.json    # `qgs analyze` of the two bundles (qgs-analysis schema)
    <window id>/report.png       # its one-page report
    <window id>/result.json      # the compact result the coordinator publishes on MQTT

Bundles stay where each station daemon wrote them; on one machine the plan holds their
local paths. In production each site ships its bundles to the analysis host first
(docs/operations.md, "Campaigns").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from station.network.plan import Window
from station.recording.atomic import atomic_write_bytes

PLAN_VERSION = 1


class CampaignDirError(ValueError):
    """The campaign directory's plan cannot be read back (says which file and why)."""


class CampaignDir:
    """One campaign's directory (created on first write)."""

    def __init__(self, root: Path, campaign: str) -> None:
        self.root = root
        self.campaign = campaign

    @property
    def plan_path(self) -> Path:
        return self.root / "plan.json"

    def window_dir(self, window_id: str) -> Path:
        return self.root / window_id

    def check_writable(self) -> None:
        """Fail at start, not after the first pass, when results could not be written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CampaignDirError(
                f"campaign directory {self.root} is not writable: {exc}"
            ) from None

    def load_plan(self) -> list[Window]:
        """The saved plan, or [] for a new campaign."""
        try:
            body = json.loads(self.plan_path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise CampaignDirError(f"{self.plan_path}: cannot read the saved plan: {exc}") from None
        if not isinstance(body, dict) or body.get("campaign") != self.campaign:
            raise CampaignDirError(
                f"{self.plan_path} belongs to campaign {body.get('campaign')!r}, "
                f"not {self.campaign!r}; use another [campaign] directory"
                if isinstance(body, dict)
                else f"{self.plan_path}: expected a JSON object"
            )
        try:
            return [Window.from_json(w) for w in body["windows"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise CampaignDirError(f"{self.plan_path}: malformed window entry: {exc!r}") from None

    def save_plan(self, windows: list[Window]) -> None:
        body = {
            "campaign": self.campaign,
            "version": PLAN_VERSION,
            "windows": [w.to_json() for w in windows],
        }
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.plan_path, (json.dumps(body, indent=2) + "\n").encode())

    def save_result(self, window_id: str, result: dict[str, Any]) -> Path:
        path = self.window_dir(window_id) / "result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(result, indent=2) + "\n").encode())
        return path


def summarize(analysis: dict[str, Any]) -> dict[str, Any]:
    """The figures a campaign result carries, from a `qgs analyze` JSON document (one pair).

    Raw (not accidental-corrected) QBER and S: those are what a CHSH test or a key budget
    may claim; the corrected ones stay in analysis.json.
    """
    pair = analysis["pairs"][0]
    qber = (pair.get("qber") or {}).get("raw") or {}
    chsh = (pair.get("chsh") or {}).get("raw") or {}
    locality = pair.get("locality") or {}
    duration = pair.get("duration_s") or 0.0
    # Bell settings share no basis, so the QBER is the Werner-state one the measured S
    # implies: V = S/S_ideal, QBER = (1 - V)/2 (Ekert 1991; as statistics.ChshResult)
    qber_chsh = sigma_chsh = None
    if chsh.get("visibility") is not None and chsh.get("s_ideal"):
        qber_chsh = (1.0 - chsh["visibility"]) / 2.0
        sigma_chsh = chsh["sigma_s"] / abs(chsh["s_ideal"]) / 2.0
    out: dict[str, Any] = {
        "coincidences": pair["coincidences"],
        "accidentals": (pair.get("accidentals") or {}).get("mean"),
        "duration_s": duration,
        "pair_rate_hz": pair["coincidences"] / duration if duration else None,
        "qber": qber.get("qber"),
        "qber_sigma": qber.get("sigma_qber"),
        "s": chsh.get("s"),
        "s_sigma": chsh.get("sigma_s"),
        "violation_sigma": chsh.get("violation_sigma"),
        "qber_from_s": qber_chsh,
        "qber_from_s_sigma": sigma_chsh,
        "locality_fraction_spacelike": locality.get("fraction_spacelike"),
        "locality_min_margin_us": (
            locality["min_ps"] / 1e6 if locality.get("min_ps") is not None else None
        ),
        "partial": pair.get("partial", False),
        "partial_reasons": pair.get("partial_reasons", []),
        "sifted_bits": (pair.get("sifted") or {}).get("n_bits"),
    }
    if "fibre" in pair:
        out["fibre"] = pair["fibre"]
    return out
