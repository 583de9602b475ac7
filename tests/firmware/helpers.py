"""Paths and a runner for board code under the MicroPython unix port."""

from __future__ import annotations

import atexit
import hashlib
import shutil
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
#: The simulator's shims, after the test doubles: only their board-profile rules (_board) are
#: used here, by the doubles, so the rules are the same as on a virtual board.
SIM_SHIMS = REPO / "simulator" / "shims"
#: The ports a board profile stands for (simulator/shims/_board.py).
PROFILES = ("esp32", "picow")


_COMPILED: dict[str, Path] = {}


def compiled_doubles() -> Path:
    """The test doubles and the simulator's ``_board`` compiled to .mpy (once per content): on a
    board ``machine`` and ``bluetooth`` are C in flash, and compiling them from source inside the
    96 KiB heap would leave the firmware a fragmented heap no board has."""
    sources = [*sorted(SHIMS.glob("*.py")), SIM_SHIMS / "_board.py"]
    digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sources)).hexdigest()[:16]
    if digest not in _COMPILED:
        out = Path(tempfile.mkdtemp(prefix=f"stedi-doubles-{digest}-"))
        atexit.register(shutil.rmtree, out, True)
        for src in sources:
            subprocess.run([mpy_cross_binary(), "-o", str(out / f"{src.stem}.mpy"), str(src)], check=True)
        _COMPILED[digest] = out
    return _COMPILED[digest]


_RULES_HEAP: dict[str, int] = {}


def board_heap(micropython: MicroPython, heap: str | None) -> str:
    """``heap`` (default the interpreter's 96k) plus what the board-profile rules (``_board``)
    take: on a board those checks are C in the port and cost no heap, so the firmware here gets
    what it had before the doubles checked anything."""
    if micropython.binary not in _RULES_HEAP:
        probe = "import gc\ngc.collect()\na = gc.mem_free()\nimport _board\ngc.collect()\nprint(a - gc.mem_free())\n"
        proc = micropython.run(probe, path=[compiled_doubles()], heap="256k")
        _RULES_HEAP[micropython.binary] = int(proc.stdout.split()[-1])
    text = (heap or micropython.heap).lower()
    scale = {"k": 1024, "m": 1024 * 1024}.get(text[-1], 1)
    size = int(text.rstrip("km")) * scale
    return str(size + _RULES_HEAP[micropython.binary])


def run_board(micropython: MicroPython, code: str, *, timeout: float = 60.0, heap: str | None = None,
              cwd: Path | str | None = None, board: Path = BOARD, profile: str = "esp32") -> str:
    """Run code with the test shims, the test scripts and the board modules (source, or a
    build folder of .mpy files) on MICROPYPATH, the doubles behaving as the ``profile``'s
    port; returns stdout (fails with the interpreter's output on a non-zero exit)."""
    proc = micropython.run(code, path=[compiled_doubles(), MP_SCRIPTS, board], timeout=timeout,
                           heap=board_heap(micropython, heap), cwd=cwd, env={"STEDI_BOARD_PROFILE": profile})
    return proc.stdout


def run_board_compiled(micropython: MicroPython, code: str, *, board: Path, timeout: float = 60.0,
                       heap: str | None = None, profile: str = "esp32") -> str:
    """Like run_board, but the test script is precompiled with mpy-cross too, so that compiling
    a long scenario does not eat the 96 KiB heap the board code runs in."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "scenario.py"
        src.write_text(code)
        subprocess.run([mpy_cross_binary(), "-o", str(Path(tmp) / "scenario.mpy"), str(src)], check=True)
        src.unlink()
        proc = micropython.run("import scenario\n", path=[compiled_doubles(), MP_SCRIPTS, board, tmp],
                               timeout=timeout, heap=board_heap(micropython, heap),
                               env={"STEDI_BOARD_PROFILE": profile})
    return proc.stdout
