"""The real mpremote against a virtual board: files, exec, run, resets, chains."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.board.repl import RawPaste
from simulator.board.server import VirtualBoard
from simulator.shims import __file__ as shims_init
from tests.simulator.board.mp import mpremote


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def bootlog(flash: Path) -> str:
    path = flash / "bootlog.txt"
    return path.read_text() if path.exists() else ""


@pytest.fixture
def board(make_board: Callable[..., VirtualBoard], flash: Path) -> VirtualBoard:
    """A board whose main.py is running.  mpremote must not reach a board while boot.py runs, here
    as on a real one: its Ctrl-C ends boot.py, the port still starts main.py, and main.py ignores
    the Ctrl-A that follows ("could not enter raw repl"; seen once in a full suite run)."""
    started = make_board(flash)
    wait_for(lambda: "main" in bootlog(flash), timeout=30)
    return started


def test_power_up_runs_boot_then_main(board: VirtualBoard, flash: Path) -> None:
    wait_for(lambda: "main" in bootlog(flash))
    assert bootlog(flash) == "boot\nmain\n"


def test_fs_commands_and_up_to_date_check(board: VirtualBoard, flash: Path, tmp_path: Path) -> None:
    local = tmp_path / "config.json"
    local.write_text('{"rate_hz": 20}\n')
    first = mpremote(board.url, "fs", "cp", str(local), ":config.json")
    assert "Up to date" not in first.stdout
    assert (flash / "config.json").read_text() == '{"rate_hz": 20}\n'
    # The second copy finds the same sha256 on the board and sends nothing.
    second = mpremote(board.url, "fs", "cp", str(local), ":config.json")
    assert "Up to date: config.json" in second.stdout

    listing = mpremote(board.url, "fs", "ls").stdout
    assert f"{len(local.read_bytes()):>12} config.json" in listing
    assert "boot.py" in listing and "main.py" in listing

    assert (
        mpremote(board.url, "fs", "cat", ":config.json")
        .stdout.replace("\r\n", "\n")
        .endswith('{"rate_hz": 20}\n')
    )

    mpremote(board.url, "fs", "mkdir", ":lib", "+", "fs", "cp", str(local), ":lib/c.json")
    assert (flash / "lib" / "c.json").read_text() == local.read_text()
    assert "c.json" in mpremote(board.url, "fs", "ls", ":/lib").stdout  # "/" is the flash

    # "cp f :" copies into the flash root; the tree starts at "/".
    mpremote(board.url, "cp", str(local), ":")
    assert (flash / "config.json").exists()
    tree = mpremote(board.url, "fs", "tree").stdout
    assert ":/\n" in tree and "│   └── c.json" in tree
    # os is the board's os: a missing path is ENOENT, with no frames of the board's own machinery.
    gone = mpremote(board.url, "exec", "import os; os.listdir('/nothing')", check=False).stdout
    assert (
        gone
        == 'Traceback (most recent call last):\r\n  File "<stdin>", line 1, in <module>\r\nOSError: [Errno 2] ENOENT\r\n'
    )

    back = tmp_path / "back.json"
    mpremote(board.url, "fs", "cp", ":lib/c.json", str(back))
    assert back.read_text() == local.read_text()

    mpremote(board.url, "fs", "rm", ":lib/c.json", "+", "fs", "rm", ":config.json")
    assert not (flash / "config.json").exists() and not (flash / "lib" / "c.json").exists()
    missing = mpremote(board.url, "fs", "cat", ":nope.txt", check=False)
    assert missing.returncode != 0 and "No such file" in missing.stderr


def test_exec_run_and_errors(board: VirtualBoard, tmp_path: Path) -> None:
    assert mpremote(board.url, "exec", "print(6 * 7)").stdout == "42\r\n"
    script = tmp_path / "script.py"
    # Bigger than several raw-paste windows (128 bytes), so flow control is exercised.
    script.write_text(
        "total = 0\n" + "".join(f"total += {i}  # line {i:04d}\n" for i in range(200)) + "print(total)\n"
    )
    assert mpremote(board.url, "run", str(script)).stdout == f"{sum(range(200))}\r\n"

    failed = mpremote(board.url, "exec", "x = 1\n1 / 0", check=False)
    assert failed.returncode == 1
    assert failed.stdout == (
        "Traceback (most recent call last):\r\n"
        '  File "<stdin>", line 2, in <module>\r\n'
        "ZeroDivisionError: divide by zero\r\n"
    )
    syntax = mpremote(board.url, "exec", "def f(:", check=False)
    assert syntax.returncode == 1 and "SyntaxError" in syntax.stdout


def test_chains_soft_reset_and_resume(board: VirtualBoard) -> None:
    # One connection, one soft reset at the start: state survives along a chain.
    assert mpremote(board.url, "exec", "x = 5", "+", "exec", "print(x)").stdout == "5\r\n"
    # resume skips the soft reset, so the next connection still sees x ...
    assert mpremote(board.url, "resume", "exec", "print(x)").stdout == "5\r\n"
    # ... while a plain call soft-resets first, and soft-reset inside a chain does too.
    assert "NameError" in mpremote(board.url, "exec", "print(x)", check=False).stdout
    out = mpremote(board.url, "exec", "y = 1", "+", "soft-reset", "+", "exec", "print('y' in globals())")
    assert out.stdout == "False\r\n"
    # Soft resets: first call, third call, fourth call twice (connect, soft-reset); resume none.
    assert board.resets == {"hard": 1, "soft": 4}


def test_reset_is_a_hard_reset(make_board: Callable[..., VirtualBoard], flash: Path) -> None:
    if not (Path(shims_init).parent / "machine.py").exists():
        # Until the machine shim lands, a stand-in on the flash path provides machine.reset().
        (flash / "machine.py").write_text("import _board\n\ndef reset():\n    _board.hard_reset()\n")
    board = make_board(flash)
    wait_for(lambda: "main" in bootlog(flash))
    mpremote(board.url, "reset")
    wait_for(lambda: board.resets["hard"] == 2)
    # mpremote's soft reset runs boot.py only (raw REPL); the hard reset powers up: boot.py, main.py.
    wait_for(lambda: bootlog(flash) == "boot\nmain\n" + "boot\n" + "boot\nmain\n")


def test_board_module_requests_resets(board: VirtualBoard, flash: Path) -> None:
    mpremote(board.url, "exec", "--no-follow", "import _board; _board.soft_reset()")
    wait_for(lambda: board.resets["soft"] >= 2)
    mpremote(board.url, "exec", "--no-follow", "import _board; _board.hard_reset()")
    wait_for(lambda: board.resets["hard"] == 2)
    assert mpremote(
        board.url, "exec", "import _board; print(_board.on_board(), _board.board_id())"
    ).stdout == (f"True {board.board_id}\r\n")


@pytest.mark.parametrize("raw_paste", [RawPaste.REFUSED, RawPaste.UNKNOWN])
def test_plain_raw_repl_fallback(
    make_board: Callable[..., VirtualBoard], flash: Path, tmp_path: Path, raw_paste: RawPaste
) -> None:
    board = make_board(flash, raw_paste=raw_paste)
    script = tmp_path / "script.py"
    script.write_text("".join(f"v{i} = {i}\n" for i in range(100)) + "print(v99)\n")
    assert mpremote(board.url, "run", str(script), "+", "exec", "print(v0)").stdout == "99\r\n0\r\n"


def test_heap_cap(make_board: Callable[..., VirtualBoard], flash: Path) -> None:
    small = make_board(flash)
    failed = mpremote(small.url, "exec", "b = bytearray(120000)", check=False)
    assert failed.returncode == 1 and "MemoryError" in failed.stdout
    # What the agent and the machine/bluetooth shims keep is given back on top, no more: the
    # program sees about what a bare 96k interpreter has free (96.2 KB).
    free = int(mpremote(small.url, "exec", "import gc; gc.collect(); print(gc.mem_free())").stdout)
    assert 88 * 1024 < free <= 96 * 1024
    assert mpremote(small.url, "exec", "import sys; print('machine' in sys.modules)").stdout == "True\r\n"
    big = make_board(flash, heap="256k")
    assert mpremote(big.url, "exec", "b = bytearray(120000); print(len(b))").stdout == "120000\r\n"


def test_board_recovers_when_its_interpreter_dies(board: VirtualBoard, flash: Path) -> None:
    wait_for(lambda: board.state == "main.py")
    pid = board.interpreter_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # like a hard fault: the board resets itself
    wait_for(lambda: board.resets["hard"] == 2 and board.state == "main.py")
    assert board.interpreter_pid != pid
    assert mpremote(board.url, "exec", "print('back')").stdout == "back\r\n"
