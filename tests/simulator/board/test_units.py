"""The board's small pure helpers: addresses, heap sizes, REPL continuation lines."""

from __future__ import annotations

import pytest

from simulator.board.interpreter import heap_bytes
from simulator.board.repl import needs_more_input
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


@pytest.mark.parametrize(
    ("source", "more"),
    [
        ("1 + 1", False),
        ("for i in range(3):", True),
        ("for i in range(3):\n    print(i)", True),
        ("for i in range(3):\n    print(i)\n", False),
        ("x = [1,", True),
        ('s = """abc', True),
        ("def f(:", False),  # a syntax error: MicroPython reports it
        ("@decorator", True),
    ],
)
def test_continuation_lines(source: str, more: bool) -> None:
    assert needs_more_input(source) is more
