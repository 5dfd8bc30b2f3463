"""The station operator daemon: pass execution, MQTT command/telemetry API, watchdogs.

Pieces, one concept each:

- :mod:`~station.daemon.settings` — the daemon's config sections;
- :mod:`~station.daemon.states` — summary and pass state machines;
- :mod:`~station.daemon.devices` — the station's devices behind supervisors;
- :mod:`~station.daemon.schedule` — predicted, booked and cancelled passes;
- :mod:`~station.daemon.pass_run` — executing one pass (pre-position → track → stow);
- :mod:`~station.daemon.api` — the MQTT command table;
- :mod:`~station.daemon.controller` — the daemon itself;
- :mod:`~station.daemon.commands` — ``qgs station run``.

This package init stays import-light: station/config.py imports the settings module.
"""
