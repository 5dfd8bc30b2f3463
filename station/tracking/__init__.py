"""Satellite tracking: orbit elements, fast pointing, passes, mount plans, safety, polarization.

Modules: :mod:`elements` (TLE/OMM), :mod:`earth` (UT1, polar motion, TEME→ITRS),
:mod:`site`, :mod:`ephemeris` (look angles, light time, point-ahead), :mod:`refraction`,
:mod:`sunmoon`, :mod:`passes` (AOS/TCA/LOS, common windows), :mod:`mountplan` (wrap,
keyhole, dynamics, pre-position), :mod:`safety` (the gate), :mod:`polframe` (θ(t), HWP),
:mod:`planner` (the chain for one pass), :mod:`plot`, :mod:`commands` (CLI).
"""
