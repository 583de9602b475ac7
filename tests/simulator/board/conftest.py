"""A virtual board per test, with a small firmware of the tests' own, and the real mpremote."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulator.board.server import VirtualBoard
from tests.parts import MicroPython

#: boot.py and main.py log their start to flash, so tests can see the power-up order.
TEST_BOOT = "with open('bootlog.txt', 'a') as f:\n    f.write('boot\\n')\nprint('boot.py ran')\n"
TEST_MAIN = (
    "import time\n"
    "with open('bootlog.txt', 'a') as f:\n"
    "    f.write('main\\n')\n"
    "n = 0\n"
    "while True:\n"
    "    n += 1\n"
    "    print('tick', n)\n"
    "    time.sleep_ms(20)\n"
)


def write_test_firmware(flash: Path) -> None:
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "boot.py").write_text(TEST_BOOT)
    (flash / "main.py").write_text(TEST_MAIN)


@pytest.fixture
def flash(tmp_path: Path) -> Path:
    path = tmp_path / "flash"
    write_test_firmware(path)
    return path


@pytest.fixture
def make_board(micropython: MicroPython) -> Iterator[Callable[..., VirtualBoard]]:
    """Start VirtualBoards in threads; all are stopped after the test."""
    boards: list[VirtualBoard] = []

    def make(flash_dir: Path, **kw: object) -> VirtualBoard:
        board = VirtualBoard(flash_dir, micropython=micropython.binary, **kw)  # type: ignore[arg-type]
        boards.append(board.start())
        return board

    yield make
    for board in boards:
        board.stop()


@pytest.fixture
def board(make_board: Callable[..., VirtualBoard], flash: Path) -> VirtualBoard:
    return make_board(flash)
