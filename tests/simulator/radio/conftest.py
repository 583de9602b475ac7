"""Fixtures: a real radio (in a thread) and peripherals running under the real MicroPython."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulator.radio.server import RadioThread
from simulator.shims import compiled_shims
from tests.parts import REPO, MicroPython

SHIMS = REPO / "simulator" / "shims"
PERIPHERAL = Path(__file__).with_name("peripheral.py")


class Board:
    """A MicroPython process running a peripheral script with the shims, its output collected."""

    def __init__(self, binary: str, script: Path, radio: str, board_id: str, cwd: Path,
                 shim_path: tuple[Path, ...] = (SHIMS,), env: dict[str, str] | None = None):
        environ = dict(os.environ)
        environ.update(
            MICROPYPATH=os.pathsep.join([*(str(p) for p in shim_path), ".frozen"]),
            STEDI_RADIO=radio,
            STEDI_BOARD_ID=board_id,
            **(env or {}),
        )
        env = environ
        self.proc = subprocess.Popen(
            [binary, "-X", "heapsize=96k", str(script)],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 10.0, count: int = 1) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [x for x in self.lines if x.startswith(prefix)]
            if len(found) >= count:
                return found
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"board never printed {count}x {prefix!r}; output:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        self._reader.join(timeout=5)

    def assert_no_errors(self) -> None:
        text = "\n".join(self.lines)
        assert "Traceback" not in text and "Unhandled exception" not in text, text


@pytest.fixture
def radio() -> Iterator[RadioThread]:
    with RadioThread(seed=7) as r:
        yield r


@pytest.fixture(scope="session")
def shim_path(micropython: MicroPython, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ...]:
    """The shims as .mpy files first (as a board's built-ins, they must not be compiled inside
    the 96 KiB heap the script runs in), their sources after."""
    compiled = compiled_shims(micropython.binary, cache=tmp_path_factory.mktemp("shim-cache"))
    return (SHIMS,) if compiled is None else (compiled, SHIMS)


@pytest.fixture
def start_board(micropython: MicroPython, radio: RadioThread, tmp_path: Path,
                shim_path: tuple[Path, ...]) -> Iterator[Callable[..., Board]]:
    boards: list[Board] = []

    def start(board_id: str = "board-A", script: Path = PERIPHERAL, env: dict[str, str] | None = None) -> Board:
        board = Board(micropython.binary, script, radio.hostport, board_id, tmp_path, shim_path, env)
        boards.append(board)
        board.wait_for("READY")
        return board

    yield start
    for b in boards:
        b.stop()
