"""A ground station's location, local atmosphere and azimuth-dependent horizon mask."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from station.tracking.earth import enu_matrix, geodetic_to_itrs

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class HorizonMask:
    """Lowest usable elevation (deg) as a function of azimuth (deg), linearly interpolated.

    ``points`` are (azimuth, elevation) pairs; azimuth wraps at 360 so the mask is periodic.
    An empty mask means a flat horizon (0 deg). The site's ``min_elevation_deg`` is applied
    on top: the usable limit is the larger of the two.
    """

    points: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        for az, el in self.points:
            if not (0.0 <= az <= 360.0 and -90.0 <= el <= 90.0):
                raise ValueError(f"horizon mask point ({az}, {el}) outside az [0,360], el [-90,90]")

    def elevation_deg(self, az_deg: F64 | float) -> F64:
        """Mask elevation at the given azimuths (any wrap; folded into [0, 360))."""
        az = np.mod(np.asarray(az_deg, dtype=np.float64), 360.0)
        if not self.points:
            return np.zeros_like(az)
        pts = sorted(self.points)
        xs = np.array([p[0] for p in pts])
        ys = np.array([p[1] for p in pts])
        # periodic: extend by one point on each side
        xs = np.concatenate([[xs[-1] - 360.0], xs, [xs[0] + 360.0]])
        ys = np.concatenate([[ys[-1]], ys, [ys[0]]])
        out: F64 = np.interp(az, xs, ys)
        return out


@dataclass(frozen=True)
class Site:
    """Station position (WGS84 geodetic), local weather for refraction and the sky limits."""

    name: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    pressure_hpa: float = 0.0
    temperature_c: float = 10.0
    min_elevation_deg: float = 10.0
    horizon_mask: HorizonMask = field(default_factory=HorizonMask)

    def __post_init__(self) -> None:
        if not -90.0 <= self.latitude_deg <= 90.0:
            raise ValueError(f"latitude {self.latitude_deg} outside [-90, 90]")
        if not -180.0 <= self.longitude_deg <= 360.0:
            raise ValueError(f"longitude {self.longitude_deg} outside [-180, 360]")
        if not -500.0 <= self.altitude_m <= 9000.0:
            raise ValueError(f"altitude {self.altitude_m} m outside [-500, 9000]")

    @property
    def itrs_km(self) -> F64:
        """Earth-fixed Cartesian position (km)."""
        return geodetic_to_itrs(self.latitude_deg, self.longitude_deg, self.altitude_m)

    @property
    def enu(self) -> F64:
        """Rows: East, North, Up unit vectors in the Earth-fixed frame."""
        return enu_matrix(self.latitude_deg, self.longitude_deg)

    def limit_deg(self, az_deg: F64 | float) -> F64:
        """Usable elevation limit at ``az_deg``: max(min_elevation_deg, horizon mask)."""
        out: F64 = np.maximum(self.horizon_mask.elevation_deg(az_deg), self.min_elevation_deg)
        return out
