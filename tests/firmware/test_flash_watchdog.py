"""`stedi firmware flash` against the firmware's own running watchdog, on a slow serial link.

The watchdog the firmware starts cannot be stopped (machine.WDT docs) and keeps counting
through mpremote's Ctrl-C and soft reset; the virtual board's does the same
(tests/simulator/board/test_watchdog.py).  Re-flashing a board whose firmware runs a 2 s watchdog,
over a link slow enough that copying takes longer than that, must still work: flash has the
board boot once without its watchdog (firmware/board/config.py, FLASH_PENDING).  Under both
profiles (about 15 s each); with the previous `flash` it fails: mpremote loses the board halfway
("could not enter raw repl") when the watchdog resets it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from firmware.build import BuildResult
from firmware.cli import app
from firmware.deploy import make_config
from simulator.tcp_proxy import TcpProxy
from tests.parts import MicroPython

SERIAL = "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab"
WATCHDOG_MS = 2000
#: Added to every chunk either way: with mpremote's raw-paste windows, copying the two largest
#: modules (10 KB) then takes a few times the watchdog's timeout (measured: about 7 s here).
LINK_DELAY_S = 0.001
#: What the second flash has to copy again (a new firmware version, say).
CHANGED = ("stedi_protocol.mpy", "app.mpy")
runner = CliRunner()


def _wait_running(board: object, hard_resets: int) -> None:
    deadline = time.monotonic() + 20
    while not (board.resets["hard"] >= hard_resets and board.state == "main.py"  # type: ignore[attr-defined]
               and board.watchdog_ms == WATCHDOG_MS):  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, (board.state, board.last_error)  # type: ignore[attr-defined]
        time.sleep(0.05)


def test_flash_over_a_slow_link_is_not_cut_short_by_the_watchdog(
    micropython: MicroPython, tmp_path: Path, profile: str, built_firmware: BuildResult
) -> None:
    server = pytest.importorskip("simulator.board.server")
    # The board runs the firmware (as flashed before) with a 2 s watchdog.
    flash_dir = tmp_path / "flash"
    shutil.copytree(built_firmware.out, flash_dir)
    template = json.loads((flash_dir / "config.json").read_text())
    config = make_config(template, SERIAL, "sim", None, board=profile, settings=[f"watchdog_ms={WATCHDOG_MS}"])
    (flash_dir / "config.json").write_text(json.dumps(config))
    board = server.VirtualBoard(flash_dir, micropython=micropython.binary, profile=profile).start()
    proxy = TcpProxy(board.port)
    try:
        _wait_running(board, 1)
        hard_resets = board.resets["hard"]

        for name in CHANGED:
            (flash_dir / name).unlink()
        proxy.delay_s = LINK_DELAY_S
        started = time.monotonic()
        result = runner.invoke(app, ["flash", "--port", f"socket://127.0.0.1:{proxy.port}", "--serial", SERIAL,
                                     "--board", profile, "--rate", "10", "--config", f"watchdog_ms={WATCHDOG_MS}"])
        took = time.monotonic() - started
        assert result.exit_code == 0, result.output
        assert took > 2 * WATCHDOG_MS / 1000, f"the link is not slow enough to test anything ({took:.1f} s)"
        assert board.watchdog_resets == 0, "the watchdog reset the board during the flash"
        # the two modules and config.json (a new rate) went over the link
        assert "3 copied, 12 up to date" in result.output, result.output
        assert json.loads((flash_dir / "config.json").read_text())["rate_hz"] == 10
        assert not (flash_dir / "flash_pending").exists()
        # the boot after the flash runs the new firmware with its watchdog again
        _wait_running(board, hard_resets + 2)
    finally:
        proxy.close()
        board.stop()
