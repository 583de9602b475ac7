"""MicroPython's REPL protocols, byte for byte, as a board's firmware speaks them on its console.

Modelled on ``shared/runtime/pyexec.c`` (behaviour, not code): the friendly REPL with its
line editor and paste mode, the raw REPL, raw-paste mode with its flow-control window, and
the answer a board without raw-paste gives.  The code itself runs in the board's MicroPython
interpreter; this side only moves bytes, so the REPL costs the board no heap, as on hardware.
"""

from __future__ import annotations

import enum
from typing import Protocol

from simulator.board.interpreter import RUN_SINGLE, RUN_SOURCE, JobResult

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 0x01, 0x02, 0x03, 0x04, 0x05
_ENTER, _NEWLINE, _ESC, _BACKSPACES = 0x0D, 0x0A, 0x1B, (0x08, 0x7F)

#: pyexec returns this when the REPL must end for a soft reset (Ctrl-D, SystemExit).
FORCED_EXIT = 1

#: Raw-paste flow control: the window is half of MICROPY_REPL_STDIN_BUFFER_MAX (256).
RAW_PASTE_WINDOW = 128

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"

_REFUSED = 2


class Mode(enum.Enum):
    FRIENDLY = "friendly"
    RAW = "raw"


class RawPaste(enum.Enum):
    """How the board answers mpremote's raw-paste request (``\\x05A\\x01``)."""

    SUPPORTED = "supported"  # R\x01 + window: current firmware
    # R\x00: understood but not supported, the answer mpremote falls back on (current firmware
    # sends it only for unknown commands, followed by a prompt).
    REFUSED = "refused"
    UNKNOWN = "unknown"  # firmware older than raw-paste: the bytes are ordinary raw-REPL input


class Console(Protocol):
    """What the REPL needs from the board."""

    mode: Mode

    async def getc(self) -> int: ...

    def emit(self, data: bytes) -> None: ...

    def emit_output(self, data: bytes) -> None: ...

    async def run(self, kind: bytes, payload: bytes) -> JobResult: ...


class Repl:
    def __init__(self, console: Console, banner: bytes, raw_paste: RawPaste = RawPaste.SUPPORTED) -> None:
        self.console = console
        self.banner = banner
        self.raw_paste = raw_paste
        self._last = 0

    async def run(self) -> None:
        """The REPL loop of a board's main(): returns when a soft reset is due."""
        while True:
            if self.console.mode is Mode.RAW:
                ret = await self.raw_repl()
            else:
                ret = await self.friendly_repl()
            if ret == FORCED_EXIT:
                return

    def _report(self, result: JobResult) -> None:
        if result.error:
            self.console.emit_output(result.error)

    # --- raw REPL ------------------------------------------------------------------------

    async def raw_repl(self) -> int:
        c = self.console
        c.emit(RAW_BANNER)
        while True:
            line = bytearray()
            c.emit(b">")
            while True:
                ch = await c.getc()
                if ch == CTRL_A:
                    if len(line) == 2 and line[0] == CTRL_E and self.raw_paste is not RawPaste.UNKNOWN:
                        ret = await self._raw_paste(line[1])
                        if ret == FORCED_EXIT:
                            return ret
                        line = bytearray()
                        if ret != _REFUSED:
                            c.emit(b">")
                        continue
                    c.emit(RAW_BANNER)
                    line = bytearray()
                    c.emit(b">")
                elif ch == CTRL_B:
                    c.emit(b"\r\n")
                    c.mode = Mode.FRIENDLY
                    return 0
                elif ch == CTRL_C:
                    line = bytearray()
                elif ch == CTRL_D:
                    break
                else:
                    line.append(ch)
            c.emit(b"OK")
            if not line:
                c.emit(b"\r\n")
                return FORCED_EXIT
            result = await c.run(RUN_SOURCE, bytes(line))
            c.emit(b"\x04")
            self._report(result)
            c.emit(b"\x04")
            if result.forced_exit:
                return FORCED_EXIT

    async def _raw_paste(self, command: int) -> int:
        c = self.console
        if command != ord("A"):
            c.emit(b"R\x00")
            return 0
        if self.raw_paste is RawPaste.REFUSED:
            # mpremote then writes the command in plain raw mode without waiting for a prompt.
            c.emit(b"R\x00")
            return _REFUSED
        window = RAW_PASTE_WINDOW
        # The window size says one window is free; the 0x01 after it says a second one is.
        c.emit(b"R\x01" + window.to_bytes(2, "little") + b"\x01")
        source = bytearray()
        remain = window
        while True:
            ch = await c.getc()
            if ch in (CTRL_C, CTRL_D):
                c.emit(b"\x04")  # end of data acknowledged
                if ch == CTRL_C:
                    c.emit(b"\x04")
                    c.emit_output(b"KeyboardInterrupt: \n")
                    c.emit(b"\x04")
                    return 0
                break
            source.append(ch)
            remain -= 1
            if remain == 0:
                c.emit(b"\x01")
                remain = window
        result = await c.run(RUN_SOURCE, bytes(source))
        c.emit(b"\x04")
        self._report(result)
        c.emit(b"\x04")
        return FORCED_EXIT if result.forced_exit else 0

    # --- friendly REPL -------------------------------------------------------------------

    async def friendly_repl(self) -> int:
        c = self.console
        c.emit(self.banner)
        while True:
            line = bytearray()
            ret = await self._readline(b">>> ", line)
            kind = RUN_SINGLE
            if ret == CTRL_A:
                c.emit(b"\r\n")
                c.mode = Mode.RAW
                return 0
            if ret == CTRL_B:
                c.emit(b"\r\n" + self.banner)
                continue
            if ret == CTRL_C:
                c.emit(b"\r\n")
                continue
            if ret == CTRL_D:
                c.emit(b"\r\n")
                return FORCED_EXIT
            if ret == CTRL_E:
                pasted = await self._paste_mode()
                if pasted is None:
                    continue
                line, kind = bytearray(pasted), RUN_SOURCE
            elif not line:
                continue
            else:
                cancelled = False
                while continue_with_input(bytes(line)):
                    line += b"\n"
                    ret = await self._readline(b"... ", line)
                    if ret == CTRL_C:
                        c.emit(b"\r\n")
                        cancelled = True
                        break
                    if ret == CTRL_D:
                        break  # stop entering the compound statement: run it
                if cancelled:
                    continue
            result = await c.run(kind, bytes(line))
            self._report(result)
            if result.forced_exit:
                return FORCED_EXIT

    async def _paste_mode(self) -> bytes | None:
        c = self.console
        c.emit(b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
        text = bytearray()
        while True:
            ch = await c.getc()
            if ch == CTRL_C:
                c.emit(b"\r\n")
                return None
            if ch == CTRL_D:
                c.emit(b"\r\n")
                return bytes(text).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            text.append(ch)
            c.emit(b"\r\n=== " if ch == _ENTER else bytes([ch]))

    async def _readline(self, prompt: bytes, line: bytearray) -> int | None:
        """A line editor like ``shared/readline``: appends one line to ``line`` with echo,
        backspace and auto-indent.  Returns a control key typed on an empty line, else None."""
        c = self.console
        c.emit(prompt)
        start = len(line)
        self._auto_indent(line)
        while True:
            ch = await c.getc()
            last, self._last = self._last, ch
            if ch == CTRL_C:
                return CTRL_C
            if ch in (CTRL_A, CTRL_B, CTRL_D, CTRL_E) and len(line) == start:
                return ch
            if ch == _ENTER or (ch == _NEWLINE and last != _ENTER):
                c.emit(b"\r\n")
                return None
            if ch in _BACKSPACES:
                if len(line) > start:
                    # Back over a whole indent step when only spaces precede the cursor.
                    typed = line[start:]
                    n = 4 if len(typed) >= 4 and typed.strip(b" ") == b"" else 1
                    del line[-n:]
                    c.emit(b"\x08" * n + b"\x1b[K")
            elif ch == _ESC:
                # Cursor keys and friends: ESC [ ... final byte.  No history or cursor moves.
                if await c.getc() == ord("["):
                    while not 0x40 <= await c.getc() <= 0x7E:
                        pass
            elif ch >= 0x20 or ch == 0x09:
                line.append(ch)
                c.emit(bytes([ch]))

    def _auto_indent(self, line: bytearray) -> None:
        """Indent a continuation line like the line above, one step more after a colon
        (MICROPY_REPL_AUTO_INDENT); two blank lines in a row get none, so the block can end."""
        if len(line) < 2 or line[-1] != _NEWLINE:
            return
        previous = bytes(line[:-1]).rsplit(b"\n", 1)
        above = previous[-1]
        spaces = len(above) - len(above.lstrip(b" "))
        if len(previous) > 1 and above.strip(b" ") == b"":
            before = previous[0].rsplit(b"\n", 1)[-1]
            if before.strip(b" ") == b"":
                return
        steps = spaces // 4 + (1 if above.endswith(b":") else 0)
        if steps:
            line += b"    " * steps
            self.console.emit(b"    " * steps)


_COMPOUND = (b"if", b"while", b"for", b"try", b"with", b"def", b"class", b"async")
_OPENERS, _CLOSERS = b"([{", b")]}"


def _starts_with_word(source: bytes, word: bytes) -> bool:
    after = source[len(word) : len(word) + 1]
    return source.startswith(word) and not (after.isalnum() or after == b"_")


def continue_with_input(source: bytes) -> bool:
    """Whether the friendly REPL prompts ``... `` for another line, decided as MicroPython's
    ``mp_repl_continue_with_input`` does: open triple quotes, open brackets, a trailing
    backslash, or a compound statement whose last line is not empty."""
    if not source:
        return False
    compound = source.startswith(b"@") or any(_starts_with_word(source, w) for w in _COMPOUND)
    depth = [0, 0, 0]  # (), [], {} counted apart, as MicroPython does
    quote = b""
    i = 0
    while i < len(source):
        ch = source[i : i + 1]
        if ch in (b"'", b'"'):
            if quote in (b"", ch * 3) and source[i : i + 3] == ch * 3:
                quote = b"" if quote else ch * 3
                i += 2
            elif quote in (b"", ch):
                quote = b"" if quote else ch
        elif ch == b"\\" and source[i + 1 : i + 2] in (b"'", b'"', b"\\"):
            if quote:
                i += 1
        elif not quote and ch in _OPENERS:
            depth[_OPENERS.index(ch)] += 1
        elif not quote and ch in _CLOSERS:
            depth[_CLOSERS.index(ch)] -= 1
        i += 1
    if len(quote) == 3:
        return True
    if max(depth) > 0 and not quote:
        return True
    if source.endswith(b"\\"):
        return True
    return compound and not source.endswith(b"\n")
