"""Paths and a runner for board code under the MicroPython unix port."""

from __future__ import annotations

from pathlib import Path

from tests.parts import REPO, MicroPython

BOARD = REPO / "firmware" / "board"
HERE = Path(__file__).resolve().parent
SHIMS = HERE / "shims"
MP_SCRIPTS = HERE / "mp"
VECTORS = HERE / "vectors.json"


def run_board(micropython: MicroPython, code: str, *, timeout: float = 60.0, heap: str | None = None,
              cwd: Path | str | None = None) -> str:
    """Run code with the test shims, the test scripts and the board modules on MICROPYPATH;
    returns stdout (fails with the interpreter's output on a non-zero exit)."""
    proc = micropython.run(code, path=[SHIMS, MP_SCRIPTS, BOARD], timeout=timeout, heap=heap, cwd=cwd)
    return proc.stdout
