"""The project's real firmware on a virtual board, and `stedi sim board` as a process."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.board.server import VirtualBoard
from tests.parts import REPO, LocalServer, free_port
from tests.simulator.board.mp import mpremote

FIRMWARE = REPO / "firmware" / "board"


def test_real_firmware_flashed_with_mpremote_boots(
    make_board: Callable[..., VirtualBoard], tmp_path: Path
) -> None:
    if not (FIRMWARE / "main.py").exists():
        pytest.fail(f"the project's board firmware is missing: no {FIRMWARE / 'main.py'}")
    from firmware.build import build

    # Flashed the way the firmware is meant to be: built with mpy-cross (`stedi firmware build`).
    built = tmp_path / "build"
    build(built)
    # The board's own heap: 96k, as the firmware's memory budget says.
    board = make_board(tmp_path / "flash", heap="96k")
    copies: list[str] = []
    for entry in sorted(built.iterdir()):
        if entry.name.startswith(("_", ".")) or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            copies += ["+", "cp", "-r", str(entry), ":"]
        elif entry.suffix in (".py", ".json", ".mpy"):
            copies += ["+", "fs", "cp", str(entry), ":"]
    mpremote(board.url, *copies[1:], "+", "reset", timeout=120)
    deadline = time.monotonic() + 15
    while not (board.resets["hard"] == 2 and board.state == "main.py"):
        assert time.monotonic() < deadline, (
            f"main.py did not start; state {board.state}, {board.last_error!r}"
        )
        time.sleep(0.05)
    time.sleep(1.0)
    # A firmware's main.py runs for ever: still running, nothing went wrong.
    assert board.state == "main.py", board.last_error.decode(errors="replace")


def test_cli_serves_a_board(tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text("greeting = 'hello from main'\n")
    port = free_port()
    server = LocalServer(
        [
            sys.executable,
            "-m",
            "stedi_app.cli",
            "sim",
            "board",
            "--listen",
            f"127.0.0.1:{port}",
            "--flash",
            str(flash),
        ],
        port,
        log=tmp_path / "board.log",
    )
    try:
        url = f"socket://127.0.0.1:{port}"
        assert (
            mpremote(url, "exec", "print(open('main.py').read())").stdout
            == "greeting = 'hello from main'\r\n\r\n"
        )
    finally:
        server.stop()
    log = (tmp_path / "board.log").read_text()
    assert "running main.py" in log and "host connected" in log and "soft reboot" in log
    assert "powered off" in log  # SIGTERM stops the board cleanly
