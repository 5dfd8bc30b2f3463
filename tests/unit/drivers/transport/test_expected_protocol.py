"""The scripted transport: passes on a correct exchange, fails loudly on any deviation."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable

import pytest

from drivers.errors import DeviceTimeout, NotConnected, ProtocolError
from drivers.testing.protocol import ScriptedTransport, ScriptPair, expected_protocol
from drivers.transport import Transport


async def test_correct_script_passes() -> None:
    async with expected_protocol([(b"p\n", b"10.00\n20.00\n"), (b"S\n", None)]) as transport:
        assert isinstance(transport, Transport)
        await transport.write(b"p\n")
        assert await transport.read_until(b"\n") == b"10.00\n"
        assert await transport.read_until(b"\n") == b"20.00\n"
        await transport.write(b"S\n")
        assert transport.written == [b"p\n", b"S\n"]
        assert transport.remaining == []


async def _play(
    script: list[ScriptPair], body: Callable[[ScriptedTransport], Awaitable[None]]
) -> None:
    """Run ``body`` inside ``expected_protocol(script)`` (so the exit check runs too)."""
    async with expected_protocol(script) as transport:
        await body(transport)


async def test_wrong_bytes_fail_with_expected_and_got() -> None:
    async def body(transport: ScriptedTransport) -> None:
        await transport.write(b"P\n")

    with pytest.raises(AssertionError, match=r"expected b'p\\n'\n\s+got\s+b'P\\n'"):
        await _play([(b"p\n", b"1\n")], body)


async def test_swallowed_mismatch_still_fails_on_exit() -> None:
    async def body(transport: ScriptedTransport) -> None:
        with contextlib.suppress(Exception):  # code under test that catches too broadly
            await transport.write(b"b")
        await transport.reset_input()

    with pytest.raises(AssertionError, match="does not match the script"):
        await _play([(b"a", None)], body)


async def test_unused_pair_fails_on_exit() -> None:
    async def body(transport: ScriptedTransport) -> None:
        await transport.write(b"p")
        await transport.read_until(b"\n")

    with pytest.raises(AssertionError, match=r"1 script pair\(s\) unused; next expected b'q'"):
        await _play([(b"p", b"1\n"), (b"q", b"2\n")], body)


async def test_leftover_reply_bytes_fail_on_exit_even_after_close() -> None:
    async def body(transport: ScriptedTransport) -> None:
        await transport.write(b"p")
        await transport.read_until(b"\n")
        await transport.close()

    with pytest.raises(AssertionError, match=r"reply bytes left unread: b'b\\n'"):
        await _play([(b"p", b"a\nb\n")], body)


async def test_write_past_the_end_fails() -> None:
    async def body(transport: ScriptedTransport) -> None:
        await transport.write(b"extra")

    with pytest.raises(AssertionError, match="script is exhausted"):
        await _play([], body)


async def test_silence_times_out_at_once_and_partial_bytes_stay() -> None:
    async with expected_protocol([(b"gp", b"0PO00"), (b"st", None)]) as transport:
        await transport.write(b"gp")
        start = time.monotonic()
        with pytest.raises(DeviceTimeout, match=r"scripted://device.*received so far b'0PO00'"):
            await transport.read_until(b"\r\n", timeout=5.0)
        assert time.monotonic() - start < 0.5  # no real waiting
        await transport.reset_input()  # a driver resynchronising: dropped bytes count as read
        await transport.write(b"st")
        with pytest.raises(DeviceTimeout, match="nothing received"):
            await transport.read_exactly(1)


async def test_garbage_reply_is_protocol_error() -> None:
    async with expected_protocol([(b"q", b"x" * 40)]) as transport:
        await transport.write(b"q")
        with pytest.raises(ProtocolError, match="no b'\\\\n' terminator within 16 bytes"):
            await transport.read_until(b"\n", max_bytes=16)
        assert await transport.read_exactly(24) == b"x" * 24


async def test_unsolicited_reply_arrives_when_read() -> None:
    script = [(None, b"HELLO\n"), (b"p", b"1\n"), (None, b"ALARM\n")]
    async with expected_protocol(script) as transport:
        assert await transport.read_until(b"\n") == b"HELLO\n"
        await transport.write(b"p")
        assert await transport.read_until(b"\n") == b"1\n"
        assert await transport.read_until(b"\n") == b"ALARM\n"


async def test_unsolicited_reply_before_a_write_is_buffered_in_order() -> None:
    async with expected_protocol([(None, b"boot\n"), (b"p", b"1\n")]) as transport:
        await transport.write(b"p")
        assert await transport.read_until(b"\n") == b"boot\n"
        assert await transport.read_until(b"\n") == b"1\n"


async def test_closed_transport_refuses_io() -> None:
    async with expected_protocol([]) as transport:
        await transport.close()
        await transport.close()
        assert not transport.is_open
        with pytest.raises(NotConnected, match="closed"):
            await transport.write(b"p")


async def test_body_exception_propagates_unchanged() -> None:
    async def body(transport: ScriptedTransport) -> None:
        raise KeyError("from the test body")

    with pytest.raises(KeyError, match="from the test body"):  # not masked by "unused pair"
        await _play([(b"p", b"1\n")], body)


@pytest.mark.parametrize(
    "script",
    [[(None, None)], [(b"p", "text")], [(b"p",)], [b"p"]],
)
def test_malformed_script_is_rejected(script: list[object]) -> None:
    with pytest.raises(ValueError, match="script entry 0"):
        ScriptedTransport(script)  # type: ignore[arg-type]
