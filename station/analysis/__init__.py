"""Two stations' pass bundles → clock offset, coincidences, QBER, CHSH S and secure key.

Modules, in the order the chain runs them (:mod:`station.analysis.pipeline`):
:mod:`bundles` (read and verify), :mod:`timetransfer` (PPS → UTC), :mod:`orbitprior` and
:mod:`troposphere` (differential time of flight), :mod:`offset` / :mod:`offset_fft` (residual
offset and drift), :mod:`coincidences`, :mod:`statistics`, :mod:`key` (BBM92 distillation),
:mod:`schema` and :mod:`report` (outputs); :mod:`commands` is ``qgs analyze``;
:mod:`synthetic` makes known-answer streams for tests and benches. docs/analysis.md.
"""
