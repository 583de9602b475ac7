"""Modules that shadow MicroPython built-ins on a virtual board's MICROPYPATH; import only the core.

They are written for MicroPython; only ``stedi_physics`` is also meant for CPython
(through ``simulator.physics``).  This ``__init__`` is CPython only: MicroPython never
imports it.

On a board, ``machine`` and ``bluetooth`` are C code in flash.  Here they are Python on the
heap, and compiling them from source inside a 96 KB heap leaves it fragmented (measured: the
largest free block drops to about 11 KB, so a firmware's 18 KB ring buffer no longer fits).
Loaded from ``.mpy`` files they sit compactly.  :func:`compiled_shims` builds those once with
``mpy-cross``; put the folder it returns *before* this one on ``MICROPYPATH`` (a folder earlier
on the path wins over a ``.py`` later on it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from stedi.tools import find_tool

log = logging.getLogger(__name__)

SHIMS = Path(__file__).resolve().parent

#: The MicroPython modules of this folder (everything but this CPython ``__init__``).
MODULES = tuple(sorted(p.stem for p in SHIMS.glob("*.py") if p.name != "__init__.py"))


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stedi" / "shims"


def compiled_shims(micropython: str, cache: Path | None = None) -> Path | None:
    """A folder with every shim compiled to ``.mpy`` for ``micropython`` (the interpreter
    binary), built once per shim source and tool version; None if ``mpy-cross`` is missing or
    its output does not load in that interpreter (the ``.py`` shims then serve alone)."""
    cross = find_tool("mpy-cross")
    if cross is None:
        log.warning("mpy-cross not found: shims load from source (more heap fragmentation)")
        return None
    digest = hashlib.sha256()
    for tool in (cross, micropython):
        digest.update(str(Path(tool).resolve()).encode())
        digest.update(str(Path(tool).stat().st_mtime_ns).encode())
    for name in MODULES:
        digest.update(name.encode() + b"\0" + (SHIMS / f"{name}.py").read_bytes())
    folder = (cache or _cache_root()) / digest.hexdigest()[:16]
    if (folder / ".ok").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
    try:
        try:
            for name in MODULES:
                subprocess.run(
                    [cross, "-o", str(build / f"{name}.mpy"), str(SHIMS / f"{name}.py")],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
            # Load each one (from this folder only) in the interpreter that will use them.
            probe = "import " + ", ".join(MODULES)
            env = {**os.environ, "MICROPYPATH": os.pathsep.join([str(build), ".frozen"])}
            subprocess.run([micropython, "-c", probe], check=True, capture_output=True, timeout=30, env=env, cwd=build)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            log.warning("compiling the shims failed, they load from source: %s %s", exc, detail[-300:])
            return None
        (build / ".ok").write_text("built by simulator.shims.compiled_shims\n")
        try:
            build.rename(folder)
        except OSError:
            if not (folder / ".ok").exists():  # another process won the race; theirs is fine
                raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    log.info("shims compiled to %s", folder)
    return folder
