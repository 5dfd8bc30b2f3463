"""Atmospheric refraction of the line of sight (the world's own implementation).

A station points its telescope at the *apparent* (refracted) position of the satellite; the
world must therefore measure the pointing error against the apparent direction, not the
geometric one, or a perfectly tracking station would lose signal at low elevation (the
refraction at 10-20 deg, ~0.03-0.06 deg at a 3000 m site, is a large fraction of a 0.1 deg
receiver field of view).

Model: Sæmundsson's formula for the refraction of a body at *true* (geometric) altitude h
(Sky & Telescope 72, 70 (1986); Meeus, Astronomical Algorithms, eq. 16.4):

    R = 1.02' / tan(h + 10.3° / (h + 5.11°))

scaled by the local pressure P and temperature T (Meeus: × (P / 1010 hPa) · (283 K / T)).
It is consistent with Bennett's formula (apparent-altitude input, used by skyfield) to about
0.1' above 5° elevation; the tests compare the two. Below -1° true altitude the value is held
at its -1° value (the link is down there anyway). The slight dispersion between visible and
810 nm light (~1-2 % of R) is ignored.

Default weather from the site altitude: ICAO standard atmosphere (P = 1013.25 hPa ×
(1 - 2.25577e-5 h)^5.25588, T = 15 °C - 6.5 K/km · h).
"""

from __future__ import annotations

import math

#: True altitude (deg) below which the refraction is held constant.
MIN_ALTITUDE_DEG = -1.0
#: Sæmundsson's reference conditions.
REFERENCE_PRESSURE_HPA = 1010.0
REFERENCE_TEMPERATURE_K = 283.0


def standard_pressure_hpa(altitude_m: float) -> float:
    """ICAO standard-atmosphere pressure (hPa) at ``altitude_m`` above sea level."""
    return float(1013.25 * (1.0 - 2.25577e-5 * altitude_m) ** 5.25588)


def standard_temperature_c(altitude_m: float) -> float:
    """ICAO standard-atmosphere temperature (°C) at ``altitude_m`` (troposphere)."""
    return 15.0 - 0.0065 * altitude_m


def refraction_deg(true_el_deg: float, pressure_hpa: float, temperature_c: float) -> float:
    """Refraction (deg) to add to a geometric elevation to get the apparent one.

    ``pressure_hpa`` 0 means vacuum (no refraction).
    """
    if pressure_hpa <= 0.0:
        return 0.0
    h = max(true_el_deg, MIN_ALTITUDE_DEG)
    r_arcmin = 1.02 / math.tan(math.radians(h + 10.3 / (h + 5.11)))
    # The formula gives -0.0019' at the zenith; Meeus's correction makes that 0.
    r_arcmin = max(0.0, r_arcmin + 0.0019279)
    scale = (pressure_hpa / REFERENCE_PRESSURE_HPA) * (
        REFERENCE_TEMPERATURE_K / (273.15 + temperature_c)
    )
    return r_arcmin * scale / 60.0


def apparent_elevation_deg(true_el_deg: float, pressure_hpa: float, temperature_c: float) -> float:
    """Geometric → apparent elevation (deg)."""
    return true_el_deg + refraction_deg(true_el_deg, pressure_hpa, temperature_c)
