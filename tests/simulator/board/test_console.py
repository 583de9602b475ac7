"""The board's console byte for byte, from a plain socket: friendly REPL, raw REPL, raw-paste."""

from __future__ import annotations

import os
import pty
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulator.board.server import VirtualBoard
from tests.simulator.board.mp import MPREMOTE, mpremote


class Host:
    """A terminal on the board's console that checks exactly what comes back."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.seen = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def until(self, ending: bytes, timeout: float = 10.0) -> bytes:
        """Everything up to and including ``ending``."""
        deadline = time.monotonic() + timeout
        while ending not in self.seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {ending!r} in {self.seen[-400:]!r}")
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"board closed the console; got {self.seen[-400:]!r}")
            self.seen += chunk
        at = self.seen.index(ending) + len(ending)
        got, self.seen = self.seen[:at], self.seen[at:]
        return got

    def exactly(self, n: int) -> bytes:
        while len(self.seen) < n:
            chunk = self.sock.recv(4096)
            assert chunk, "board closed the console"
            self.seen += chunk
        got, self.seen = self.seen[:n], self.seen[n:]
        return got


@pytest.fixture
def host(board: VirtualBoard) -> Iterator[Host]:
    h = Host(board.port)
    yield h
    h.sock.close()


def interrupt_main(host: Host) -> bytes:
    host.until(b"tick")  # main.py is looping and printing
    host.send(b"\x03")
    return host.until(b">>> ")


def test_ctrl_c_interrupts_main_and_friendly_repl(host: Host) -> None:
    stopped = interrupt_main(host)
    assert b'Traceback (most recent call last):\r\n  File "main.py", line ' in stopped
    assert b"KeyboardInterrupt: \r\n" in stopped
    assert b'Type "help()" for more information.\r\n>>> ' in stopped

    host.send(b"1+1\r")
    assert host.until(b">>> ") == b"1+1\r\n2\r\n>>> "
    # Continuation lines are auto-indented; two blank lines in a row end the block.
    host.send(b"for i in range(2):\r")
    assert host.until(b"... ") == b"for i in range(2):\r\n... "
    host.send(b"print(i)\r\r\r\r")
    assert host.until(b">>> ") == b"    print(i)\r\n...     \r\n...     \r\n... \r\n0\r\n1\r\n>>> "
    # Backspace rubs out one character, or a whole indent step of auto-indent.
    host.send(b"if True:\rx\x7f\x7f  zz = 3\r\r")
    assert host.until(b">>> ") == (
        b"if True:\r\n...     x" + b"\x08\x1b[K" + b"\x08" * 4 + b"\x1b[K" + b"  zz = 3\r\n... \r\n>>> "
    )
    host.send(b"zz\r")
    assert host.until(b">>> ") == b"zz\r\n3\r\n>>> "
    host.send(b"xyz\x7f\x7fq\r")  # backspace rubs out on the terminal too
    assert host.until(b">>> ").endswith(
        b"\x08\x1b[K" * 2 + b"q\r\nTraceback (most recent call last):\r\n"
        b'  File "<stdin>", line 1, in <module>\r\n'
        b"NameError: name 'xq' isn't defined\r\n>>> "
    )
    # Paste mode (Ctrl-E): lines echo after "=== ", Ctrl-D runs them as a file.
    host.send(b"\x05")
    assert host.until(b"=== ") == b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== "
    host.send(b"a = 2\rprint(a * 21)\r\x04")
    assert host.until(b">>> ") == b"a = 2\r\n=== print(a * 21)\r\n=== \r\n42\r\n>>> "
    # main.py ran in the REPL's globals, as on a board.
    host.send(b"n > 0\r")
    assert host.until(b">>> ") == b"n > 0\r\nTrue\r\n>>> "
    # Ctrl-D: soft reboot; in friendly mode boot.py and main.py run again.
    host.send(b"\x04")
    assert host.until(b"boot.py ran\r\n") == b"\r\nMPY: soft reboot\r\nboot.py ran\r\n"
    host.until(b"tick 1\r\n")


def test_raw_repl_and_raw_paste_bytes(host: Host) -> None:
    interrupt_main(host)
    host.send(b"\x01")
    assert host.until(b">") == b"\r\nraw REPL; CTRL-B to exit\r\n>"

    # Plain raw mode: OK, output, EOF, error, EOF, prompt.
    host.send(b"print('hi')\x04")
    assert host.until(b">") == b"OKhi\r\n\x04\x04>"
    host.send(b"1/0\x04")
    assert host.until(b"\x04>") == (
        b"OK\x04Traceback (most recent call last):\r\n"
        b'  File "<stdin>", line 1, in <module>\r\nZeroDivisionError: divide by zero\r\n\x04>'
    )

    # Raw-paste: a 128-byte window announced twice (size, then 0x01), 0x01 per window used.
    host.send(b"\x05A\x01")
    assert host.exactly(5) == b"R\x01\x80\x00\x01"
    source = b"s = 0\n" + b"".join(b"s += %d  # padding padding\n" % i for i in range(20)) + b"print(s)\n"
    assert len(source) > 256
    host.send(source[:256])  # the two windows the board announced
    assert host.exactly(2) == b"\x01\x01"
    host.send(source[256:] + b"\x04")
    windows = (len(source) - 256) // 128
    assert host.until(b">") == b"\x01" * windows + b"\x04" + b"190\r\n\x04\x04>"

    # Ctrl-A reprints the banner; Ctrl-C clears a half-typed line.
    host.send(b"garbage\x03print(2)\x04")
    assert host.until(b">") == b"OK2\r\n\x04\x04>"

    # Ctrl-D on an empty line: soft reset, boot.py only, back in the raw REPL.
    host.send(b"\x04")
    assert host.until(b">") == b"OK\r\nMPY: soft reboot\r\nboot.py ran\r\nraw REPL; CTRL-B to exit\r\n>"

    # Ctrl-B: friendly REPL with its banner.
    host.send(b"\x02")
    got = host.until(b">>> ")
    assert got.startswith(b"\r\nMicroPython v1.") and got.endswith(
        b'Type "help()" for more information.\r\n>>> '
    )


def test_sys_exit_soft_resets(host: Host) -> None:
    interrupt_main(host)
    host.send(b"\x01")
    host.until(b">")
    host.send(b"import sys\nsys.exit()\x04")
    assert host.until(b">") == b"OK\x04\x04MPY: soft reboot\r\nboot.py ran\r\nraw REPL; CTRL-B to exit\r\n>"


def test_mpremote_repl_through_the_pty(
    make_board: Callable[..., VirtualBoard], flash: Path, tmp_path: Path
) -> None:
    """mpremote's interactive repl needs a port with a file descriptor: the board's pty."""
    board = make_board(flash, pty=tmp_path / "board.tty")
    assert (tmp_path / "board.tty").resolve() == Path(board.pty_device or "")
    assert mpremote(str(tmp_path / "board.tty"), "exec", "print(6 * 7)").stdout == "42\r\n"

    pid, terminal = pty.fork()
    if pid == 0:  # the child: mpremote on a terminal, as a person would run it
        try:
            os.execv(str(MPREMOTE), [str(MPREMOTE), "connect", str(board.pty_device), "repl"])
        finally:
            os._exit(127)  # never run the rest of pytest in the child
    seen = b""

    def until(ending: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 10
        while ending not in seen:
            assert time.monotonic() < deadline, f"no {ending!r} in {seen!r}"
            if select.select([terminal], [], [], 0.1)[0]:
                seen += os.read(terminal, 4096)

    try:
        until(b"Use Ctrl-] or Ctrl-x to exit this shell")
        os.write(terminal, b"\r")
        until(b">>> ")
        os.write(terminal, b"6 * 7\r")
        until(b"42\r\n>>> ")
        os.write(terminal, b"\x1d")  # Ctrl-]: leave mpremote
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0


def test_ctrl_c_interrupts_code_sent_from_the_raw_repl(host: Host) -> None:
    interrupt_main(host)
    host.send(b"\x01")
    host.until(b">")
    host.send(b"while True:\n    pass\x04")
    assert host.exactly(2) == b"OK"
    time.sleep(0.2)  # it is spinning now
    host.send(b"\x03")
    assert host.until(b"\x04>") == (
        b"\x04Traceback (most recent call last):\r\n"
        b'  File "<stdin>", line 2, in <module>\r\nKeyboardInterrupt: \r\n\x04>'
    )
    host.send(b"print('still here')\x04")
    assert host.until(b"\x04>") == b"OKstill here\r\n\x04\x04>"
