"""The virtual board: a TCP console (like a board's USB serial) in front of a MicroPython process.

``VirtualBoard`` is what ``stedi sim board`` runs and what tests use::

    with VirtualBoard(flash_dir) as board:      # serves in a background thread
        subprocess.run(["mpremote", "connect", board.url, "fs", "ls"])

Its life follows a board's ``main()``: power-up runs ``boot.py`` then ``main.py`` (friendly
REPL mode only), then the REPL until a soft reset (Ctrl-D, ``SystemExit``,
``machine.soft_reset()``), which starts a fresh interpreter and prints ``MPY: soft reboot``.
``machine.reset()`` (via ``_board.hard_reset()``) powers it up again.  Ctrl-C from the host
interrupts running code (SIGINT -> ``KeyboardInterrupt``); at the REPL it is just a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import subprocess
import threading
import tty
from pathlib import Path
from types import TracebackType

from simulator.board.interpreter import (
    RUN_FILE,
    Interpreter,
    InterpreterDied,
    JobResult,
    agent_heap_bytes,
    check_heap,
    micropython_binary,
)
from simulator.board.repl import CTRL_C, Mode, RawPaste, Repl

log = logging.getLogger(__name__)

#: The ports a virtual board can behave as (simulator/shims/_board.py PROFILES).
PROFILES = ("esp32", "picow")
_AIRTIME = re.compile(r"^[1-9]\d*(/[1-9]\d*)?$")

#: Host bytes a board holds while its program is busy (a UART ring buffer is smaller still).
INPUT_BUFFER_MAX = 64 * 1024
#: Console output queued for a host that does not read before the board drops it.
OUTPUT_BUFFER_MAX = 1024 * 1024


def parse_hostport(text: str, *, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port), with an error that names the option."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{what} {text!r} is not HOST:PORT, e.g. 127.0.0.1:7000")
    return host, int(port)


def _banner(binary: str) -> bytes:
    try:
        version = subprocess.run(
            [
                binary,
                "-c",
                "import sys;v=sys.implementation.version;print('%d.%d.%d' % v[:3] + ('-' + v[3] if v[3] else ''))",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        version = "unknown"
    return (
        f"MicroPython v{version}; STEDI virtual board with MicroPython unix port\r\n"
        'Type "help()" for more information.\r\n'
    ).encode()


class _HostLink(asyncio.Protocol):
    """One host connection (mpremote, a terminal): the board's serial line."""

    def __init__(self, board: VirtualBoard) -> None:
        self.board = board
        self.transport: asyncio.Transport | None = None
        self.dropping = False

    def _quickack(self) -> None:
        # pyserial's socket:// leaves Nagle on: without quick ACKs every exchange waits ~40 ms.
        sock = self.transport.get_extra_info("socket") if self.transport else None
        if sock is not None and hasattr(socket, "TCP_QUICKACK"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack()
        self.board._attach(self)

    def data_received(self, data: bytes) -> None:
        self._quickack()
        self.board._host_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.board._detach(self)

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() > OUTPUT_BUFFER_MAX:
            # A host that stopped reading: drop output like a UART nobody listens to.
            if not self.dropping:
                log.warning("host is not reading the console; dropping output until it catches up")
            self.dropping = True
            return
        self.dropping = False
        self.transport.write(data)


class _PtyConsole:
    """A pseudo-terminal on the board's console, like a USB serial device (``/dev/pts/N``).

    mpremote's interactive ``repl`` needs a serial port with a file descriptor, which its
    ``socket://`` transport lacks; ``mpremote connect /dev/pts/N repl`` works.  The board
    keeps the terminal's far end open so it reads no EOF while nobody is connected; output
    nobody reads is dropped once the terminal's buffer is full.
    """

    def __init__(self, board: VirtualBoard, link_path: Path | None) -> None:
        self.board = board
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # bytes pass unchanged: no echo, no \n translation
        os.set_blocking(self.master, False)
        self.device = os.ttyname(self._slave)
        self.link_path = link_path
        if link_path is not None:
            link_path.unlink(missing_ok=True)
            link_path.symlink_to(self.device)
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if data:
            self.board._host_data(data)

    def write(self, data: bytes) -> None:
        try:
            os.write(self.master, data)
        except (BlockingIOError, OSError):
            log.debug("pty console full: %d bytes dropped", len(data))

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self._slave)
        if self.link_path is not None and self.link_path.is_symlink():
            self.link_path.unlink()


class VirtualBoard:
    """A board whose flash is ``flash_dir`` and whose console is a TCP port on ``host``."""

    def __init__(
        self,
        flash_dir: str | Path,
        heap: str = "96k",
        radio: str | None = None,
        board_id: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        raw_paste: RawPaste = RawPaste.SUPPORTED,
        micropython: str | None = None,
        extra_path: tuple[Path, ...] = (),
        pty: bool | str | Path = False,
        profile: str = "esp32",
        airtime: str | None = None,
    ) -> None:
        self.flash = Path(flash_dir).resolve()
        if profile not in PROFILES:
            raise ValueError(f"profile {profile!r} is not one of {', '.join(PROFILES)}")
        #: The port the board behaves as (simulator/shims/_board.py): its pin, I2C, ADC and
        #: watchdog rules, its BLE stack's back-pressure.
        self.profile = profile
        if airtime is not None and not _AIRTIME.match(airtime):
            raise ValueError(f"airtime {airtime!r} is not RATE or RATE/BUFFERS, e.g. 200/8")
        #: Notifications per second the board's link carries, and its controller's buffers.
        self.airtime = airtime
        #: Also offer the console on a pseudo-terminal; a path makes a symlink to it there.
        self.pty = pty
        #: The pseudo-terminal's device (``/dev/pts/N``) once serving with ``pty``.
        self.pty_device: str | None = None
        self._pty: _PtyConsole | None = None
        self.heap = check_heap(heap)
        if radio is not None:
            parse_hostport(radio, what="radio")
        self.radio = radio
        self.host = host
        self.port = port
        self.raw_paste = raw_paste
        self.binary = micropython or micropython_binary()
        self.extra_path = extra_path
        self._board_id = board_id
        self.mode = Mode.FRIENDLY
        self.resets = {"hard": 0, "soft": 0}
        #: What the board is doing: "boot.py", "main.py", "repl" (None before power-up).
        self.state: str | None = None
        #: The traceback the last boot.py or main.py ended with (b"" if none).
        self.last_error = b""
        self._link: _HostLink | None = None
        self._inbuf = bytearray()
        self._input = asyncio.Event()
        self._interp: Interpreter | None = None
        self._running = False
        self._reset_request: str | None = None
        self._ctrl_c_at_boot = False
        #: The running watchdog's timeout (ms), None while none runs.  It is the board's, not
        #: the interpreter's: it survives Ctrl-C and soft resets; a hard reset stops it.
        self.watchdog_ms: int | None = None
        #: Resets the watchdog did (each also counts in ``resets["hard"]``).
        self.watchdog_resets = 0
        self._watchdog_fed = 0.0
        self._watchdog_task: asyncio.Task[None] | None = None
        self._life_task: asyncio.Task[str] | None = None
        self._banner = b""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    @property
    def board_id(self) -> str:
        return self._board_id or f"board-{self.port}"

    @property
    def interpreter_pid(self) -> int | None:
        """The process id of the MicroPython interpreter of this power cycle."""
        return self._interp.pid if self._interp is not None else None

    @property
    def url(self) -> str:
        """What to give ``mpremote connect``."""
        return f"socket://{self.host}:{self.port}"

    # --- running: in a thread (tests, demos) or in the caller's event loop (the CLI) ------

    def start(self) -> VirtualBoard:
        self._thread = threading.Thread(target=self._thread_main, name="virtual-board", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._start_error is not None:
            raise self._start_error
        if not self._started.is_set():
            raise TimeoutError("the virtual board did not start within 30 s")
        return self

    def request_stop(self) -> None:
        """Ask ``serve()`` to power the board off (from any thread or a signal handler)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(15)
            self._thread = None

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self.serve())
        except BaseException as e:  # noqa: BLE001 - handed to start() in the caller's thread
            if self._started.is_set():
                log.exception("virtual board %s stopped on an error", self.board_id)
            self._start_error = e
            self._started.set()

    async def serve(self) -> None:
        """Listen, power up, and run until cancelled or ``stop()``."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._input = asyncio.Event()
        self.flash.mkdir(parents=True, exist_ok=True)
        self._banner = await asyncio.to_thread(_banner, self.binary)
        if not self.extra_path:
            # The shims as .mpy first on the path (built once, cached): a board's machine and
            # bluetooth are C in flash, and compiled from source in the board's heap they would
            # fragment it (simulator/shims/__init__.py).
            from simulator.shims import compiled_shims

            compiled = await asyncio.to_thread(compiled_shims, self.binary)
            self.extra_path = (compiled,) if compiled is not None else ()
        # Measured once here, off the event loop; each power-up then reads the cached figure.
        await asyncio.to_thread(agent_heap_bytes, self.binary, self.extra_path)
        server = await self._loop.create_server(lambda: _HostLink(self), self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        if self.pty:
            link = None if self.pty is True else Path(self.pty)
            self._pty = _PtyConsole(self, link)
            self.pty_device = self._pty.device
            log.info("virtual board console also on %s%s", self.pty_device, f" (link {link})" if link else "")
        log.info(
            "virtual board %s listening on %s (flash %s, heap %s)",
            self.board_id,
            self.url,
            self.flash,
            self.heap,
        )
        self._started.set()
        supervisor = asyncio.create_task(self._supervise())
        try:
            await self._stop.wait()
        finally:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
            self._stop_watchdog()
            if self._interp is not None:
                await self._interp.kill()
            if self._link is not None and self._link.transport is not None:
                self._link.transport.close()
            if self._pty is not None:
                self._pty.close()
                self._pty = None
            server.close()
            await server.wait_closed()
            log.info("virtual board %s powered off", self.board_id)

    # --- the board's life: power-up, boot.py, main.py, REPL, resets -----------------------

    async def _supervise(self) -> None:
        kind = "hard"
        while True:
            self._reset_request = None
            task = asyncio.create_task(self._life(kind))
            self._life_task = task
            try:
                await asyncio.wait([task])
            finally:
                if not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            if task.cancelled():
                kind = self._reset_request or "hard"
            elif task.exception() is not None:
                error = task.exception()
                log.error("board %s: %s; resetting", self.board_id, error)
                if not isinstance(error, InterpreterDied):
                    log.error("unexpected failure", exc_info=error)
                await asyncio.sleep(0.5)  # no tight crash loop
                kind = "hard"
            else:
                kind = task.result()

    async def _life(self, kind: str) -> str:
        self.resets[kind] += 1
        if kind == "hard":
            self._stop_watchdog()
            self.mode = Mode.FRIENDLY
            self._inbuf.clear()  # a reset empties the UART
            log.info("board %s: power-up", self.board_id)
        else:
            log.info("board %s: soft reboot", self.board_id)
            self.emit(b"MPY: soft reboot\r\n")
        self._ctrl_c_at_boot = False
        await self._fresh_interpreter()
        result = await self._run_file("boot.py")
        if result.forced_exit:
            return "soft"
        if self.mode is Mode.FRIENDLY:
            if CTRL_C in self._inbuf or self._ctrl_c_at_boot:
                # A host's Ctrl-C during power-up (mpremote connecting) stops the program before
                # main.py gets going, even if boot.py had finished before the signal landed.
                if CTRL_C in self._inbuf:
                    del self._inbuf[self._inbuf.index(CTRL_C)]
                log.info("board %s: Ctrl-C during boot, not running main.py", self.board_id)
            elif result.error:
                log.info("board %s: boot.py failed, not running main.py", self.board_id)
            else:
                result = await self._run_file("main.py")
                if result.forced_exit:
                    return "soft"
        self.state = "repl"
        await Repl(self, self._banner, self.raw_paste).run()
        return "soft"

    async def _fresh_interpreter(self) -> None:
        if self._interp is not None:
            await self._interp.kill()
        env = {"STEDI_BOARD_ID": self.board_id, "STEDI_BOARD_PROFILE": self.profile}
        if self.airtime:
            env["STEDI_AIRTIME"] = self.airtime
        if self.radio:
            env["STEDI_RADIO"] = self.radio
        self._interp = Interpreter(
            self.flash,
            heap=self.heap,
            env=env,
            on_output=self.emit_output,
            on_reset=self._reset_requested,
            on_exit=self._interpreter_exited,
            binary=self.binary,
            extra_path=self.extra_path,
            on_watchdog=self._watchdog,
        )
        await self._interp.start()

    async def _run_file(self, name: str) -> JobResult:
        if not (self.flash / name).is_file():
            return JobResult()
        log.info("board %s: running %s", self.board_id, name)
        self.state = name
        result = await self.run(RUN_FILE, name.encode())
        self.last_error = result.error
        if result.error:
            log.warning(
                "board %s: %s ended with\n%s", self.board_id, name, result.error.decode(errors="replace")
            )
            self.emit_output(result.error)
        elif result.forced_exit:
            log.info("board %s: %s called sys.exit(): soft reset", self.board_id, name)
        else:
            log.info("board %s: %s finished", self.board_id, name)
        return result

    def _reset_requested(self, kind: str) -> None:
        log.info("board %s: %s reset requested by the program", self.board_id, kind)
        self._reset_request = kind
        if self._life_task is not None:
            self._life_task.cancel()

    # --- the watchdog: the board's, so it keeps running in the REPL and over soft resets -----

    def _watchdog(self, timeout_ms: int | None) -> None:
        """The program started the watchdog (``timeout_ms``) or fed it (None)."""
        assert self._loop is not None
        self._watchdog_fed = self._loop.time()
        if timeout_ms is None:
            return
        if self.watchdog_ms is None:
            log.info("board %s: watchdog started (%d ms)", self.board_id, timeout_ms)
        self.watchdog_ms = timeout_ms
        if self._watchdog_task is None or self._watchdog_task.done():
            self._watchdog_task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        assert self._loop is not None
        while self.watchdog_ms is not None:
            left = self._watchdog_fed + self.watchdog_ms / 1000 - self._loop.time()
            if left > 0:
                await asyncio.sleep(min(left, 0.05))
                continue
            log.warning("board %s: watchdog not fed for %d ms: resetting", self.board_id, self.watchdog_ms)
            self.watchdog_resets += 1
            self._reset_requested("hard")
            return

    def _stop_watchdog(self) -> None:
        self.watchdog_ms = None
        if self._watchdog_task is not None and self._watchdog_task is not asyncio.current_task():
            self._watchdog_task.cancel()
        self._watchdog_task = None

    def _interpreter_exited(self, status: int) -> None:
        log.error("board %s: the interpreter exited on its own with status %d", self.board_id, status)
        self._reset_request = "hard"
        if self._life_task is not None:
            self._life_task.cancel()

    # --- the console (what the REPL uses) -------------------------------------------------

    async def getc(self) -> int:
        while not self._inbuf:
            self._input.clear()
            await self._input.wait()
        c = self._inbuf[0]
        del self._inbuf[0]
        return c

    def emit(self, data: bytes) -> None:
        if self._link is not None:
            self._link.write(data)
        if self._pty is not None:
            self._pty.write(data)

    def emit_output(self, data: bytes) -> None:
        # A board's console is "cooked": every \n the program prints goes out as \r\n.
        self.emit(data.replace(b"\n", b"\r\n"))

    async def run(self, kind: bytes, payload: bytes) -> JobResult:
        assert self._interp is not None
        self._running = True
        try:
            return await self._interp.run(kind, payload)
        finally:
            self._running = False

    # --- the host side --------------------------------------------------------------------

    def _attach(self, link: _HostLink) -> None:
        if self._link is not None and self._link.transport is not None:
            log.info("board %s: new host connection replaces the old one", self.board_id)
            self._link.transport.close()
        self._link = link
        peer = link.transport.get_extra_info("peername") if link.transport else None
        log.info("board %s: host connected from %s", self.board_id, peer)

    def _detach(self, link: _HostLink) -> None:
        if self._link is link:
            self._link = None
            log.info("board %s: host disconnected", self.board_id)

    def _host_data(self, data: bytes) -> None:
        if self._running and CTRL_C in data:
            # While code runs, Ctrl-C is the interrupt key, not input.
            data = data.replace(bytes([CTRL_C]), b"")
            log.info("board %s: Ctrl-C: interrupting the running program", self.board_id)
            if self.state == "boot.py":
                self._ctrl_c_at_boot = True
            if self._interp is not None:
                self._interp.interrupt()
        room = INPUT_BUFFER_MAX - len(self._inbuf)
        if len(data) > room:
            log.warning("board %s: input buffer full, %d bytes dropped", self.board_id, len(data) - room)
            data = data[:room]
        self._inbuf += data
        self._input.set()
