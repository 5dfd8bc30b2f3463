"""Telescope mount drivers: Hamlib rotctld (TCP) and LX200/OnStep (serial).

Both protocols only take position commands, so both drivers share the motion logic of
:class:`drivers.mount.common.StreamedMount` (limit checks, move timeouts from distance and
velocity, streamed trajectory following, stop on cancellation).
"""
