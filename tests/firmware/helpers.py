"""Paths and a runner for board code under the MicroPython unix port."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from firmware.build import mpy_cross_binary
from tests.parts import REPO, MicroPython

BOARD = REPO / "firmware" / "board"
HERE = Path(__file__).resolve().parent
SHIMS = HERE / "shims"
MP_SCRIPTS = HERE / "mp"
VECTORS = HERE / "vectors.json"


def run_board(micropython: MicroPython, code: str, *, timeout: float = 60.0, heap: str | None = None,
              cwd: Path | str | None = None, board: Path = BOARD) -> str:
    """Run code with the test shims, the test scripts and the board modules (source, or a
    build folder of .mpy files) on MICROPYPATH; returns stdout (fails with the interpreter's
    output on a non-zero exit)."""
    proc = micropython.run(code, path=[SHIMS, MP_SCRIPTS, board], timeout=timeout, heap=heap, cwd=cwd)
    return proc.stdout


def run_board_compiled(micropython: MicroPython, code: str, *, board: Path, timeout: float = 60.0,
                       heap: str | None = None) -> str:
    """Like run_board, but the test script is precompiled with mpy-cross too, so that compiling
    a long scenario does not eat the 96 KiB heap the board code runs in."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "scenario.py"
        src.write_text(code)
        subprocess.run([mpy_cross_binary(), "-o", str(Path(tmp) / "scenario.mpy"), str(src)], check=True)
        src.unlink()
        proc = micropython.run("import scenario\n", path=[SHIMS, MP_SCRIPTS, board, tmp], timeout=timeout,
                               heap=heap)
    return proc.stdout
