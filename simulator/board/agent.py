# mypy: ignore-errors
"""The REPL agent: MicroPython code that runs inside a virtual board's interpreter.

The unix port's own REPL cannot stand in for a board's (Ctrl-D exits the process, piped stdin
is read as a script), so the board server (CPython, ``server.py``) speaks the REPL protocols
to the host and hands this agent one job at a time on stdin:

    kind (1 byte) + length (8 ASCII digits) + payload

``x`` runs the payload as a file input (raw REPL, paste mode), ``s`` as a single interactive
statement (friendly REPL: expression values are printed), ``f`` runs the file named by the
payload if it exists (``boot.py``, ``main.py``).  All jobs share one globals dict, like
``__main__`` on a board, so mpremote's ``f=open(...)`` then ``w(...)`` chunks work.

The program's output goes to stdout untouched; the end of a job is a control marker
``\\x00STEDI-<token>:`` plus a code: ``E`` ended, ``X`` error text follows up to ``Z``,
``F`` forced exit (``SystemExit``: the board soft-resets); ``B`` when the job's code starts
(the board holds Ctrl-C back until then and turns it into SIGINT only while code runs);
``R`` once, when the agent is ready.  The token comes from the board
in env ``STEDI_BOARD_NONCE``, so program output cannot fake a marker.  ``_board.py`` in the
shims uses the same marker for reset requests.
"""

import sys

# The agent's own folder must not shadow the board's modules: the path is MICROPYPATH only.
sys.path.pop(0)

import os as _uos  # noqa: E402

_in = sys.stdin.buffer
_out = sys.stdout.buffer
_MARK = b"\x00STEDI-" + (_uos.getenv("STEDI_BOARD_NONCE") or "").encode() + b":"
_ENDED = _MARK + b"E"
_ERROR = _MARK + b"X"
_ERROR_END = _MARK + b"Z"
_FORCED = _MARK + b"F"
_READY = _MARK + b"R"
_BEGIN = _MARK + b"B"

# A board's "/" is its flash: map absolute paths onto the flash folder (the working directory).
_ROOT = _uos.getcwd()


def _p(path):
    if isinstance(path, str):
        if path.startswith("/"):
            return _ROOT + path.rstrip("/") if path != "/" else _ROOT
        if not path:
            return "."  # a board's VFS takes "" as the current folder (mpremote's "cp f :")
    return path


class _OS:
    """The board's ``os``: the built-in one with flash-rooted paths and 4-tuple ``ilistdir``."""


_os = _OS()
for _k in dir(_uos):
    try:
        setattr(_os, _k, getattr(_uos, _k))
    except (AttributeError, TypeError):
        pass


def _ilistdir(path=""):
    base = _p(path) if path else "."
    for entry in _uos.ilistdir(base):
        # The unix port yields (name, type, inode); mpremote's `fs ls` wants the size too.
        try:
            size = _uos.stat(base + "/" + entry[0])[6] if entry[1] == 0x8000 else 0
        except OSError:
            size = 0
        yield (entry[0], entry[1], entry[2], size)


def _getcwd():
    cwd = _uos.getcwd()
    if cwd == _ROOT:
        return "/"
    if cwd.startswith(_ROOT + "/"):
        return cwd[len(_ROOT) :]
    return cwd


def _wrap1(fn):
    return lambda path, *rest: fn(_p(path), *rest)


_os.ilistdir = _ilistdir
_os.listdir = lambda path="": [e[0] for e in _ilistdir(path)]
_os.getcwd = _getcwd
for _k in ("stat", "mkdir", "rmdir", "remove", "chdir", "statvfs", "unlink"):
    if hasattr(_uos, _k):
        setattr(_os, _k, _wrap1(getattr(_uos, _k)))
_os.rename = lambda a, b: _uos.rename(_p(a), _p(b))
_os.__name__ = "os"
sys.modules["os"] = _os


def _load_builtins():
    # On a board, machine and bluetooth are C built-ins that cost no heap.  Here they are
    # Python shims: load them now, while the board measures what the agent takes, so the
    # board can give that back on top of the heap asked for.
    for name in (_uos.getenv("STEDI_BOARD_BUILTINS") or "").split(","):
        if name:
            try:
                __import__(name)
            except ImportError:
                pass
            except Exception as e:  # a broken shim must not stop the board's REPL
                sys.print_exception(e, sys.stderr)


_load_builtins()


def _open(path, *rest, **kw):
    return open(_p(path), *rest, **kw)


_globals = {"__name__": "__main__", "open": _open}


def _send(marker):
    # A late Ctrl-C must not lose the marker, or the board would wait for ever.
    while True:
        try:
            _out.write(marker)
            return
        except KeyboardInterrupt:
            pass


def _run(kind, payload):
    try:
        if kind == 0x66:  # "f": a file from flash, like pyexec_file_if_exists
            name = payload.decode()
            try:
                with open(name, "rb") as f:
                    payload = f.read()
            except OSError:
                _send(_ENDED)
                return
            code = compile(payload, name, "exec")
        else:
            code = compile(payload, "<stdin>", "single" if kind == 0x73 else "exec")
        payload = None
        # Ctrl-C may come from here on (as on a board, where compiling is not interruptible):
        # a SIGINT while the agent reads its next job could cost it part of a frame.
        _send(_BEGIN)
        exec(code, _globals)
        code = None
        _send(_ENDED)
    except SystemExit:
        _send(_FORCED)
    except BaseException as e:  # noqa: B036 - a board prints every error, KeyboardInterrupt too
        code = payload = None
        _send(_ERROR)
        try:
            sys.print_exception(e)
        except BaseException:  # noqa: B036
            pass
        _send(_ERROR_END)


def _serve():
    while True:
        try:
            head = _in.read(9)
            if not head or len(head) < 9:
                return  # the board closed stdin: power off
            n = int(head[1:])
            payload = _in.read(n) if n else b""
        except KeyboardInterrupt:
            # A Ctrl-C that arrived just after a job ended: nothing is running to interrupt.
            continue
        _run(head[0], payload)
        payload = None


_out.write(_READY)  # from here on a Ctrl-C (SIGINT) can be handled
_serve()
