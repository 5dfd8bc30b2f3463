"""Byte-exact protocol scripts for driver unit tests (in the spirit of PyMeasure's).

A script is a list of ``(request, reply)`` pairs of bytes::

    async with expected_protocol([(b"p\\n", b"10.00\\n20.00\\n")]) as transport:
        mount = RotctldMount(transport, clock)
        ...

- each ``write`` must equal the next expected request exactly, else AssertionError showing
  expected vs got bytes; the pair's reply then becomes readable;
- ``(None, reply)`` is an unsolicited reply: it arrives when a read finds nothing else
  to take (or before the next write is matched);
- ``(request, None)`` is a request the device does not answer;
- a read with nothing available raises DeviceTimeout at once, so timeout paths are
  tested without waiting; partial or garbage replies are just bytes;
- on exit it fails if a pair was unused, if reply bytes were left unread (bytes dropped
  by ``reset_input`` count as read) or if a mismatch was swallowed by the code under test.

Framing (``read_until``/``read_exactly``, ``max_bytes`` → ProtocolError) is the same code
the real transports use (:class:`~drivers.transport.buffered.BufferedTransport`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from drivers.errors import DeviceTimeout
from drivers.transport.base import DEFAULT_TIMEOUT_S
from drivers.transport.buffered import BufferedTransport, preview

ScriptPair = tuple[bytes | None, bytes | None]


class ScriptedTransport(BufferedTransport):
    """A Transport that plays a device from a script of exact request/reply bytes.

    Args:
        script: ``(request, reply)`` pairs in the order the exchange must happen.
        url: shown in error messages.
        timeout: the default bound reported in messages (no read ever waits).
    """

    timeout_hint = "the script has no more reply bytes here"

    def __init__(
        self,
        script: Sequence[ScriptPair],
        *,
        url: str = "scripted://device",
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__(url, timeout)
        pairs: list[ScriptPair] = []
        for index, pair in enumerate(script):
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ValueError(f"script entry {index} must be a (request, reply) pair: {pair!r}")
            request, reply = pair
            for part in (request, reply):
                if part is not None and not isinstance(part, bytes):
                    raise ValueError(f"script entry {index}: {part!r} is not bytes or None")
            if request is None and reply is None:
                raise ValueError(f"script entry {index} is (None, None): nothing to play")
            pairs.append((request, reply))
        self._script = pairs
        self._next = 0
        self._failures: list[str] = []
        self._left_at_close = b""
        self.written: list[bytes] = []  #: every write, in order (for extra assertions)

    # -- script bookkeeping -------------------------------------------------------------

    @property
    def remaining(self) -> list[ScriptPair]:
        """Pairs not yet played."""
        return self._script[self._next :]

    def _fail(self, message: str) -> AssertionError:
        self._failures.append(message)
        return AssertionError(message)

    def _next_unsolicited(self) -> bytes | None:
        if self._next < len(self._script) and self._script[self._next][0] is None:
            reply = self._script[self._next][1]
            self._next += 1
            return reply or b""
        return None

    def verify(self) -> None:
        """Raise AssertionError if the exchange did not follow the script completely."""
        problems = list(self._failures)
        if self._next < len(self._script):
            unused = self._script[self._next :]
            problems.append(
                f"{len(unused)} script pair(s) unused; next expected {unused[0][0]!r} "
                f"-> {unused[0][1]!r}"
            )
        left = bytes(self._buffer) if self.is_open else self._left_at_close
        if left:
            problems.append(f"reply bytes left unread: {preview(left)}")
        if problems:
            raise AssertionError(f"{self.url}: protocol script failed:\n  " + "\n  ".join(problems))

    # -- BufferedTransport hooks ----------------------------------------------------------

    async def _send(self, data: bytes, timeout: float) -> None:
        self.written.append(data)
        # Unsolicited replies due before this request have arrived by now.
        while (unsolicited := self._next_unsolicited()) is not None:
            self._buffer += unsolicited
        if self._next >= len(self._script):
            raise self._fail(
                f"unexpected write {data!r}: the script is exhausted "
                f"(all {len(self._script)} pair(s) used)"
            )
        expected, reply = self._script[self._next]
        if data != expected:
            raise self._fail(
                f"write #{len(self.written)} does not match the script (pair {self._next}):\n"
                f"    expected {expected!r}\n    got      {data!r}"
            )
        self._next += 1
        if reply:
            self._buffer += reply

    async def _receive(self, timeout: float, *, terminator: bytes | None, want: int) -> bytes:
        unsolicited = self._next_unsolicited()
        if unsolicited:
            return unsolicited
        so_far = f"received so far {preview(self._buffer)}" if self._buffer else "nothing received"
        raise DeviceTimeout(
            f"no reply (scripted device is silent; a real one would wait {timeout:g} s; {so_far})",
            device=self.url,
            hint=self.timeout_hint,
        )

    async def _discard_pending(self) -> None:
        return None  # scripted bytes live only in the base buffer

    async def _shutdown(self) -> None:
        return None

    async def close(self) -> None:
        if self.is_open:
            self._left_at_close = bytes(self._buffer)
        await super().close()


@asynccontextmanager
async def expected_protocol(
    script: Sequence[ScriptPair],
    *,
    url: str = "scripted://device",
    timeout: float = DEFAULT_TIMEOUT_S,
) -> AsyncIterator[ScriptedTransport]:
    """Yield a :class:`ScriptedTransport` and verify on exit that the script was followed.

    If the body raises, that exception propagates unchanged (no verification on top).
    """
    transport = ScriptedTransport(script, url=url, timeout=timeout)
    yield transport
    transport.verify()
