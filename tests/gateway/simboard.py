"""The simulator's radio with a virtual board running the project's real firmware, for the
gateway's end-to-end tests.  The board lives in the test process, so it keeps its ring
buffer while a gateway process is killed and restarted, like a real board would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.parts import REPO, MicroPython

FIRMWARE = REPO / "firmware" / "board"
SERIAL = "3f0c1e1a-8c7e-4d8e-9a51-0c3f5a7b9d21"
#: A small board's RAM, like the rest of the project's MicroPython tests.
BOARD_HEAP = "96k"


@dataclass
class SimRig:
    radio_url: str
    serial: str  # the first board's serial
    board: Any  # the first board (simulator.board.server.VirtualBoard)
    radio: Any  # simulator.radio.server.RadioThread: set_faults(...), drop_links()
    add_board: Callable[[str], Any]  # start another board with this serial on the same radio


def _flash(path: Path, serial: str) -> Path:
    """The firmware as `stedi firmware build` makes it (.mpy modules), with this board's serial."""
    from firmware.build import build

    build(path)
    config = json.loads((path / "config.json").read_text())
    config["serial"] = serial
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture
def sim_rig(micropython: MicroPython, tmp_path: Path) -> Iterator[SimRig]:
    if not (FIRMWARE / "main.py").exists():
        pytest.fail(f"the project's board firmware is missing: no {FIRMWARE / 'main.py'}")
    from simulator.board.server import VirtualBoard
    from simulator.radio.server import RadioThread

    boards: list[Any] = []
    with RadioThread(seed=5) as radio:

        def add_board(serial: str) -> Any:
            n = len(boards) + 1
            board = VirtualBoard(_flash(tmp_path / f"flash-{n}", serial), micropython=micropython.binary,
                                 radio=radio.hostport, board_id=f"trainer-{n}", heap=BOARD_HEAP)
            boards.append(board.start())
            return board

        try:
            first = add_board(SERIAL)
            yield SimRig(radio.url, SERIAL, first, radio, add_board)
        finally:
            for board in boards:
                board.stop()


def stedi(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stedi_app.cli", *args], env=env or gateway_env(), text=True,
                          capture_output=True, timeout=timeout, cwd=REPO)


def gateway_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def write_config(home: Path, **values: object) -> None:
    """A gateway.toml: the tests shorten scanning and batching through the config file."""
    home.mkdir(parents=True, exist_ok=True)
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    (home / "gateway.toml").write_text("[gateway]\n" + "\n".join(lines) + "\n")
