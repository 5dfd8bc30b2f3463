"""VISA resources through pyvisa with the pyvisa-py backend (``ResourceManager("@py")``).

pyvisa is blocking, so every call runs in a worker thread (``asyncio.to_thread``) while
holding a lock per resource name: a VISA session is not thread-safe, and two transports
opened on one resource must not interleave. The VISA timeout is set from the remaining
bound before each call, so a worker thread never outlives its read by more than one bound.

Reads are raw bytes; framing is done by :class:`~drivers.transport.buffered.BufferedTransport`:

- ``ASRL`` (serial, including pty slaves ``ASRL/dev/pts/N::INSTR``, protocols.md §4):
  wait for one byte, then take whatever else is already buffered (``VI_ATTR_ASRL_AVAIL_NUM``).
  Nothing received is lost on a timeout.
- ``TCPIP::host::port::SOCKET``: a raw socket has no end-of-message, so the termination
  character is enabled per read (the terminator's last byte); pyvisa-py then returns at
  that byte, or with what has arrived once the line goes quiet. pyvisa-py reports a closed
  peer only as a timeout; after a timeout we peek at its socket to tell the two apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import threading
from typing import Any

import pyvisa
from pyvisa import constants
from pyvisa.errors import VisaIOError

from drivers.errors import DeviceURLError, NotConnected
from drivers.transport.buffered import BufferedTransport
from drivers.transport.url import SerialSettings, VisaAddress

log = logging.getLogger(__name__)

_PARITY = {
    "N": constants.Parity.none,
    "E": constants.Parity.even,
    "O": constants.Parity.odd,
    "M": constants.Parity.mark,
    "S": constants.Parity.space,
}
_STOPBITS = {
    1.0: constants.StopBits.one,
    1.5: constants.StopBits.one_and_a_half,
    2.0: constants.StopBits.two,
}

#: VISA "success" codes pyvisa would otherwise turn into warnings on a raw read
_READ_STATUS_OK = (
    constants.StatusCode.success_max_count_read,
    constants.StatusCode.success_termination_character_read,
)

_DISCARD_CHUNK = 4096  #: bytes per read when flushing a socket's pending input
_DISCARD_PASSES = 64  #: at most this many chunks are flushed by one reset_input

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_manager: pyvisa.ResourceManager | None = None


def _resource_lock(resource: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(resource.upper(), threading.Lock())


def _resource_manager() -> pyvisa.ResourceManager:
    """One pyvisa-py resource manager per process (created on first use)."""
    global _manager
    with _locks_guard:
        if _manager is None:
            _manager = pyvisa.ResourceManager("@py")
        return _manager


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000.0))


def _serial_options(settings: SerialSettings) -> dict[str, Any]:
    flow = constants.ControlFlow.none
    if settings.xonxoff:
        flow = constants.ControlFlow.xon_xoff
    elif settings.rtscts:
        flow = constants.ControlFlow.rts_cts
    return {
        "baud_rate": settings.baud,
        "data_bits": settings.bytesize,
        "parity": _PARITY[settings.parity],
        "stop_bits": _STOPBITS[settings.stopbits],
        "flow_control": flow,
    }


class VisaTransport(BufferedTransport):
    """A VISA resource as a byte transport (use :func:`open_visa`)."""

    timeout_hint = "check that the instrument is on, the resource name and the baud rate"

    def __init__(self, address: VisaAddress, resource: Any, timeout: float) -> None:
        super().__init__(address.url, timeout)
        self._address = address
        self._resource: Any = resource
        self._serial = address.settings is not None
        self._lock = _resource_lock(address.resource)

    # -- blocking parts (worker thread, resource lock held) --------------------------------

    def _blocking_read(self, timeout: float, terminator: bytes | None, want: int) -> bytes:
        with self._lock:
            res = self._resource
            if res is None:
                return b""
            res.timeout = _ms(timeout)
            try:
                with res.ignore_warning(*_READ_STATUS_OK):
                    return self._read_chunk(res, terminator, want)
            except VisaIOError as exc:
                if exc.error_code != constants.StatusCode.error_timeout:
                    raise OSError(f"VISA error {exc.abbreviation}: {exc.description}") from exc
                if not self._serial and self._socket_closed(res):
                    return b""
                raise TimeoutError from exc

    def _read_chunk(self, res: Any, terminator: bytes | None, want: int) -> bytes:
        if self._serial:
            first, _ = res.visalib.read(res.session, 1)
            available = int(res.get_visa_attribute(constants.VI_ATTR_ASRL_AVAIL_NUM))
            rest = b""
            if available and want > 1:
                rest, _ = res.visalib.read(res.session, min(available, want - 1))
            return bytes(first) + bytes(rest)
        res.set_visa_attribute(constants.VI_ATTR_TERMCHAR_EN, terminator is not None)
        if terminator is not None:
            res.set_visa_attribute(constants.VI_ATTR_TERMCHAR, terminator[-1])
        data, _ = res.visalib.read(res.session, want)
        return bytes(data)

    def _socket_closed(self, res: Any) -> bool:
        """Whether a TCPIP SOCKET peer has closed (pyvisa-py internals, best effort)."""
        sock = _visa_socket(res)
        if sock is None:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _blocking_write(self, data: bytes, timeout: float) -> None:
        with self._lock:
            res = self._resource
            if res is None:
                raise OSError("the VISA resource is closed")
            res.timeout = _ms(timeout)
            try:
                res.write_raw(data)
            except VisaIOError as exc:
                if exc.error_code == constants.StatusCode.error_timeout:
                    raise TimeoutError from exc
                raise OSError(f"VISA error {exc.abbreviation}: {exc.description}") from exc

    def _blocking_discard(self) -> None:
        with self._lock:
            res = self._resource
            if res is None:
                return
            with res.ignore_warning(*_READ_STATUS_OK):
                if self._serial:
                    available = int(res.get_visa_attribute(constants.VI_ATTR_ASRL_AVAIL_NUM))
                    if available:
                        res.visalib.read(res.session, available)
                    return
                # A socket has no "bytes available" query: read with a 1 ms timeout until
                # nothing more comes (bounded; each pass drops one chunk).
                res.timeout = 1
                res.set_visa_attribute(constants.VI_ATTR_TERMCHAR_EN, False)
                for _ in range(_DISCARD_PASSES):
                    try:
                        data, _ = res.visalib.read(res.session, _DISCARD_CHUNK)
                    except VisaIOError:
                        return
                    if not data:
                        return

    def _blocking_close(self) -> None:
        with self._lock:
            res, self._resource = self._resource, None
            if res is not None:
                with contextlib.suppress(VisaIOError, OSError):
                    res.close()

    # -- BufferedTransport hooks -----------------------------------------------------------

    async def _receive(self, timeout: float, *, terminator: bytes | None, want: int) -> bytes:
        return await asyncio.to_thread(self._blocking_read, timeout, terminator, want)

    async def _send(self, data: bytes, timeout: float) -> None:
        await asyncio.to_thread(self._blocking_write, data, timeout)

    async def _discard_pending(self) -> None:
        try:
            await asyncio.to_thread(self._blocking_discard)
        except (VisaIOError, OSError) as exc:
            raise self._lost("discarding input", exc) from exc

    async def _shutdown(self) -> None:
        await asyncio.to_thread(self._blocking_close)


def _visa_socket(res: Any) -> socket.socket | None:
    """The TCP socket under a pyvisa-py SOCKET session, if it has one (internals)."""
    session = getattr(res.visalib, "sessions", {}).get(res.session)
    sock = getattr(session, "interface", None)
    return sock if isinstance(sock, socket.socket) else None


def _blocking_open(address: VisaAddress, timeout: float) -> Any:
    manager = _resource_manager()
    options: dict[str, Any] = {"open_timeout": _ms(timeout), "timeout": _ms(timeout)}
    if address.settings is not None:
        options.update(_serial_options(address.settings))
    with _resource_lock(address.resource):
        res: Any = manager.open_resource(address.resource, **options)
        if address.settings is not None:
            # Raw bytes: no end-of-message on the termination character; we frame ourselves.
            res.set_visa_attribute(constants.VI_ATTR_ASRL_END_IN, constants.VI_ASRL_END_NONE)
            res.set_visa_attribute(constants.VI_ATTR_TERMCHAR_EN, False)
        else:
            # pyvisa-py's SOCKET default suppresses END, so bytes that arrived without the
            # termination character are only handed over at the timeout, and then dropped
            # with the error. Without suppression a read returns them once the line is quiet.
            res.set_visa_attribute(constants.VI_ATTR_SUPPRESS_END_EN, False)
            # pyvisa-py treats a refused connection as connected (select reports the failed
            # socket writable); the socket's pending error tells the truth.
            sock = _visa_socket(res)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if sock else 0
            if error:
                res.close()
                raise OSError(error, os.strerror(error))
        return res


async def open_visa(address: VisaAddress, *, timeout: float) -> VisaTransport:
    """Open ``address.resource`` with pyvisa-py in a worker thread (bounded by ``timeout``)."""
    try:
        async with asyncio.timeout(timeout + 1.0):  # pyvisa's own open_timeout fires first
            res = await asyncio.to_thread(_blocking_open, address, timeout)
    except TimeoutError:
        raise NotConnected(
            f"VISA resource {address.resource} did not open within {timeout:g} s",
            device=address.url,
        ) from None
    except ValueError as exc:
        raise DeviceURLError(
            f"{address.url!r}: pyvisa rejected the resource: {exc}", key="url"
        ) from exc
    except (VisaIOError, OSError) as exc:
        raise NotConnected(
            f"cannot open VISA resource {address.resource}: {exc}",
            device=address.url,
            hint="check the resource name, that the instrument or emulator is running, "
            "and permissions on the device",
        ) from exc
    log.debug("opened %s", address.url)
    return VisaTransport(address, res, timeout)
