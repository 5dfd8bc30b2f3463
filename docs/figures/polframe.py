"""Draw docs/figures/polframe.png (the frame-sign and mirror figure of docs/tracking.md).

Run: .venv/bin/python docs/figures/polframe.py
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def arrow(ax, angle_deg: float, length: float, color: str, label: str, dash: bool = False) -> None:
    a = math.radians(angle_deg)
    x, y = length * math.cos(a), length * math.sin(a)
    ax.annotate(
        "", xy=(x, y), xytext=(-x if dash else 0, -y if dash else 0),
        arrowprops={"arrowstyle": "-|>" if not dash else "-", "color": color, "lw": 2,
                    "linestyle": "--" if dash else "-"},
    )
    ax.text(1.12 * x, 1.12 * y, label, color=color, ha="center", va="center", fontsize=11)


def main() -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    theta, phi, alpha = 35.0, 10.0, 35.0
    ax = axes[0]
    ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="0.7"))
    arrow(ax, 0.0, 1.0, "k", "ê_az (station H)")
    arrow(ax, 90.0, 1.0, "k", "ê_el = k × ê_az")
    arrow(ax, theta, 0.9, "tab:red", "satellite H")
    ax.add_patch(matplotlib.patches.Arc((0, 0), 0.6, 0.6, theta1=0, theta2=theta, color="tab:red"))
    ax.text(0.42, 0.13, "θ", color="tab:red", fontsize=13)
    ax.plot(0, 0, "o", ms=14, mfc="white", mec="k")
    ax.plot(0, 0, "k.", ms=6)
    ax.text(-0.95, -1.12, "k (satellite → station) points out of the page, at the reader:\n"
            "the receiver looks back toward the source; θ > 0 counter-clockwise",
            fontsize=8.5)
    ax.set_title("frame angle θ: right-handed about k")
    ax = axes[1]
    ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="0.7"))
    arrow(ax, phi, 1.0, "tab:blue", "plate axis φ", dash=True)
    arrow(ax, alpha, 0.9, "tab:red", "in: α")
    arrow(ax, 2 * phi - alpha, 0.9, "tab:green", "out: 2φ − α")
    ax.text(-0.95, -1.12, "a half-wave plate (and every fold mirror) reflects: α → 2φ − α.\n"
            "Plate at θ/2: θ cancels, a mirror remains (a → −β);\n"
            "behind a mirror train (axis ρ), plate at ρ − θ/2: a rotation, no mirror",
            fontsize=8.5)
    ax.set_title("optics are reflections, not rotations")
    for ax in axes:
        ax.set_xlim(-1.35, 1.35)
        ax.set_ylim(-1.35, 1.35)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(Path(__file__).with_suffix(".png"), dpi=100)


if __name__ == "__main__":
    main()
