"""Finding the command-line tools the project drives (micropython, mpy-cross, mpremote)."""

from __future__ import annotations

import ctypes
import shutil
import signal
import sys
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
