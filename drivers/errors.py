"""One error hierarchy for every device, config and wire problem.

Every message says *what* went wrong, *where* (device URL or file/key) and, where there is
one, *what to do*. Callers catch the narrowest class they can act on:

- :class:`DeviceError` — base for anything a device or its transport did.
  - :class:`NotConnected` — I/O attempted on a closed or never-opened device.
  - :class:`DeviceTimeout` — an awaited reply or motion did not finish within its bound.
  - :class:`ProtocolError` — the device answered, but not in the documented format.
  - :class:`LimitViolation` — a commanded target is outside a soft or firmware limit.
  - :class:`DeviceFault` — the device reports an error state (stall, error code, ...).
- :class:`ConfigError` — malformed configuration (TOML file, key, allowed values).
  - :class:`DeviceURLError` — unknown scheme or malformed device URL.
"""

from __future__ import annotations


class DeviceError(Exception):
    """A device or its transport failed.

    Args:
        message: what went wrong, in one sentence.
        device: the device URL or name (where it went wrong).
        hint: what the operator can do about it.
    """

    def __init__(self, message: str, *, device: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.device = device
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"{self.device}: {self.message}" if self.device else self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class NotConnected(DeviceError):
    """I/O was attempted on a device that is not (or no longer) connected."""


class DeviceTimeout(DeviceError):
    """A reply or a motion did not complete within its (computed) bound."""


class ProtocolError(DeviceError):
    """The device replied with bytes that do not match the documented protocol."""


class LimitViolation(DeviceError):
    """A target lies outside the allowed range; nothing was commanded."""


class DeviceFault(DeviceError):
    """The device reports an error state (motor stall, error code, latch-up, ...)."""


class ConfigError(ValueError):
    """Configuration is malformed.

    Args:
        message: what is wrong and what is expected (allowed values or range).
        source: the file (or other origin) the value came from.
        key: the dotted key inside that file, e.g. ``site.latitude_deg``.
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        self.message = message
        self.source = source
        self.key = key
        where = ":".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class DeviceURLError(ConfigError):
    """A device URL has an unknown scheme or is malformed."""
