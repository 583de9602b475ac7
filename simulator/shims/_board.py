# mypy: ignore-errors
"""How shim modules talk to the virtual board that runs this interpreter (MicroPython code).

The virtual board (``simulator/board/server.py``) runs the flashed program in a MicroPython
unix-port process.  A reset cannot be done from inside that process, so a shim asks the board:

- ``hard_reset()``: like the reset button (``machine.reset()``).  The board kills this
  interpreter and powers up a fresh one: ``boot.py`` then ``main.py``, friendly REPL.
  Never returns.
- ``soft_reset()``: like Ctrl-D (``machine.soft_reset()``).  Fresh interpreter, the board
  prints ``MPY: soft reboot``, runs ``boot.py`` and, in friendly REPL mode, ``main.py``.
  Never returns.
- ``on_board()``: True when running under a virtual board (False under plain ``micropython``,
  e.g. a unit test running a shim directly).
- ``board_id()``: the board's name (env ``STEDI_BOARD_ID``, set by the board; "" if unset).

Mechanism: the board passes a random token in env ``STEDI_BOARD_NONCE``; a request is the
control marker ``\\x00STEDI-<token>:`` plus one code byte (``H`` hard, ``S`` soft) written to
stdout, which the board reads and strips before anything reaches the host.  The caller then
sleeps until the board kills the process.  Outside a board, the request raises ``SystemExit``
with code 100 (hard) or 101 (soft) so a plain interpreter stops with a recognisable status.
"""

import os
import sys
import time

EXIT_HARD_RESET = 100
EXIT_SOFT_RESET = 101


def _nonce():
    return os.getenv("STEDI_BOARD_NONCE") or ""


def on_board():
    return bool(_nonce())


def board_id():
    return os.getenv("STEDI_BOARD_ID") or ""


def marker(code):
    """The control marker for ``code`` (one byte), as the board expects it."""
    return b"\x00STEDI-" + _nonce().encode() + b":" + code


def _request(code, exit_status):
    if not on_board():
        raise SystemExit(exit_status)
    sys.stdout.buffer.write(marker(code))
    # Wait for the board to kill this process; a late Ctrl-C must not let the program go on.
    while True:
        try:
            time.sleep(1)
        except KeyboardInterrupt:
            pass


def hard_reset():
    _request(b"H", EXIT_HARD_RESET)


def soft_reset():
    _request(b"S", EXIT_SOFT_RESET)
