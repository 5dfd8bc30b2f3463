"""Optical tropospheric delay of the downlink, station side: Mendes–Pavlis zenith + FCULa.

Why it matters: the two photons of a pair cross the atmosphere at different elevations, so
the delay does not cancel in the differential time of flight. At a 3200 m site (~690 hPa)
the zenith delay is ~1.6 m (5.4 ns) and ~9 m (30 ns) at 10° elevation, versus a coincidence
window of ~1 ns: the orbit prior must carry it.

Model (the IERS Conventions 2010 recommendation for optical ranging, IERS TN36 §9.2):

- zenith delay, Mendes & Pavlis (2004), GRL 31, L14602, TN36 eqs (9.3)–(9.7)::

      d_h = 0.002416579 f_h(λ) / f_s(φ, H) · P                      (hydrostatic, m, P in hPa)
      d_nh = 1e-4 (5.316 f_nh(λ) − 3.759 f_h(λ)) e / f_s(φ, H)       (water vapour e, hPa)
      f_s = 1 − 0.00266 cos 2φ − 0.00000028 H                       (H in m)

  with the group-refractivity dispersion f_h, f_nh of Ciddor (1996) at λ (µm), 375 ppm CO₂;
- mapping to the elevation, FCULa of Mendes et al. (2002), GRL 29(10) 1414, TN36 Table 9.1:
  a continued fraction in sin E whose three coefficients depend on the site temperature
  (°C), cos φ and the height (m).

The world (sim_hardware) computes its truth with Marini & Murray (1973) instead, an
independent formulation with its own elevation law; the two agree to ~1 mm at the zenith
and to a few cm at 10° (docs/analysis-timing.md tabulates it). The wet part is ~1.4e-4 m
per hPa of water vapour at 810 nm (< 1 mm for a dry high site): it is kept for completeness
but the station configs give no humidity, so it defaults to 0.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
C_M_S = 299_792_458.0
#: Micius downlink wavelength (µm); the dispersion changes the delay by ~2 % over 0.5–1.1 µm
WAVELENGTH_UM = 0.810

# FCULa coefficients a_i = a_i0 + a_i1·T(°C) + a_i2·cos φ + a_i3·H(m), TN36 Table 9.1
_FCULA = (
    (12100.8e-7, 1729.5e-9, 319.1e-7, -1847.8e-11),
    (30496.5e-7, 234.6e-8, -103.5e-6, -185.6e-10),
    (6877.7e-5, 197.2e-7, -345.8e-5, 106.0e-9),
)


def dispersion(wavelength_um: float) -> tuple[float, float]:
    """(f_h, f_nh): hydrostatic and non-hydrostatic dispersion factors, TN36 (9.5), (9.7)."""
    s2 = (1.0 / wavelength_um) ** 2
    k0, k1, k2, k3 = 238.0185, 19990.975, 57.362, 579.55174
    c_co2 = 1.0 + 0.534e-6 * (375.0 - 450.0)
    f_h = 1e-2 * (k1 * (k0 + s2) / (k0 - s2) ** 2 + k3 * (k2 + s2) / (k2 - s2) ** 2) * c_co2
    f_nh = 0.003101 * (295.235 + 3 * 2.6422 * s2 + 5 * -0.032380 * s2**2 + 7 * 0.004028 * s2**3)
    return f_h, f_nh


def zenith_delay_m(
    pressure_hpa: float,
    latitude_deg: float,
    altitude_m: float,
    *,
    water_vapour_hpa: float = 0.0,
    wavelength_um: float = WAVELENGTH_UM,
) -> float:
    """Zenith optical delay (m) at the site, Mendes–Pavlis (TN36 eqs 9.3, 9.6)."""
    f_h, f_nh = dispersion(wavelength_um)
    f_s = 1.0 - 0.00266 * math.cos(2.0 * math.radians(latitude_deg)) - 0.00000028 * altitude_m
    hydro = 0.002416579 * f_h / f_s * pressure_hpa
    wet = 1e-4 * (5.316 * f_nh - 3.759 * f_h) * water_vapour_hpa / f_s
    return hydro + wet


def fcula(el_deg: F64, latitude_deg: float, altitude_m: float, temperature_c: float) -> F64:
    """FCULa mapping function (slant/zenith ratio) at geometric elevations ``el_deg``."""
    cphi = math.cos(math.radians(latitude_deg))
    a1, a2, a3 = (
        c0 + c1 * temperature_c + c2 * cphi + c3 * altitude_m for c0, c1, c2, c3 in _FCULA
    )
    # below ~3° the continued fraction leaves its fitted range; hold it there (no link anyway)
    s = np.sin(np.radians(np.maximum(np.asarray(el_deg, dtype=np.float64), 3.0)))
    top = 1.0 + a1 / (1.0 + a2 / (1.0 + a3))
    out: F64 = top / (s + a1 / (s + a2 / (s + a3)))
    return out


def slant_delay_m(
    el_deg: F64,
    *,
    pressure_hpa: float,
    temperature_c: float,
    latitude_deg: float,
    altitude_m: float,
    water_vapour_hpa: float = 0.0,
    wavelength_um: float = WAVELENGTH_UM,
) -> F64:
    """Optical path excess (m) at elevations ``el_deg``; 0 when ``pressure_hpa`` ≤ 0 (vacuum,
    the convention of :class:`station.tracking.site.Site`)."""
    el = np.asarray(el_deg, dtype=np.float64)
    if pressure_hpa <= 0.0:
        return np.zeros_like(el)
    zd = zenith_delay_m(
        pressure_hpa,
        latitude_deg,
        altitude_m,
        water_vapour_hpa=water_vapour_hpa,
        wavelength_um=wavelength_um,
    )
    out: F64 = zd * fcula(el, latitude_deg, altitude_m, temperature_c)
    return out
