"""The board's small pure helpers: addresses, heap sizes, REPL continuation lines."""

from __future__ import annotations

import pytest

from simulator.board.interpreter import heap_bytes
from simulator.board.repl import continue_with_input
from simulator.board.server import VirtualBoard, parse_hostport


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:7001") == ("127.0.0.1", 7001)
    for bad in ("7001", "host:", ":7001", "host:port", "host:70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_hostport(bad, what="--listen")


def test_heap_sizes() -> None:
    assert heap_bytes("96k") == 96 * 1024
    assert heap_bytes("1M") == 1024 * 1024
    assert heap_bytes("50000") == 50000
    with pytest.raises(ValueError, match="96k"):
        heap_bytes("lots")
    with pytest.raises(ValueError, match="heap size"):
        VirtualBoard("flash", heap="96 KB")
    with pytest.raises(ValueError, match="radio"):
        VirtualBoard("flash", radio="nowhere")


def test_profile_and_airtime_are_checked() -> None:
    assert VirtualBoard("flash").profile == "esp32"
    assert VirtualBoard("flash", profile="picow", airtime="50/4").airtime == "50/4"
    with pytest.raises(ValueError, match="esp32, picow"):
        VirtualBoard("flash", profile="nrf52")
    for bad in ("fast", "0", "50/", "50/0", "-5"):
        with pytest.raises(ValueError, match="RATE/BUFFERS"):
            VirtualBoard("flash", airtime=bad)


@pytest.mark.parametrize(
    ("source", "more"),
    [
        (b"1 + 1", False),
        (b"for i in range(3):", True),
        (b"for i in range(3):\n    print(i)", True),
        (b"for i in range(3):\n    print(i)\n    ", True),  # an auto-indented blank line
        (b"for i in range(3):\n    print(i)\n", False),
        (b"iffy = 1", False),  # "if" only as a whole word
        (b"x = [1,", True),
        (b"x = [1, (2]", True),  # brackets are counted apart
        (b"s = '('", False),
        (b's = """abc', True),
        (b"x = 1 + \\", True),
        (b"def f(:", True),  # continues; MicroPython reports the syntax error once it runs
        (b"@decorator", True),
    ],
)
def test_continuation_lines(source: bytes, more: bool) -> None:
    assert continue_with_input(source) is more
