"""Tropospheric delay of the optical downlink (the world's own implementation).

Every photon the world detects carries this delay on top of the vacuum light time
(:mod:`sim_hardware.world.geometry`): at a 3200 m site it is ~1.6 m (5.4 ns) at the zenith and
~9 m (30 ns) at 10° elevation, and the two stations of a pair see different elevations, so
it survives in the differential time of flight the analysis must predict.

Model: Marini & Murray (1973), "Correction of laser range tracking data for atmospheric
refraction at elevations above 10 degrees", NASA GSFC X-591-73-351 — the classic satellite
laser ranging formula, as printed in the IERS Standards (McCarthy 1992, TN13 ch. 9)::

    Δ = f(λ)/f(φ, H) · (A + B) / (sin E + (B/(A+B)) / (sin E + 0.01))
    A = 0.002357 P + 0.000141 e
    B = 1.084e-8 P T K + 4.734e-8 (P²/T) · 2/(3 − 1/K)
    K = 1.163 − 0.00968 cos 2φ − 0.00104 T + 0.00001435 P
    f(λ) = 0.9650 + 0.0164/λ² + 0.000228/λ⁴            (λ in µm)
    f(φ, H) = 1 − 0.0026 cos 2φ − 0.00031 H             (H in km)

P in hPa, T in K, e (water vapour) in hPa, E the geometric elevation. It is deliberately a
different formulation from the station's (Mendes–Pavlis zenith delay with the FCULa mapping,
station/analysis/troposphere.py): a common-mode error cannot hide; the expected disagreement
is ~1 mm at the zenith and a few cm at 10° (docs/analysis-timing.md). Water vapour is taken
as 0 (the world config has no humidity; at 810 nm e = 5 hPa adds < 1 mm). Pressure 0 means
vacuum (the world's refraction convention), hence no delay.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
#: the Micius downlink (µm)
WAVELENGTH_UM = 0.810
#: below this elevation (deg) the formula is held constant (it diverges; no link there)
MIN_ELEVATION_DEG = 1.0


def marini_murray_m(
    el_deg: F64,
    *,
    pressure_hpa: float,
    temperature_c: float,
    latitude_deg: float,
    altitude_m: float,
    water_vapour_hpa: float = 0.0,
    wavelength_um: float = WAVELENGTH_UM,
) -> F64:
    """One-way optical path excess (m) at geometric elevations ``el_deg`` (deg)."""
    el = np.asarray(el_deg, dtype=np.float64)
    if pressure_hpa <= 0.0:
        return np.zeros_like(el)
    p, t_k, e = pressure_hpa, temperature_c + 273.15, water_vapour_hpa
    cos2phi = math.cos(2.0 * math.radians(latitude_deg))
    k = 1.163 - 0.00968 * cos2phi - 0.00104 * t_k + 0.00001435 * p
    a = 0.002357 * p + 0.000141 * e
    b = 1.084e-8 * p * t_k * k + 4.734e-8 * (p * p / t_k) * 2.0 / (3.0 - 1.0 / k)
    f_lambda = 0.9650 + 0.0164 / wavelength_um**2 + 0.000228 / wavelength_um**4
    f_site = 1.0 - 0.0026 * cos2phi - 0.00031 * altitude_m / 1000.0
    s = np.sin(np.radians(np.maximum(el, MIN_ELEVATION_DEG)))
    out: F64 = (f_lambda / f_site) * (a + b) / (s + (b / (a + b)) / (s + 0.01))
    return out


def marini_murray_rate_m(el_deg: F64, el_rate_deg_s: F64, **weather: float) -> F64:
    """Time derivative (m/s) of the delay for elevations changing at ``el_rate_deg_s``.

    By a central difference in elevation (step 1e-3 deg: truncation ~1e-9 relative, far
    below the cubic interpolation it feeds); ``weather`` as for :func:`marini_murray_m`.
    """
    h = 1e-3
    el = np.asarray(el_deg, dtype=np.float64)
    d = (marini_murray_m(el + h, **weather) - marini_murray_m(el - h, **weather)) / (2.0 * h)
    out: F64 = d * np.asarray(el_rate_deg_s, dtype=np.float64)
    return out
