"""The real mpremote, run against a virtual board's socket:// URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.parts import missing_part

MPREMOTE = Path(sys.executable).parent / "mpremote"


def mpremote(
    url: str, *args: str, timeout: float = 30, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The real mpremote against a board's socket:// URL."""
    if not MPREMOTE.exists():
        missing_part("mpremote (pip: mpremote)")
    raw = subprocess.run([str(MPREMOTE), "connect", url, *args], capture_output=True, timeout=timeout)
    # Decoded by hand: text mode would turn the board's \r\n into \n and hide what it sent.
    proc = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(), raw.stderr.decode())
    if check and proc.returncode != 0:
        raise AssertionError(f"mpremote {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc
