"""Small tools every part uses: finding the command-line tools the project drives (micropython,
mpy-cross, mpremote), children that die with their parent, and atomic file writes."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


def find_tool(name: str) -> str | None:
    """The tool installed beside this Python (the project's .venv) wins over one on PATH,
    so the versions pinned in pyproject.toml are the ones used."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel kill the child when its parent dies, even by
    SIGKILL (Linux ``PR_SET_PDEATHSIG``), so no interpreter or server outlives a killed
    board, demo or test run.  None where the platform has no such thing.

    The signal fires when the *thread* that started the child ends: start children from a
    thread that lives as long as the parent does."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGKILL))

    return hook


#: The prefix of a file being written; lake listings skip it (``stedi.lake.FolderLake``).
PARTIAL_PREFIX = ".tmp-"


def write_atomically(path: Path, data: bytes | str) -> None:
    """Write ``path`` so that a reader, or a crash, sees the old file or the whole new one.

    The bytes go to a temporary file in the same folder (same file system, so the rename is
    atomic), are flushed to disk, and the file is renamed over ``path``.  The folder is created
    when missing; a failed write leaves no temporary file behind.
    """
    payload = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=PARTIAL_PREFIX, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
