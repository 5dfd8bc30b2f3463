"""Atmospheric refraction for optical pointing (degrees), scaled by pressure and temperature.

Two classic low-elevation-capable formulas (Meeus, *Astronomical Algorithms* ch. 16):

- Sæmundsson (1986): true (geometric) → apparent, R = 1.02′ / tan(h + 10.3/(h + 5.11)),
  which is what a telescope pointing at a computed position needs;
- Bennett (1982): apparent → true, R = 1′ / tan(h₀ + 7.31/(h₀ + 4.4)).

Both are for 1010 hPa and 10 °C and scale by (P/1010)·(283/(273+T)). They agree with each
other to ~0.1′ above 5° elevation. At a 3000 m site (P ≈ 700 hPa) refraction at 10° is
~3.7′ — hundreds of times the 1″ pointing budget, so it is never optional for tracking.
Below −1° both are clamped to 0 (the formula diverges and nothing is tracked there).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def _scale(pressure_hpa: float, temperature_c: float) -> float:
    return (pressure_hpa / 1010.0) * (283.0 / (273.0 + temperature_c))


def saemundsson_deg(el_true_deg: F64 | float, pressure_hpa: float, temperature_c: float) -> F64:
    """Refraction (deg) to add to a geometric elevation to get the apparent one."""
    h = np.asarray(el_true_deg, dtype=np.float64)
    hc = np.maximum(h, -1.0)
    # clamp at 0: near the zenith the cotangent goes slightly negative (formula artefact)
    r = np.maximum((1.02 / 60.0) / np.tan(np.radians(hc + 10.3 / (hc + 5.11))), 0.0)
    out: F64 = np.where(h >= -1.0, r * _scale(pressure_hpa, temperature_c), 0.0)
    return out


def bennett_deg(el_apparent_deg: F64 | float, pressure_hpa: float, temperature_c: float) -> F64:
    """Refraction (deg) to subtract from an apparent (observed) elevation to get the true one."""
    h = np.asarray(el_apparent_deg, dtype=np.float64)
    hc = np.maximum(h, -1.0)
    r = np.maximum((1.0 / 60.0) / np.tan(np.radians(hc + 7.31 / (hc + 4.4))), 0.0)
    out: F64 = np.where(h >= -1.0, r * _scale(pressure_hpa, temperature_c), 0.0)
    return out


def apparent_elevation_deg(
    el_true_deg: F64 | float, pressure_hpa: float, temperature_c: float
) -> F64:
    """Geometric → apparent elevation (deg). Pressure 0 turns refraction off (vacuum)."""
    h = np.asarray(el_true_deg, dtype=np.float64)
    out: F64 = h + saemundsson_deg(h, pressure_hpa, temperature_c)
    return out
