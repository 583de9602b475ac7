"""The virtual board's watchdog is the board's, as on an ESP32 or a Pico W: once a program starts
it, it keeps counting after the program is interrupted and through mpremote's soft reset, and
only a hard reset stops it (docs/library/machine.WDT.rst: "Once it is running the timeout cannot
be changed and the WDT cannot be stopped either")."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.board.server import PROFILES, VirtualBoard
from tests.simulator.board.mp import mpremote

#: A program that starts a 1.5 s watchdog and feeds it while it runs.
FED_MAIN = (
    "import machine, time\n"
    "wdt = machine.WDT(timeout=1500)\n"
    "while True:\n"
    "    wdt.feed()\n"
    "    time.sleep_ms(100)\n"
)


def _wait(what: Callable[[], bool], seconds: float, why: Callable[[], object]) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, why()
        time.sleep(0.05)


@pytest.mark.parametrize("profile", PROFILES)
def test_the_watchdog_survives_the_repl_and_a_soft_reset(
    make_board: Callable[..., VirtualBoard], tmp_path: Path, profile: str
) -> None:
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text(FED_MAIN)
    board = make_board(flash, profile=profile)
    _wait(lambda: board.watchdog_ms == 1500, 15, lambda: (board.state, board.last_error))
    time.sleep(2.0)  # fed: no reset while the program runs
    assert board.resets["hard"] == 1 and board.watchdog_resets == 0

    # mpremote interrupts main.py and soft-resets into the raw REPL: the watchdog keeps running
    out = mpremote(board.url, "exec", "print('in the REPL')").stdout
    assert "in the REPL" in out
    assert board.resets["soft"] >= 1 and board.watchdog_ms == 1500
    # nobody feeds it at the REPL: it resets the board, which boots main.py again
    _wait(lambda: board.watchdog_resets == 1, 5, lambda: (board.resets, board.state))
    _wait(lambda: board.resets["hard"] == 2 and board.watchdog_ms == 1500, 15, lambda: (board.resets, board.state))


def test_a_hard_reset_stops_the_watchdog(make_board: Callable[..., VirtualBoard], tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "boot.py").write_text("import machine\nmachine.WDT(timeout=1500).feed()\n")
    board = make_board(flash)
    _wait(lambda: board.watchdog_ms == 1500, 15, lambda: (board.state, board.last_error))
    (flash / "boot.py").unlink()
    # machine.reset() from the REPL: the new power-up runs no watchdog any more
    mpremote(board.url, "reset")
    _wait(lambda: board.resets["hard"] == 2, 10, lambda: board.resets)
    time.sleep(2.5)
    assert board.watchdog_ms is None and board.watchdog_resets == 0 and board.resets["hard"] == 2
